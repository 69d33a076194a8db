#!/usr/bin/env bash
# Runs GOOS=js GOARCH=wasm tests in a real headless Chromium (WebGPU on SwiftShader, WebNN on
# TFLite CPU) through wasmbrowsertest, installed as go_js_wasm_exec.
#   bash tools/browser/test-js.sh [packages...] [go test flags...]
# With no packages it runs every package that has a js && wasm test file.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
export PATH="$root/tools/browser/bin:$root/.cache/bin:$PATH"
command -v go_js_wasm_exec >/dev/null || { echo "test-js: go_js_wasm_exec missing: run 'make deps'" >&2; exit 1; }
source "$root/tools/browser/args.sh"
echo "test-js: ${pkgs[*]}"
# chromedp in wasmbrowsertest predates Chrome 153 and logs events it cannot decode; drop that noise.
GOOS=js GOARCH=wasm go test "${pkgs[@]}" "${flags[@]}" 2>&1 | grep -v 'could not unmarshal event'
