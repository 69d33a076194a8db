#!/usr/bin/env bash
# Runs nibble's WebGPU test binary (.gpu/gpu.test.wasm, from make gpu-prep) in Node with
# navigator.gpu from Dawn. Arguments are go test flags (-test.run, -test.bench, -nibble.*).
# On the GPU machine (the NVIDIA Vulkan driver is there) it first installs what .gpu carries;
# elsewhere it runs on Chromium's SwiftShader (make deps), to try the harness without a GPU.
#   bash tools/gpu/run.sh -test.run TestConformance -test.bench . -test.benchtime 1x
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
[[ -f .gpu/gpu.test.wasm ]] || { echo "run.sh: .gpu/gpu.test.wasm missing: run 'make gpu-prep' here and carry .gpu" >&2; exit 1; }
if [[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  source .gpu/setup.sh
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader || true
else
  icd=$root/.cache/chromium/vk_swiftshader_icd.json
  [[ -f $icd ]] || { echo "run.sh: no NVIDIA driver and no SwiftShader ICD ($icd): run 'make deps'" >&2; exit 1; }
  export VK_ICD_FILENAMES=$icd
  echo "run.sh: no NVIDIA driver here: SwiftShader (a software adapter)"
  # dawn.node unpacked outside .gpu, which travels to the GPU machine and must stay small.
  local_webgpu=$root/.cache/gpu-local/webgpu
  if [[ ! -f $local_webgpu/dist/linux-x64/dawn.node || .gpu/webgpu/dist/linux-x64/dawn.node.xz -nt $local_webgpu/dist/linux-x64/dawn.node ]]; then
    mkdir -p "$local_webgpu/dist/linux-x64"
    cp .gpu/webgpu/index.js .gpu/webgpu/package.json "$local_webgpu/"
    xz -dc .gpu/webgpu/dist/linux-x64/dawn.node.xz >"$local_webgpu/dist/linux-x64/dawn.node"
  fi
  export NIBBLE_WEBGPU_DIR=$local_webgpu
fi
cd .gpu
exec node ../tools/gpu/run.cjs gpu.test.wasm "$@"
