#!/usr/bin/env bash
# Runs GOOS=js GOARCH=wasm tests in WebKitGTK's MiniBrowser (the Safari engine) on Xvfb, through
# WebKitWebDriver and our runner in its WebKit mode (tools/browser/firefox, as webkit_wasm_exec).
#   bash tools/browser/test-webkit.sh [packages...] [go test flags...]
# With no packages it runs every package that has a js && wasm test file. WebKitGTK has neither
# navigator.gpu (WebGPU is a preview feature, off) nor navigator.ml: WebGPU and WebNN tests fail
# here; pick CPU ones with -run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
runner=$root/.cache/bin/webkit_wasm_exec
[[ -x $runner ]] || { echo "test-webkit: $runner missing: run 'make deps'" >&2; exit 1; }
command -v WebKitWebDriver >/dev/null || [[ -n ${WEBKIT_WEBDRIVER:-} ]] || {
  echo "test-webkit: WebKitWebDriver not found: run 'make deps'" >&2; exit 1; }
# The runner is rebuilt by install.sh when its source changes; warn rather than test a stale one.
if [[ -n $(find tools/browser/firefox -newer "$root/.cache/bin/firefox_wasm_exec" -print -quit) ]]; then
  echo "test-webkit: $runner is older than tools/browser/firefox: run 'make deps'" >&2; exit 1
fi
source "$root/tools/browser/args.sh"
echo "test-webkit: ${pkgs[*]}"
GOOS=js GOARCH=wasm exec go test -exec "$runner" "${pkgs[@]}" "${flags[@]}"
