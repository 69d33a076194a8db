#!/usr/bin/env bash
# The end-to-end test of the model-serving Worker (issue 6, item 4): a model streamed from the
# Worker under `wrangler dev` (local R2) into a real headless Chromium, quantized on arrival,
# with the connection cut mid-file and resumed.
#
#   bash tools/worker/e2e.sh        # from anywhere; exits non-zero on any failed check
#
# Steps: write a synthetic fp16 safetensors model (tools/mkmodel) and its manifest.json (sizes,
# sha256); quantize it natively, every tensor whole (tools/worker/e2e/qsums: the reference);
# build the Worker, seed local R2, start wrangler dev offline (lib.sh); start
# tools/worker/e2e/cutproxy in front of it, cutting the first E2E_CUTS GETs of the model after a
# third of the file each; run wasm/stream's TestBrowserWorkerE2E in Chromium (wasmbrowsertest),
# which loads the model through the proxy (must resume at least E2E_CUTS times), then straight
# from the Worker, and requires every quantized tensor to be byte-identical across the two and
# to the native reference. Stops the proxy and wrangler (and workerd) by PID / process group, on
# failure and Ctrl-C too.
#
# Knobs: E2E_MKMODEL (mkmodel flags, default a 2-layer BERT-base shape, 28 MB fp16), E2E_CUTS
# (default 2), READY_TIMEOUT (seconds for wrangler dev to come up, default 180).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp=""
tail_pid=""
t0=$SECONDS
source "$repo/tools/worker/lib.sh"

cleanup() {
	local rc=$?
	[ -z "$tail_pid" ] || kill "$tail_pid" 2>/dev/null || true
	stop_started || rc=1
	[ -n "$tmp" ] || exit $rc
	if [ $rc -ne 0 ]; then
		if [ -f "$tmp/proxy.log" ]; then
			echo "--- cutproxy log (last 20 lines) ---" >&2
			tail -n 20 "$tmp/proxy.log" >&2
		fi
		if [ -f "$tmp/dev.log" ]; then
			echo "--- wrangler dev log (last 40 lines) ---" >&2
			tail -n 40 "$tmp/dev.log" >&2
		fi
		echo "worker e2e: FAILED after $((SECONDS - t0))s" >&2
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nibble-worker-e2e.XXXXXX")"

wrangler_env
ensure_runtime
cuts=${E2E_CUTS:-2}

# phase NAME: prints how long the previous phase took (slow CI machines: where did the time go).
phase_t=$SECONDS
phase() {
	echo "worker e2e: [$((SECONDS - t0))s] $1 (previous step $((SECONDS - phase_t))s)"
	phase_t=$SECONDS
}

# --- the native tools, in one build (one link step each, no `go run` per call; and a `go run`
# stopped by PID would leave its child behind).
phase "building mkmodel, the native Worker (-write-manifest), qsums, cutproxy"
(cd "$repo" && go build -o "$tmp/bin/" ./tools/mkmodel ./tools/worker ./tools/worker/e2e/cutproxy ./tools/worker/e2e/qsums)

# --- the model, its manifest and the native reference (lib.sh).
phase "writing the model, its manifest and the native reference"
e2e_model
sha=$(sha256sum <"$m/$file" | cut -c1-64)
grep -q "\"sha256\": \"$sha\"" "$m/manifest.json" || { echo "worker e2e: manifest.json lacks the model's sha256" >&2; exit 1; }
cut_after=$((size / 3))
[ $((cut_after * cuts)) -lt "$size" ] || { echo "worker e2e: $cuts cuts of $cut_after bytes do not fit in $size bytes" >&2; exit 1; }

# --- the Worker under wrangler dev, local R2.
phase "building the Worker, seeding local R2, starting wrangler dev"
serve_e2e_model
echo "worker e2e: seeded local R2 with $model/$file ($size bytes, sha256 $sha)"
got=$(curl -s --max-time 60 "$dev_url/models/$model/manifest.json" | sha256sum | cut -c1-64)
[ "$got" = "$(sha256sum <"$m/manifest.json" | cut -c1-64)" ] || { echo "worker e2e: the Worker serves another manifest.json" >&2; exit 1; }

# --- the cutting proxy in front of it.
start_proxy -cut-after "$cut_after" -cuts "$cuts" -match "/$file"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$proxy_url/models/$model/manifest.json" || true)
[ "$code" = 200 ] || { echo "worker e2e: manifest.json through the proxy: status $code" >&2; exit 1; }
echo "worker e2e: cutproxy on $proxy_url cuts the first $cuts GETs of $file after $cut_after bytes each"

# --- the browser test.
phase "running TestBrowserWorkerE2E in Chromium"
# In its own process group, waited for with `wait` (which a signal interrupts, unlike a
# foreground command), so a TERM or Ctrl-C stops the test (go test, wasmbrowsertest, Chromium)
# at once. Its output streams to the terminal as it comes.
(cd "$repo" && exec setsid env NIBBLE_WORKER_URL="$dev_url" NIBBLE_WORKER_PROXY_URL="$proxy_url" \
	NIBBLE_WORKER_MODEL="$model" NIBBLE_WORKER_FILE="$file" NIBBLE_WORKER_QSUMS="$(cat "$tmp/qsums.txt")" \
	NIBBLE_WORKER_CUTS="$cuts" bash tools/browser/test-js.sh ./wasm/stream -v -count=1 -timeout=8m \
	'-run=^TestBrowserWorkerE2E$') >"$tmp/test.log" 2>&1 </dev/null &
test_pid=$!
in_own_group "$test_pid"
tail -n +1 -f --pid="$test_pid" "$tmp/test.log" &
tail_pid=$!
rc=0
wait "$test_pid" || rc=$?
test_pid=""
wait "$tail_pid" || true
tail_pid=""
phase "browser test done"
stop_group "$proxy_pid"
proxy_pid=""
made=$(grep -c ' CUT ' "$tmp/proxy.log" || true)
fail=0
[ "$rc" -eq 0 ] || { echo "worker e2e: the browser test failed (exit $rc)" >&2; fail=1; }
grep -q -- '--- PASS: TestBrowserWorkerE2E' "$tmp/test.log" || { echo "worker e2e: TestBrowserWorkerE2E did not pass (skipped or not run)" >&2; fail=1; }
[ "$made" -eq "$cuts" ] || { echo "worker e2e: the proxy made $made cuts, want $cuts" >&2; fail=1; }
ranges=$(grep -c 'Range: bytes=.* → 206' "$tmp/proxy.log" || true)
[ "$ranges" -ge "$cuts" ] || { echo "worker e2e: $ranges resumed requests answered 206 through the proxy, want at least $cuts" >&2; fail=1; }
echo "--- cutproxy: model requests"
grep "/$file" "$tmp/proxy.log" | sed 's/^cutproxy: [0-9:.]* /  /'
[ "$fail" -eq 0 ] || exit 1
echo "--- summary"
grep -o 'e2e [a-z0-9 ]*: .*' "$tmp/test.log" | sed 's/^/  /'
echo "worker e2e: passed in $((SECONDS - t0))s ($made cuts, $ranges ranged resumes answered 206 by the Worker)"
