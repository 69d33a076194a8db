#!/usr/bin/env bash
# Builds .gpu/ (git-ignored, ~30 MB) in the repo root: what a lent NVIDIA machine needs to run
# nibble's WebGPU tests and benchmarks in Node, with navigator.gpu from Dawn (npm webgpu) over
# the NVIDIA Vulkan driver. That machine has no Node and no package registry, so Node, dawn.node
# and the Vulkan/GL loaders travel with the tree (xz-compressed; a run carries at most 64 MiB).
#   bash tools/gpu/prepare.sh      (make gpu-prep)   then carry ".gpu" in every device run
# Node, dawn.node and the loaders are fetched once; the test binary is rebuilt every time.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
log() { echo "gpu-prep: $*"; }
webgpu_version=0.6.2 # dawn.node; 0.6.2 is the one seen working here and on the H100/H200
out=.gpu
[[ $(uname -m) == x86_64 ]] || { log "the GPU machine is x86-64: run this on an x86-64 machine" >&2; exit 1; }
mkdir -p "$out/webgpu/dist/linux-x64" "$out/debs"

if [[ ! -f $out/node.xz ]]; then
  log "node $(node --version)"
  xz -T2 -6 -c "$(readlink -f "$(command -v node)")" >"$out/node.xz.tmp" && mv "$out/node.xz.tmp" "$out/node.xz"
fi

dawn=$out/webgpu/dist/linux-x64/dawn.node
rm -f "$dawn" # unpacked it would double what a run carries; run.sh unpacks where it runs
if [[ ! -f $dawn.xz || $(cat "$out/webgpu/version" 2>/dev/null) != "$webgpu_version" ]]; then
  log "npm webgpu@$webgpu_version"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "webgpu@$webgpu_version" >/dev/null)
  cp "$tmp/node_modules/webgpu/index.js" "$tmp/node_modules/webgpu/package.json" "$out/webgpu/"
  xz -T2 -6 -c "$tmp/node_modules/webgpu/dist/linux-x64/dawn.node" >"$dawn.xz"
  echo "$webgpu_version" >"$out/webgpu/version"
  rm -rf "$tmp"
fi

if ! ls "$out"/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  log "apt-get download the Vulkan and GL loaders (amd64)"
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64-lists'
  mkdir -p /tmp/amd64-lists/partial
  apt-get $o update >/dev/null
  (cd "$out/debs" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null)
fi

cat >"$out/setup.sh" <<'EOS'
# Sourced by tools/gpu/run.sh and llamacpp.sh on the GPU machine: installs the loaders,
# unpacks node and dawn.node, points Vulkan at the NVIDIA driver.
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
xz -dc .gpu/node.xz >/tmp/node && chmod +x /tmp/node
xz -dc .gpu/webgpu/dist/linux-x64/dawn.node.xz >.gpu/webgpu/dist/linux-x64/dawn.node
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export VK_ICD_FILENAMES=$VK_DRIVER_FILES XDG_RUNTIME_DIR=/tmp PATH=/tmp:$PATH
EOS

cp "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$out/"
log "go test -c ./wasm/backend/gpu"
GOOS=js GOARCH=wasm go test -c -o "$out/gpu.test.wasm" ./wasm/backend/gpu
du -sh "$out" | sed 's/^/gpu-prep: /'
