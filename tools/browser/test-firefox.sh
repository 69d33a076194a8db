#!/usr/bin/env bash
# Runs GOOS=js GOARCH=wasm tests in headless Firefox ESR (WebGPU over Mesa's lavapipe, with
# shader-f16) through our WebDriver BiDi runner, tools/browser/firefox (firefox_wasm_exec).
#   bash tools/browser/test-firefox.sh [packages...] [go test flags...]
# With no packages it runs every package that has a js && wasm test file. WebNN tests fail here:
# Firefox has no navigator.ml; pick WebGPU ones with -run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
runner=$root/.cache/bin/firefox_wasm_exec
[[ -x $runner ]] || { echo "test-firefox: $runner missing: run 'make deps'" >&2; exit 1; }
if [[ -z ${FIREFOX_BIN:-} ]] && ! command -v firefox-esr >/dev/null && ! command -v firefox >/dev/null; then
  echo "test-firefox: firefox-esr not found: run 'make deps'" >&2; exit 1
fi
# The runner is rebuilt by install.sh when its source changes; warn rather than test a stale one.
if [[ -n $(find tools/browser/firefox -newer "$runner" -print -quit) ]]; then
  echo "test-firefox: $runner is older than tools/browser/firefox: run 'make deps'" >&2; exit 1
fi
source "$root/tools/browser/args.sh"
echo "test-firefox: ${pkgs[*]}"
# This browser promises shader-f16: tests that need it fail, not skip, when it is missing
# (see wasm/internal/smoke/f16_test.go).
export NIBBLE_REQUIRE_SHADER_F16=1
GOOS=js GOARCH=wasm exec go test -exec "$runner" "${pkgs[@]}" "${flags[@]}"
