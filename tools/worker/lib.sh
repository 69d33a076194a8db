# Shared by test.sh and bench.sh (sourced, not run): the local Cloudflare runtime under
# wrangler dev, offline, started and stopped by process group.
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
	local i
	for i in $(seq 1 50); do # setsid runs after the subshell's exec: give it a moment
		[ "$(ps -o pgid= -p "$dev_pid" | tr -d ' ')" = "$dev_pid" ] && break
		sleep 0.1
	done
	if [ "$(ps -o pgid= -p "$dev_pid" | tr -d ' ')" != "$dev_pid" ]; then
		echo "worker: wrangler dev (pid $dev_pid) did not get its own process group; cannot stop it cleanly" >&2
		return 1
	fi
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
