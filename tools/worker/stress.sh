#!/usr/bin/env bash
# The load stress test of the model-serving Worker (issue 16, item 7): STRESS_PAGES tabs (default
# 8) of one headless Chromium load the same model from the Worker under `wrangler dev` (local R2)
# at once, through tools/worker/e2e/cutproxy as a slow link that resets every connection every
# few MB. Every load must complete, every tab's quantized tensors must be byte-identical to the
# native reference, and memory must stay within bounds: each tab's wasm linear memory, and the
# Worker's processes' peak RSS (workerd and wrangler's node, VmHWM from /proc).
#
#   bash tools/worker/stress.sh     # from anywhere; exits non-zero on any failed check
#
# Knobs: STRESS_PAGES (8), STRESS_RATE (bytes/s all tabs share, 4000000: half a MB/s a tab, so
# the link, not the 2 CI cores, sets the pace), STRESS_RESET_EVERY (bytes per connection before
# its reset, 3000000), STRESS_MAX_LINEAR_MB (per tab, 32: twice the 16.5 MiB measured),
# STRESS_MAX_WORKER_RSS_MB (per Worker process, 512), E2E_MKMODEL (mkmodel flags, default the
# 28 MB 2-layer BERT-base fp16 of e2e.sh), READY_TIMEOUT (wrangler dev start, 180 s).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp=""
t0=$SECONDS
source "$repo/tools/worker/lib.sh"

cleanup() {
	local rc=$?
	stop_started || rc=1
	[ -n "$tmp" ] || exit $rc
	if [ $rc -ne 0 ]; then
		for f in proxy.log:20 dev.log:30 stress.log:40; do
			[ -f "$tmp/${f%:*}" ] || continue
			echo "--- ${f%:*} (last ${f#*:} lines) ---" >&2
			tail -n "${f#*:}" "$tmp/${f%:*}" >&2
		done
		echo "worker stress: FAILED after $((SECONDS - t0))s" >&2
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nibble-worker-stress.XXXXXX")"

wrangler_env
ensure_runtime
pages=${STRESS_PAGES:-8}
rate=${STRESS_RATE:-4000000}
reset_every=${STRESS_RESET_EVERY:-3000000}
max_linear_mb=${STRESS_MAX_LINEAR_MB:-32}
max_rss_mb=${STRESS_MAX_WORKER_RSS_MB:-512}

echo "worker stress: [$((SECONDS - t0))s] building the native tools and the page"
(cd "$repo" && go build -o "$tmp/bin/" ./tools/mkmodel ./tools/worker ./tools/worker/e2e/cutproxy \
	./tools/worker/e2e/qsums ./tools/worker/e2e/stress)
(cd "$repo" && GOOS=js GOARCH=wasm go build -o "$tmp/page.wasm" ./tools/worker/e2e/stresspage)

e2e_model

echo "worker stress: [$((SECONDS - t0))s] building the Worker, starting wrangler dev"
serve_e2e_model
start_proxy -match "/$file" -rate "$rate" -reset-every "$reset_every"

# Each Worker process's RSS before the tabs, to tell the load's share of its peak.
declare -A rss_before
for pid in $(pgrep -g "$dev_pid"); do
	rss_before[$pid]=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo "?")
done
echo "worker stress: [$((SECONDS - t0))s] $pages tabs loading $file ($size bytes) at once through $proxy_url:" \
	"$rate bytes/s shared, every connection reset after $reset_every bytes"
(cd "$repo" && exec setsid "$tmp/bin/stress" -launcher "$repo/tools/browser/bin/headless_shell" -base "$proxy_url" \
	-model "$model" -file "$file" -size "$size" -qsums "$tmp/qsums.txt" -wasm "$tmp/page.wasm" -pages "$pages" \
	-max-linear $((max_linear_mb << 20))) >"$tmp/stress.log" 2>&1 </dev/null &
test_pid=$!
in_own_group "$test_pid"
rc=0
wait "$test_pid" || rc=$?
test_pid=""
cat "$tmp/stress.log"
echo "worker stress: [$((SECONDS - t0))s] tabs done"

# The Worker's peak: VmHWM of every process wrangler dev runs (workerd serves, node proxies).
fail=0
worker_rss=""
for pid in $(pgrep -g "$dev_pid"); do
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
	[ -n "$hwm" ] || continue
	name=$(cat "/proc/$pid/comm" 2>/dev/null || echo "?")
	worker_rss+=" $name ${rss_before[$pid]:-?} → $((hwm / 1024)) MiB;"
	[ $((hwm / 1024)) -le "$max_rss_mb" ] || { echo "worker stress: $name (pid $pid) peaked at $((hwm / 1024)) MiB RSS, bound $max_rss_mb MiB" >&2; fail=1; }
done
stop_group "$proxy_pid"
proxy_pid=""
resets=$(grep -c ' RESET ' "$tmp/proxy.log" || true)
gets=$(grep -c "GET /models/$model/$file" "$tmp/proxy.log" || true)
[ "$rc" -eq 0 ] || { echo "worker stress: the tabs failed (exit $rc)" >&2; fail=1; }
grep -q '^stress: [0-9]* tabs' "$tmp/stress.log" || { echo "worker stress: no summary from the tabs" >&2; fail=1; }
[ "$resets" -ge "$pages" ] || { echo "worker stress: the proxy reset $resets connections, want at least one per tab ($pages)" >&2; fail=1; }
echo "worker stress: the Worker's processes, RSS before the tabs → peak (VmHWM):$worker_rss bound $max_rss_mb MiB each"
[ "$fail" -eq 0 ] || exit 1
echo "worker stress: passed in $((SECONDS - t0))s ($gets GETs of the model, $resets reset mid-body)"
