#!/usr/bin/env bash
# Builds .gpu/peer/ (git-ignored, ~13 MB): what tools/gpu/llamacpp.sh needs on a lent NVIDIA
# machine to time llama.cpp beside nibble's decode step on the same GPU. Everything comes from
# the npm registry through node-llama-cpp (pinned in package.json; make deps installs it):
# - llama-src.tar.xz: the llama.cpp source node-llama-cpp ships as a git bundle (its release
#   v0.4.0), less models, docs and tests; llamacpp.sh builds its CUDA backend there with nvcc;
# - libggml-vulkan.so.xz: node-llama-cpp's prebuilt Vulkan backend of the same source, loaded by
#   that build (GGML_BACKEND_DL) as a second device;
# - mkmodel.xz: tools/mkmodel for linux/amd64, which writes the Llama-7B-shaped GGUF there.
#   bash tools/gpu/peer-prep.sh      (make gpu-peer-prep, after make gpu-prep)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
log() { echo "gpu-peer-prep: $*"; }
nlc=node_modules/node-llama-cpp
vk=node_modules/@node-llama-cpp/linux-x64-vulkan/bins/linux-x64-vulkan/libggml-vulkan.so
[[ -f $nlc/llama/gitRelease.bundle && -f $vk ]] || { log "node-llama-cpp is not installed: run 'make deps'" >&2; exit 1; }
out=.gpu/peer
mkdir -p "$out"

version=$(node -p "require('./$nlc/package.json').version")
if [[ $(cat "$out/version" 2>/dev/null) != "$version" ]]; then
  log "llama.cpp source and Vulkan backend from node-llama-cpp $version"
  tmp=$(mktemp -d)
  git -c advice.detachedHead=false clone -q "$nlc/llama/gitRelease.bundle" "$tmp/src"
  tar -C "$tmp/src" --exclude=./.git --exclude=./models --exclude=./docs --exclude=./media \
    --exclude=./tests --exclude=./examples --exclude=./pocs --exclude=./gguf-py --exclude=./benches \
    --exclude=./tools/server/public --exclude=./tools/ui -cf - . | xz -T2 -6 >"$out/llama-src.tar.xz"
  xz -T2 -6 -c "$vk" >"$out/libggml-vulkan.so.xz"
  echo "$version" >"$out/version"
  rm -rf "$tmp"
fi

log "go build ./tools/mkmodel (linux/amd64)"
GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -o "$out/mkmodel" ./tools/mkmodel
xz -T2 -6 -f "$out/mkmodel"
du -sh "$out" | sed 's/^/gpu-peer-prep: /'
