# Shared by test.sh, bench.sh, e2e.sh and stress.sh (sourced, not run): the local Cloudflare
# runtime under wrangler dev, offline, started and stopped by process group; the end-to-end
# tests' model, its native reference and the cutting proxy in front of the Worker.
# Expects: repo (the repository root), tmp (a scratch directory).

wrangler_env() {
	# Offline: no request.cf fetch, no metrics, no banner (whose update check asks the npm
	# registry for wrangler's latest version), logs kept in the scratch directory.
	export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true
	export WRANGLER_LOG_PATH="$tmp/wrangler-logs" NO_COLOR=1 CI=1
}

# ensure_runtime checks that wrangler and the binaries it runs (workerd, esbuild) are present
# and execute. npm skips install scripts in some setups; workerd's and esbuild's are only a
# shortcut (hard-link the platform binary into bin/) or, when the platform package is
# missing, a download of it at the pinned version from the npm registry. Running the
# package's own install.js is that step, reproducibly.
ensure_runtime() {
	local w="$repo/node_modules/.bin/wrangler" c
	for c in curl setsid pgrep ps sha256sum; do
		command -v "$c" >/dev/null || { echo "worker: $c is not installed (apt: curl, util-linux, procps, coreutils)" >&2; return 1; }
	done
	command -v node >/dev/null || { echo "worker: node is not installed (wrangler 4.86.0 needs Node >= 20)" >&2; return 1; }
	[ -x "$w" ] || { echo "worker: $w missing: run 'npm ci' at the repository root (package.json pins wrangler 4.86.0)" >&2; return 1; }
	if ! (cd "$repo" && "$(node -p 'require("workerd").default')" --version) >/dev/null 2>&1; then
		echo "worker: workerd binary missing or not runnable; running workerd's install step" >&2
		(cd "$repo/node_modules/workerd" && node install.js) || true
		(cd "$repo" && "$(node -p 'require("workerd").default')" --version) >/dev/null || {
			echo "worker: workerd still does not run: on Debian it needs libc++1 (apt-get install libc++1)" >&2
			return 1
		}
	fi
	if ! (cd "$repo" && node -e 'require("esbuild").transformSync("let a = 1")') >/dev/null 2>&1; then
		echo "worker: esbuild binary missing or not runnable; running esbuild's install step" >&2
		(cd "$repo/node_modules/esbuild" && node install.js)
	fi
}

free_port() {
	node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# seed_r2 ENTRIES_JSON: bulk-put [{key, file}] into the local bucket under $tmp/state.
seed_r2() {
	(cd "$repo" && node_modules/.bin/wrangler r2 bulk put nibble-models --filename "$1" \
		--local --persist-to "$tmp/state" -c tools/worker/wrangler.jsonc) >"$tmp/seed.log" 2>&1 || {
		cat "$tmp/seed.log" >&2
		return 1
	}
}

# start_dev: wrangler dev in its own session/process group, on free ports; sets dev_pid,
# dev_url. Waits up to READY_TIMEOUT seconds (default 180: a cold start on a slow 2-core
# machine) for READY_PATH to answer 200.
start_dev() {
	local port iport t0=$SECONDS
	port=$(free_port)
	iport=$(free_port)
	(cd "$repo" && exec setsid node_modules/.bin/wrangler dev -c tools/worker/wrangler.jsonc \
		--ip 127.0.0.1 --port "$port" --inspector-port "$iport" --persist-to "$tmp/state" \
		--show-interactive-dev-session=false --log-level info) >"$tmp/dev.log" 2>&1 </dev/null &
	dev_pid=$!
	dev_url="http://127.0.0.1:$port"
	in_own_group "$dev_pid"
	local deadline=$((SECONDS + ${READY_TIMEOUT:-180})) code
	while :; do
		if ! kill -0 "$dev_pid" 2>/dev/null; then
			echo "worker: wrangler dev exited before it was ready; its log:" >&2
			cat "$tmp/dev.log" >&2
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$dev_url$READY_PATH" || true)
		[ "$code" = 200 ] && break
		if [ $SECONDS -ge $deadline ]; then
			echo "worker: wrangler dev not ready after ${READY_TIMEOUT:-180}s (last status $code); its log:" >&2
			cat "$tmp/dev.log" >&2
			return 1
		fi
		sleep 0.5
	done
	echo "worker: wrangler dev ready on $dev_url (pid $dev_pid) in $((SECONDS - t0))s"
}

# in_own_group PID: setsid runs after the subshell's exec; wait until PID leads its process
# group, so that stop_group stops everything it starts; fail after 5 s.
in_own_group() {
	local i
	for i in $(seq 1 50); do
		[ "$(ps -o pgid= -p "$1" | tr -d ' ')" = "$1" ] && return 0
		sleep 0.1
	done
	echo "worker: pid $1 did not get its own process group; cannot stop it cleanly" >&2
	return 1
}

# e2e_model: the end-to-end tests' model, $tmp/models/e2e/model.safetensors, written by mkmodel
# (flags E2E_MKMODEL, default a 2-layer BERT-base shape, 28 MB fp16) with its manifest.json, and
# its native reference (every tensor quantized whole) in $tmp/qsums.txt. Needs
# $tmp/bin/{mkmodel,worker,qsums}; sets model, file, m (the model's folder) and size.
e2e_model() {
	local mkflags
	read -r -a mkflags <<<"${E2E_MKMODEL:--shape bert-base -layers 2 -format safetensors-f16 -seed 11}"
	model=e2e
	file=model.safetensors
	m="$tmp/models/$model"
	mkdir -p "$m"
	"$tmp/bin/mkmodel" "${mkflags[@]}" -o "$m/$file"
	"$tmp/bin/worker" -write-manifest "$m" >/dev/null
	size=$(wc -c <"$m/$file")
	"$tmp/bin/qsums" "$m/$file" >"$tmp/qsums.txt"
	[ -s "$tmp/qsums.txt" ] || { echo "worker: the native reference is empty" >&2; return 1; }
}

# serve_e2e_model: the Worker built, local R2 seeded with e2e_model's file and manifest, and
# wrangler dev started (start_dev) once it serves the manifest.
serve_e2e_model() {
	bash "$repo/tools/worker/build.sh"
	cat >"$tmp/entries.json" <<JSON
[
 {"key": "models/$model/$file", "file": "$m/$file"},
 {"key": "models/$model/manifest.json", "file": "$m/manifest.json"}
]
JSON
	seed_r2 "$tmp/entries.json"
	READY_PATH="/models/$model/manifest.json" start_dev
}

# start_proxy FLAGS...: tools/worker/e2e/cutproxy ($tmp/bin/cutproxy) in front of the Worker
# in its own process group, logging to $tmp/proxy.log; sets proxy_pid and, once it listens
# (60 s at most), proxy_url.
start_proxy() {
	(exec setsid "$tmp/bin/cutproxy" -upstream "$dev_url" -url-file "$tmp/proxy.url" "$@") 2>"$tmp/proxy.log" </dev/null &
	proxy_pid=$!
	in_own_group "$proxy_pid"
	local deadline=$((SECONDS + 60))
	until [ -s "$tmp/proxy.url" ]; do
		kill -0 "$proxy_pid" 2>/dev/null || { echo "worker: cutproxy exited:" >&2; cat "$tmp/proxy.log" >&2; return 1; }
		[ $SECONDS -lt $deadline ] || { echo "worker: cutproxy not listening after 60s" >&2; return 1; }
		sleep 0.2
	done
	proxy_url=$(cat "$tmp/proxy.url")
}

# stop_started: stops what a script started, last first: the test (test_pid), the proxy
# (proxy_pid), wrangler dev (dev_pid), each by its process group; fails if anything survives.
stop_started() {
	local rc=0
	stop_group "${test_pid:-}" || rc=1
	stop_group "${proxy_pid:-}" || rc=1
	stop_group "${dev_pid:-}" || rc=1
	return $rc
}

# stop_group PID: TERM the process group PID leads (wrangler, its node child, esbuild,
# workerd), KILL what is left after 10 s, and fail if anything survives.
stop_group() {
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM -- "-$pid" 2>/dev/null || return 0
	for i in $(seq 1 40); do
		pgrep -g "$pid" >/dev/null || break
		sleep 0.25
	done
	if pgrep -g "$pid" >/dev/null; then
		echo "worker: process group $pid still alive after TERM; killing" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
		sleep 0.5
	fi
	if pgrep -g "$pid" >/dev/null; then
		echo "worker: processes left behind: $(pgrep -g "$pid" -l | tr '\n' ' ')" >&2
		return 1
	fi
	wait "$pid" 2>/dev/null || true
}
