# nibble: two commands on a fresh machine.
#   make run   – the main job on the embedded default model
#   make test  – every native and browser test
# Both install what they need first (tools/browser/install.sh: apt, npm ci, go install), and
# installs are skipped when already done.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/tools/browser/bin:$(CURDIR)/.cache/bin:/usr/local/go/bin:$(PATH)

.PHONY: bench-hybrid bench-plan run test deps test-go test-js test-firefox test-stream-js test-tfjsref test-embed-js bench-embed test-worker test-worker-e2e stress-worker bench-worker bench-ort bench-ort-full bench bench-webnn bench-stream-big fuzz-stream build serve vet gpu-prep gpu-peer-prep test-quanttest weights test-llama test-llama-browser llama-big-browser bench-llama llama-golden package test-package package-sizes test-webkit sensitivity sensitivity-decoder

deps:
	@bash tools/browser/install.sh

# The main job: USE-lite in headless Chromium on every platform it offers (webgpu on SwiftShader,
# webnn, cpu) at fp32, int8, int4 (group 32) and the planner's sensitivity-driven mixed plan; the table on stdout, progress on
# stderr, the trade-off drawn in out/quanttest.svg. QUANTTEST_FLAGS adds or overrides flags
# (go run ./tools/quanttest run -h): QUANTTEST_FLAGS=-compare=tfjs,ort adds TF.js and ONNX Runtime
# Web beside it (~2 min more). -runs 3 keeps it under 3 minutes on 2 busy cores: latency is the
# median of three timed runs after a warm-up, and "p90" of three is the slowest of them.
QUANTTEST_FLAGS ?=
run: deps
	mkdir -p out
	go run ./tools/quanttest run -platform all -bits 32,8,4 -group-size 32 -mixed-precision -runs 3 -texts 12 -plot out/quanttest.svg $(QUANTTEST_FLAGS)

# The native weight report (no browser): weight error and bytes per bits × scheme × group.
weights:
	go run ./tools/quanttest weights

test: deps vet test-go test-js test-stream-js test-tfjsref test-embed-js test-package test-firefox test-worker test-worker-e2e test-quanttest test-llama-browser test-webkit

# go vet for both targets, then the ten longest functions in wasm/ (tools/longfuncs); one over
# LONGFUNCS_MAX lines fails (0: print only).
LONGFUNCS_MAX ?= 100
vet:
	go vet ./...
	GOOS=js GOARCH=wasm go vet ./...
	go run ./tools/longfuncs -max $(LONGFUNCS_MAX) wasm

test-go:
	go test ./...

# The gpu package's suite took 22–23 minutes on the 2-core CI machine at cf09c16 (SwiftShader
# compiles every kernel variant it checks, and runs the hardware kernels too): 50 minutes leaves
# room under the 90-minute CI limit without a hang going unnoticed.
test-js:
	bash tools/browser/test-js.sh -timeout 50m

# WebKitGTK's MiniBrowser, the Safari engine, on Xvfb (no WebGPU, no WebNN: the cpu path; ~2 min):
# the runner itself, a streamed load's peak memory (WebKit's fetch body has no backpressure: see
# wasm/stream.coalescing), USE-lite's embeddings against TF.js's golden, the demo page without
# console errors.
test-webkit:
	bash tools/browser/test-webkit.sh ./wasm/jsutil
	go run ./tools/streamserve -big 32 -small 0 -- bash tools/browser/test-webkit.sh ./wasm/stream -v -run 'BrowserBig$$'
	NIBBLE_EXPECT_CPU_ONLY=1 go run ./tools/streamserve -big 0 -small 0 -- bash tools/browser/test-webkit.sh ./wasm/engine -run TestBrowserEmbedGoldenCPU -v
	NIBBLE_WEBKIT=1 go test ./site -run TestDemoInWebKit -v

# Firefox ESR (WebGPU on lavapipe, with shader-f16): the f16 paths run for real here.
test-firefox:
	bash tools/browser/test-firefox.sh ./wasm/internal/smoke -run WebGPU
	bash tools/browser/test-firefox.sh ./wasm/jsutil
	# lavapipe compiles the unrolled GEMM variants slowly (this step took 413 s of a 10m43s
	# make test on the 2-core machine): go test's default 10-minute limit is too close.
	bash tools/browser/test-firefox.sh ./wasm/backend/gpu -nibble.f16=on -run 'TestConformance$$|TestAdapter' -timeout=30m

# wasm/stream over real fetch from a local server: faults, and a 96 MiB fp16 model into q4 with
# peak memory measured (~30 s).
test-stream-js:
	go run ./tools/streamserve -big 96 -- bash tools/browser/test-js.sh ./wasm/stream -v -run=Browser

# TF.js 4.22 itself running USE-lite on its cpu, wasm and webgpu backends (the reference for
# nibble's embeddings): TF.js and the model from a local server; the backends must agree (~15 s).
test-tfjsref:
	go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/internal/tfjsref -v

# USE-lite end to end in Chromium: nibble's fp32 embeddings on cpu, webgpu and webnn against
# TF.js running the same model.json in the same page (cosine distance ≤ 1e-5 per sentence).
test-embed-js:
	go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/engine -run TestBrowserEmbed -v

# quanttest run end to end (~2.5 min): one configuration per platform in Chromium, its -json
# checked; a failing browser start, a platform the browser lacks, a model that does not fit and
# Ctrl-C each end in one line and exit 1 with no browser process left.
test-quanttest:
	NIBBLE_QUANTTEST_E2E=1 go test ./tools/quanttest -run E2E -v -timeout 10m

# The README's USE-lite table: nibble per backend × precision and TF.js's backends, same page.
bench-embed: deps
	NIBBLE_EMBED_TABLE=1 go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/engine -run TestBrowserEmbedTable -v -timeout 60m

# USE-lite's per-tensor sensitivity (natively, ~6 min on 2 busy cores), which the "mixed" policy
# reads; then each policy's plan measured on other sentences (bytes, cosine to fp32).
sensitivity: deps sensitivity-decoder
	go run ./tools/sensitivity
	go run ./tools/sensitivity -eval

# The same for a Llama decoder (natively, ~30 s): tools/mkmodel's llama-tiny, per-tensor KL of
# the next-token distribution on the calibration texts, then each policy's plan on the
# evaluation texts (bytes, KL, |Δ logit|, top-1 agreement). The sensitivity JSON is written
# beside the model (.cache/sensitivity/llama-tiny.sensitivity.json).
sensitivity-decoder:
	mkdir -p .cache/sensitivity
	go run ./tools/mkmodel -llm -shape llama-tiny -layers 2 -format gguf-f32 -seed 1 -o .cache/sensitivity/llama-tiny.gguf
	go run ./tools/sensitivity -gguf .cache/sensitivity/llama-tiny.gguf
	go run ./tools/sensitivity -gguf .cache/sensitivity/llama-tiny.gguf -eval

# The README's precision-plan table: policies × backends in Chromium (bytes, cosine, latency).
bench-plan: deps
	NIBBLE_PLAN_TABLE=1 go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/engine -run TestBrowserPolicyTable -v -timeout 60m

# Hybrid WebGPU/WebNN placement of USE-lite's stages beside each single backend, in one page
# (README "Precision plans"): median ms for 1 and 30 sentences, crossings per pass.
bench-hybrid: deps
	NIBBLE_HYBRID_TABLE=1 go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/engine -run TestBrowserHybridTable -v -timeout 40m

# The Cloudflare Worker under wrangler dev (local R2): full, ranged, conditional and hostile
# requests checked by status and sha256.
test-worker:
	bash tools/worker/test.sh

# A model from the Worker under wrangler dev into Chromium, cut mid-file twice and resumed;
# the q4 tensors must equal the clean load and the native reference.
test-worker-e2e:
	bash tools/worker/e2e.sh

# Eight tabs of one Chromium load one model from the Worker under wrangler dev at once, over a
# 4 MB/s link that resets every connection every 3 MB; q4 tensors equal the native reference,
# wasm memory per tab and the Worker's RSS bounded. Not in `make test`: 1.5–2.5 min on 2 shared
# cores (the throttled link alone is ≥ 57 s by design).
stress-worker: deps
	bash tools/worker/stress.sh

bench-worker: deps ## 100 MB shard over loopback: Worker under wrangler dev vs native net/http
	bash tools/worker/bench.sh

bench-stream-big: deps ## 570 MB fp16 safetensors → q4 in the browser: peak memory, MB/s, early start
	go run ./tools/streamserve -big 544 -- bash tools/browser/test-js.sh ./wasm/stream -v -run=BrowserBig -test.timeout=10m

# The loader's fuzz targets (wasm/stream/fuzz_test.go), FUZZTIME each (default 60s): hostile
# files through the whole loader (allocation bounded), fault schedules (chunk, shard and Range
# resume offsets) that must not change a byte, manifest paths that must stay in the model's
# directory. Prints each target's elapsed time and exec count; a failure prints its input.
FUZZTIME ?= 60s
fuzz-stream:
	log=$$(mktemp); for t in FuzzLoadFile FuzzLoadFaults FuzzConfinedURL; do \
		go test ./wasm/stream -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) >"$$log" 2>&1 || { cat "$$log"; exit 1; }; \
		echo "$$t: $$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$$log" | tail -1)"; \
	done; rm -f "$$log"

bench-webnn: deps ## WebNN f32/int8/int4 graphs, JSON lines (~3 min)
	bash tools/browser/test-js.sh ./wasm/backend/nn -run=^$$ -bench=WebNN -benchtime=1x -timeout=15m

MODELS := .cache/models
WWW := .cache/www

# The wasm bundle (wasm/cmd/nibble: the JS API plus the demo UI in site/).
build:
	GOOS=js GOARCH=wasm go build -o site/nibble.wasm ./wasm/cmd/nibble
	cp "$$(go env GOROOT)/lib/wasm/wasm_exec.js" site/wasm_exec.js

# The demo at http://127.0.0.1:8787/: USE-lite, a synthetic bert-base layer and a synthetic
# llama-tiny decoder (random weights, for the text-generation panel) served with Range
# by the native Worker handler.
serve: deps build
	PORT=8787 MODELS=$(MODELS) WWW=$(WWW) bash tools/serve.sh

# The GPU harness (tools/gpu): builds .gpu/ (git-ignored: Node, dawn.node, the Vulkan loaders,
# the wasm/backend/gpu test binary) for a lent NVIDIA machine, which has no Node and no registry.
# There, with .gpu carried: bash tools/gpu/run.sh <go test flags> (README: "WebGPU on an NVIDIA H200").
gpu-prep:
	bash tools/gpu/prepare.sh

# .gpu/peer/ for tools/gpu/llamacpp.sh: llama.cpp (CUDA built there, node-llama-cpp's Vulkan
# backend) beside nibble's decode step on the lent machine, on a 7B GGUF of the same formats.
gpu-peer-prep: deps
	bash tools/gpu/peer-prep.sh

# nibble and ONNX Runtime Web 1.30 (MatMulNBits, 4-bit, block 32) side by side in one browser:
# same weights, outputs compared, ms and GB/s per shape and runtime.
bench-ort: deps
	go run ./tools/bench -quick

bench-ort-full: deps
	mkdir -p out && go run ./tools/bench -rounds 2 -json out/bench-ort.jsonl

bench: deps
	go test -run '^$$' -bench . ./wasm/quant/

# The Llama decoder against llama.cpp (node-llama-cpp 3.21.1): tokenizers, logits per format,
# greedy tokens, KV cache formats (native, part of test-go; files generated by tools/mkmodel).
test-llama:
	go test ./wasm/model/llama ./wasm/engine -run 'Llama|Tokenizer|Logits|Greedy|Cache|Generate' -v

# The decoder in headless Chromium (~1 min): the golden prompt's logits on cpu, webgpu and webnn
# against llama.cpp per file format (F32/F16/Q8_0/Q4_0), f16 and int8 KV caches against f32,
# 32 greedy tokens at F32 over each backend's KV cache equal to llama.cpp's; WebNN with int8
# activations (calibrated on the cpu) against the cpu on Q8_0/Q4_0; then JS's
# for await (const t of m.generate(...)), abort and return() within one token.
test-llama-browser: deps
	bash wasm/model/llama/testdata/browser.sh -run TestBrowserDecoder -v
	NIBBLE_BROWSER_PKG=./wasm/internal/jsapi bash wasm/model/llama/testdata/browser.sh -run TestGenerateIterator -v

# A Llama-3.2-1B-shaped Q4_0 file (LAYERS of its 16) loaded and generating in headless Chromium
# on each of BACKENDS (cpu, webgpu, webnn, webnn-int8: calibrated natively first): wasm memory
# after the load, prefill/decode tokens/s, KV bytes per token.
LAYERS ?= 2
BACKENDS ?= cpu,webgpu,webnn-int8
llama-big-browser: deps
	NIBBLE_LLAMA_BIG=$(LAYERS) NIBBLE_LLAMA_BIG_BACKENDS=$(BACKENDS) bash wasm/model/llama/testdata/browser.sh -run TestBrowserBig -v -test.timeout 20m

# nibble's decoder (each backend) beside wllama (llama.cpp in wasm) in one headless Chromium on
# the same GGUF: prefill and decode tokens/s, and each WebNN mode's top-1 agreement with webgpu's
# exact tokens, teacher-forced (tools/llamapeer; flags: -shape -layers -backends -tokens -wllama).
bench-llama: deps
	go run ./tools/llamapeer -shape llama-1b -layers 2 -backends webgpu,webnn-int8,webnn-f32 -tokens 16

# Regenerates wasm/model/llama/testdata/llamacpp.json with llama.cpp itself (minutes on 2 cores).
llama-golden: deps
	bash wasm/model/llama/testdata/golden.sh

# The npm package @nibble-ml/nibble (npm/): the library wasm (wasm/cmd/nibble-lib, no demo UI,
# -ldflags=-s -w), the ES module, its types and Go's wasm_exec.js, packed into .cache/npm/.
package:
	bash npm/pack.sh

# The package end to end in headless Chromium (~3 min): packs the tarball, builds the Vite example
# from it, then the example, a load in the worker vs the main thread (longest task printed),
# error codes, two loads sharing one download, abort, offline from the cache, and wasm memory
# over 10 load/dispose cycles.
test-package:
	NIBBLE_TEST_PACKAGE=1 go test ./npm -run TestPackage -v -count=1 -timeout 10m

# The README's size table: the package's wasm beside ONNX Runtime Web's and transformers.js's
# (the pinned versions' npm tarballs, unpacked into .cache/peers).
package-sizes: deps package
	mkdir -p .cache/peers && cd .cache/peers && for p in onnxruntime-web@1.30.0 onnxruntime-web@1.31.0-dev.20260914-8d85527a0; do \
		d=$${p//[@\/]/-}; [ -d $$d ] || { mkdir $$d && tar xzf "$$(npm pack --silent $$p)" -C $$d; }; done
	tar xzf .cache/npm/nibble-ml-nibble-0.1.0.tgz -C .cache/peers
	node npm/sizes.mjs "@nibble-ml/nibble 0.1.0=.cache/peers/package/dist/nibble.wasm" \
		"onnxruntime-web 1.30.0 (wasm)=.cache/peers/onnxruntime-web-1.30.0/package/dist/ort-wasm-simd-threaded.wasm" \
		"onnxruntime-web 1.30.0 (jsep: WebGPU)=.cache/peers/onnxruntime-web-1.30.0/package/dist/ort-wasm-simd-threaded.jsep.wasm" \
		"transformers.js 4.3.2 (onnxruntime-web 1.31.0-dev asyncify)=.cache/peers/onnxruntime-web-1.31.0-dev.20260914-8d85527a0/package/dist/ort-wasm-simd-threaded.asyncify.wasm"
