#!/usr/bin/env bash
# Regenerates llamacpp.json: the GGUF files (tools/mkmodel, same arguments as the Go tests'
# goldenFiles), then llama.cpp through node-llama-cpp on each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
args=()
while read -r label shape format; do
  go run ./tools/mkmodel -llm -shape "$shape" -layers 2 -format "$format" -seed 1 -o "$tmp/$label.gguf" 2>/dev/null
  args+=("$label=$tmp/$label.gguf")
done <<'LIST'
spm-f32 llama-tiny gguf-f32
spm-f16 llama-tiny gguf-f16
spm-q8_0 llama-tiny gguf-q8_0
spm-q4_0 llama-tiny gguf-q4_0
bpe-f32 llama-tiny3 gguf-f32
bpe-q4_0 llama-tiny3 gguf-q4_0
LIST
NODE_PATH="$root/node_modules" node "$here/llamacpp.mjs" "$here/llamacpp.json" "${args[@]}"
