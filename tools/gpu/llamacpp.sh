#!/usr/bin/env bash
# llama.cpp on the lent NVIDIA machine, beside nibble's decode step on the same GPU (issue 15's
# peer): its CUDA backend (built there from the source .gpu/peer carries, for that GPU alone) and
# node-llama-cpp's prebuilt Vulkan backend, on a Llama-7B-shaped GGUF in BenchmarkDecode's formats
# (Q8_0 attention and head, Q4_0 FFN and token table: tools/mkmodel -format gguf-mixed).
#   here:  make gpu-prep gpu-peer-prep, then carry ".gpu"
#   there: bash tools/gpu/llamacpp.sh build [SECONDS]   writes the model, builds llama-bench; a
#                                                       build cut off at SECONDS resumes next time
#          bash tools/gpu/llamacpp.sh bench             times generation after 128 and 2048
#                                                       cached tokens, flash attention on and off
# Work goes to $LLAMACPP_DIR (/tmp/llamacpp): it stays while the machine is held.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
dir=${LLAMACPP_DIR:-/tmp/llamacpp}
peer=.gpu/peer
log() { echo "llamacpp.sh: $*"; }
[[ -f $peer/llama-src.tar.xz ]] || { log "$peer missing: run 'make gpu-peer-prep' here and carry .gpu" >&2; exit 1; }
mkdir -p "$dir"
if [[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  source .gpu/setup.sh # make gpu-prep's: the Vulkan loader, pointed at the NVIDIA driver
fi
export PATH=$PATH:/usr/local/cuda/bin

build() {
  local limit=${1:-540} start=$SECONDS
  if [[ ! -f $dir/l7b.gguf ]]; then
    xz -dc $peer/mkmodel.xz >"$dir/mkmodel" && chmod +x "$dir/mkmodel"
    (nice "$dir/mkmodel" -j 12 -llm -shape llama-7b -layers 32 -format gguf-mixed -o "$dir/l7b.tmp" &&
      mv "$dir/l7b.tmp" "$dir/l7b.gguf") >"$dir/mkmodel.log" 2>&1 &
  fi
  if [[ ! -f $dir/src/CMakeLists.txt ]]; then
    mkdir -p "$dir/src" && tar -xJf $peer/llama-src.tar.xz -C "$dir/src" || return 1
  fi
  if [[ ! -f $dir/build/build.ninja ]]; then
    log "nvcc: $(nvcc --version | tail -1)"
    cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF -DGGML_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_NCCL=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$dir/cmake.log" 2>&1 ||
      { tail -30 "$dir/cmake.log"; return 1; }
  fi
  timeout $((limit - (SECONDS - start))) ninja -C "$dir/build" llama-bench ggml-cpu ggml-cuda >"$dir/ninja.log" 2>&1
  local rc=$?
  tail -3 "$dir/ninja.log"
  xz -dc $peer/libggml-vulkan.so.xz >"$dir/build/bin/libggml-vulkan.so"
  wait
  cat "$dir/mkmodel.log" 2>/dev/null
  log "build rc=$rc after $((SECONDS - start)) s"
  return $rc
}

bench() {
  local bin=$dir/build/bin/llama-bench
  [[ -x $bin && -f $dir/l7b.gguf ]] || { log "run 'llamacpp.sh build' first" >&2; return 1; }
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader
  "$bin" --list-devices 2>&1 | grep -v '^load_backend'
  local dev fa
  for dev in CUDA0 Vulkan0; do
    for fa in 1 0; do
      # Each its own process: one that fails leaves the others' figures.
      echo "== $dev fa $fa"
      "$bin" -m "$dir/l7b.gguf" -dev "$dev" -ngl 99 -fa $fa -p 0 -n 32 -d 128,2048 -r 5 -o jsonl "$@" 2>"$dir/err.log"
      echo "rc=$?"
      grep -v '^load_backend' "$dir/err.log" | tail -3
    done
  done
}

case ${1:-} in
build) build "${2:-540}" ;;
bench) shift; bench "$@" ;;
*) echo "usage: llamacpp.sh build [SECONDS] | bench [llama-bench flags]" >&2; exit 2 ;;
esac
