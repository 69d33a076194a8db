#!/usr/bin/env bash
# Builds the npm package @nibble-ml/nibble and packs it: bash npm/pack.sh [out dir]
# (default .cache/npm). Prints the tarball's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/.cache/npm}" && cd "${1:-$root/.cache/npm}" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dist"
cp "$root/npm/package.json" "$root/npm/README.md" "$stage/"
cp "$root"/npm/src/*.js "$root"/npm/src/*.d.ts "$stage/dist/"
goroot=$(go env GOROOT)
# wasm_exec.js must be the one of the Go that builds the wasm: they change together.
cp "$goroot/lib/wasm/wasm_exec.js" "$stage/dist/wasm_exec.js"
cp "$goroot/LICENSE" "$stage/dist/wasm_exec.LICENSE"
(cd "$root" && GOOS=js GOARCH=wasm go build -trimpath -ldflags='-s -w' -o "$stage/dist/nibble.wasm" ./wasm/cmd/nibble-lib)
name=$(cd "$stage" && npm pack --silent --pack-destination "$out")
echo "$out/$name"
