#!/usr/bin/env bash
# Loopback throughput of one 100 MB shard (100,000,000 random bytes), full GET with curl,
# median of RUNS (default 5) after one warm-up, in MB/s (10^6 bytes/s):
#   - through the Worker under `wrangler dev` (local R2, R2 body streamed to the Response);
#   - the same Worker with every byte copied through Go (MODELS_COPY_THROUGH_GO=1), to show
#     what the streaming saves;
#   - through the native server (go run ./tools/worker -dir, sendfile).
# Also the median time of a 1-byte Range request (per-request overhead: the Worker starts a
# fresh Go instance per request).
#
#   bash tools/worker/bench.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nibble-worker-bench.XXXXXX")"
RUNS=${RUNS:-5}
dev_pid=""
native_pid=""
source "$repo/tools/worker/lib.sh"
cleanup() {
	local rc=$?
	stop_group "$dev_pid" || rc=1
	[ -z "$native_pid" ] || { kill "$native_pid" 2>/dev/null; wait "$native_pid" 2>/dev/null || true; }
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wrangler_env
ensure_runtime
bash "$repo/tools/worker/build.sh" >/dev/null
(cd "$repo" && go build -o "$tmp/worker-native" ./tools/worker)

size=100000000
mkdir -p "$tmp/models/big"
head -c $size /dev/urandom >"$tmp/models/big/shard.bin"
want=$(sha256sum <"$tmp/models/big/shard.bin" | cut -c1-64)
echo "[{\"key\": \"models/big/shard.bin\", \"file\": \"$tmp/models/big/shard.bin\"}]" >"$tmp/entries.json"
seed_r2 "$tmp/entries.json"

median() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }

# measure NAME URL: checks the sha256 once, then prints median MB/s and 1-byte latency.
# Every curl has a deadline (MAX_TIME, default 300 s): a stalled body counts as a failed run
# and is reported, so the bench never hangs.
measure() {
	local name=$1 url=$2 got i v mbs ms failed=0
	local speeds=() times=()
	got=$(curl -sf --max-time "${MAX_TIME:-300}" "$url" | sha256sum | cut -c1-64)
	[ "$got" = "$want" ] || { echo "bench: $name served other bytes (sha256 $got)" >&2; return 1; }
	for i in $(seq 1 "$RUNS"); do
		if v=$(curl -sf --max-time "${MAX_TIME:-300}" -o /dev/null -w '%{speed_download}' "$url"); then
			speeds+=("$v")
		else
			failed=$((failed + 1))
		fi
	done
	for i in $(seq 1 "$RUNS"); do
		v=$(curl -sf --max-time 60 -o /dev/null -H 'Range: bytes=0-0' -w '%{time_total}' "$url") && times+=("$v")
	done
	mbs=$(printf '%s\n' "${speeds[@]}" | awk 'NF {printf "%.1f\n", $1 / 1e6}' | median)
	ms=$(printf '%s\n' "${times[@]}" | awk 'NF {printf "%.1f\n", $1 * 1000}' | median)
	printf '%-44s %10s MB/s   1-byte range: %6s ms' "$name" "${mbs:-n/a}" "${ms:-n/a}"
	[ "$failed" -eq 0 ] && echo || echo "   ($failed of $RUNS runs failed or stalled past ${MAX_TIME:-300}s)"
}

echo "100 MB shard over loopback, median of $RUNS ($(nproc) CPUs, $(uname -m))"

READY_PATH=/models/big/shard.bin start_dev >/dev/null
measure "worker, wrangler dev (R2 stream → Response)" "$dev_url/models/big/shard.bin"
stop_group "$dev_pid"
dev_pid=""

# The same Worker, copying through Go: wrangler dev --var overrides the config's vars.
(cd "$repo" && exec setsid node_modules/.bin/wrangler dev -c tools/worker/wrangler.jsonc \
	--var MODELS_COPY_THROUGH_GO:1 --ip 127.0.0.1 --port "$(free_port)" --inspector-port "$(free_port)" \
	--persist-to "$tmp/state" --show-interactive-dev-session=false) >"$tmp/dev2.log" 2>&1 </dev/null &
dev_pid=$!
port=""
for i in $(seq 1 360); do
	port=$(grep -o 'Ready on http://127.0.0.1:[0-9]*' "$tmp/dev2.log" | grep -o '[0-9]*$' || true)
	[ -n "$port" ] && break
	sleep 0.5
done
[ -n "$port" ] || { cat "$tmp/dev2.log" >&2; exit 1; }
# syumai/workers' Go-copy path has stalled mid-body here under load: report, don't abort.
measure "worker, wrangler dev (copy through Go)" "http://127.0.0.1:$port/models/big/shard.bin" ||
	echo "worker, wrangler dev (copy through Go): failed (see above)"
stop_group "$dev_pid"
dev_pid=""

"$tmp/worker-native" -dir "$tmp/models" -addr 127.0.0.1:0 >"$tmp/native.log" 2>&1 &
native_pid=$!
addr=""
for i in $(seq 1 100); do
	addr=$(grep -o 'http://[0-9.:]*' "$tmp/native.log" || true)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/native.log" >&2; exit 1; }
measure "native net/http (go run ./tools/worker -dir)" "$addr/models/big/shard.bin"
