// Package jsapi is nibble's JS API: the glue between JavaScript and package engine (argument
// checks, Promises, AbortSignals, conversions, error codes) that both bundles export, the demo's
// (wasm/cmd/nibble, as globalThis.nibble) and the npm package's (wasm/cmd/nibble-lib, handed to
// npm/src/runtime.js). It holds no logic of its own beyond that and the sharing of concurrent
// loads; the npm package's TypeScript types (npm/src/index.d.ts) describe the same objects.
//
// Results cross as JSON (one json.Marshal + JSON.parse per call) so every field name lives in
// one place, the engine's struct tags; only float32 vectors cross as typed arrays, in one bulk
// copy each.
//
// # JS API
//
// Every method that does work returns a Promise; none blocks the page. Errors reject with an
// Error whose message is the Go chain, with code ("NOT_FOUND", "BAD_ARGUMENT"... see
// wasm/errs) and summary (one line a person can act on; Describe).
//
//	nibble.version                  // string: module version and Go version
//	nibble.backends                 // ["auto", "webgpu", "webnn", "cpu", "hybrid"]
//	nibble.formats                  // format names the demo offers ("auto", "q4-sym-g32", ...)
//	await nibble.devices()          // {webgpu: {available, vendor, architecture, software,
//	                                //   shaderF16, subgroups, timestampQuery, features, limits,
//	                                //   error}, webnn: {available, dequantizeLinear: [types],
//	                                //   constants, float16, summary, error}, cpu: {...}}
//	const m = await nibble.load(url, {backend: "auto", format: "q4-sym-g32", search: false,
//	                                  cache: true, memoryBudget: 0, signal, onProgress: p => ...})
//	    // policy (wasm/plan: "auto", "quality", "balanced", "mixed", "small", "int4", "tiny")
//	    // instead of format, overrides ("pattern=format[@backend],…"), int8Activations
//	    // (engine.Options.Int8Activations: WebGPU's int8-activation GEMVs, WebNN's calibrated
//	    // W8A8 encoder; the cpu and hybrid ignore it). signal: an
//	    // AbortSignal that cancels the load and frees what it held. Loads of one URL with the
//	    // same options share one download (and one model, released with the last handle).
//	    // url: a model directory (".../models/tiny/"), its manifest.json, a TF.js model.json or
//	    // one .safetensors/.gguf file. Resolves once every tensor is resident. A TF.js model's
//	    // shards stream back to back, each checked against the size and sha256 manifest.json
//	    // gives. cache: keep the quantized tensors in the Cache API (cache "nibble-quantized",
//	    // one entry per file and format) and read them back on the next load, with no download
//	    // and no quantization. Default: true for every file that has a sha256 (from
//	    // manifest.json) or a version to key it by, so a model directory is cached and a bare
//	    // file URL is not; false neither reads nor writes the cache. A damaged or stale entry is
//	    // ignored (and rewritten), never used in part. onProgress gets
//	    // {bytesReceived, bytesTotal, tensorsReady, tensorsTotal, heldBytes, peakHeldBytes,
//	    //  residentBytes, quantizedTotal, resumes, elapsedMs, firstReadyMs, wasmMemoryBytes,
//	    //  cacheHits, cacheRead, cacheWritten, done, error} about every 100 ms and once at the end
//	    //  (cacheHits: files read from the cache; their bytes are not in bytesReceived).
//	m.backend, m.format, m.url      // what ran
//	m.loadMs                        // load time, from nibble.load to every tensor resident
//	m.cache                         // whether the load used the cache (read or wrote it)
//	m.cacheHits, m.cacheRead, m.cacheWritten // files read from the cache; entry bytes read, written
//	m.bytes                         // bytes the backend holds for the weights
//	m.f32Bytes                      // the same tensors as float32
//	m.notes                         // [string]: assumptions and backend choices
//	m.tensors()                     // [{name, shape, dtype, format, bytes, f32Bytes, resident, layer}]
//	m.memory()                      // {f32Bytes, residentBytes, reductionPct, peakHeldBytes, ...}
//	m.arch                          // "use-lite" when nibble runs the whole model, else ""
//	await m.embed(texts, {signal})  // texts: a string or an array of strings; resolves to an
//	                                // array of Float32Array(512), one unit-length embedding per
//	                                // text, in order (USE-lite). Texts past 128 tokens are
//	                                // clipped, as the model itself does. An empty list, a
//	                                // non-string, or a model nibble cannot run whole reject.
//	await m.generate(prompt, {maxTokens, temperature, topK, topP, seed, context, cache, signal,
//	                          onToken: t => ...})
//	                                // a Llama GGUF model: resolves to {text, tokens, ms}; onToken
//	                                // gets each {id, text} as it is sampled
//	await m.matmul(name, x, rows)   // Float32Array y[rows×N] = x[rows×K] · dequant(W)ᵀ
//	await m.measure({m: 1, runs: 5, maxLayers: 64, onLayer: r => ...})
//	    // per weight matrix: {name, n, k, m, format, bytes, f32Bytes, medianMs, minMs, runs,
//	    //  relRms, cosine, maxAbs, error} against a float32 reference streamed from the same file
//	m.stats()                       // memory(), the load's figures, notes and handles in one object
//	m.plan()                        // {backend, format, precision: the plan (wasm/plan), tensors}
//	m.release(), m.dispose()        // this handle is done; the last one frees weights and the
//	                                // backend; later calls reject
package jsapi
