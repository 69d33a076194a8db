#!/usr/bin/env bash
# Regenerates llamacpp.json: the GGUF files of files.txt (tools/mkmodel, same arguments as the Go
# tests' goldenFiles), then llama.cpp through node-llama-cpp on each.
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
done <"$here/files.txt"
NODE_PATH="$root/node_modules" node "$here/llamacpp.mjs" "$here/llamacpp.json" "${args[@]}"
