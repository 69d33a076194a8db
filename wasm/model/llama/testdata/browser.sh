#!/usr/bin/env bash
# Runs the llama package's browser tests (browser_js_test.go) in headless Chromium: writes the
# golden files of files.txt with tools/mkmodel (golden.sh's arguments) into a temporary directory, with
# NIBBLE_LLAMA_BIG=<layers> also a Llama-3.2-1B-shaped Q4_0 file of that many layers, serves
# them through tools/streamserve at $NIBBLE_STREAM_URL/llama/ and runs tools/browser/test-js.sh
# with the arguments given (e.g. -run TestBrowserDecoder -v).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
mkdir -p "$tmp/llama"
go build -o "$tmp/mkmodel" ./tools/mkmodel
while read -r label shape format; do
  "$tmp/mkmodel" -llm -shape "$shape" -layers 2 -format "$format" -seed 1 -o "$tmp/llama/$label.gguf" 2>/dev/null
done <"$here/files.txt"
if [ -n "${NIBBLE_LLAMA_BIG:-}" ]; then
  "$tmp/mkmodel" -llm -shape llama-1b -layers "$NIBBLE_LLAMA_BIG" -format gguf-q4_0 -ctx 2048 -o "$tmp/llama/llama-1b.gguf" 2>/dev/null
  ls -l "$tmp/llama/llama-1b.gguf" >&2
  if [[ "${NIBBLE_LLAMA_BIG_BACKENDS:-}" == *-int8* ]]; then
    # int8 activations: the ranges calibrated natively on the cpu, served beside the model.
    go run ./tools/llamapeer -calibrate "$tmp/llama/llama-1b.gguf" -calib-tokens "${NIBBLE_LLAMA_CALIB_TOKENS:-32}" -o "$tmp/llama/llama-1b.calib.json"
  fi
fi
go run ./tools/streamserve -big 0 -small 1 -dir "$tmp" -- bash tools/browser/test-js.sh "${NIBBLE_BROWSER_PKG:-./wasm/model/llama}" "$@"
