// Command nibble is the WebAssembly bundle: built with GOOS=js GOARCH=wasm it defines
// globalThis.nibble, and mounts the demo UI (package site) when the page has an element with
// id "nibble-demo". All work happens in package engine; main_js.go is only the JS glue.
//
// # JS API
//
// Every method that does work returns a Promise; none blocks the page. Errors reject with an
// Error whose message says what failed and what to do.
//
//	nibble.version                  // string: module version and Go version
//	nibble.backends                 // ["auto", "webgpu", "webnn", "cpu"]
//	nibble.formats                  // format names the demo offers ("auto", "q4-sym-g32", ...)
//	await nibble.devices()          // {webgpu: {available, vendor, architecture, software,
//	                                //   shaderF16, subgroups, timestampQuery, features, limits,
//	                                //   error}, webnn: {available, dequantizeLinear: [types],
//	                                //   constants, float16, summary, error}, cpu: {...}}
//	const m = await nibble.load(url, {backend: "auto", format: "q4-sym-g32", search: false,
//	                                  cache: true, onProgress: p => ...})
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
//	await m.embed(texts)            // texts: a string or an array of strings; resolves to an
//	                                // array of Float32Array(512), one unit-length embedding per
//	                                // text, in order (USE-lite). Texts past 128 tokens are
//	                                // clipped, as the model itself does. An empty list, a
//	                                // non-string, or a model nibble cannot run whole reject.
//	await m.matmul(name, x, rows)   // Float32Array y[rows×N] = x[rows×K] · dequant(W)ᵀ
//	await m.measure({m: 1, runs: 5, maxLayers: 64, onLayer: r => ...})
//	    // per weight matrix: {name, n, k, m, format, bytes, f32Bytes, medianMs, minMs, runs,
//	    //  relRms, cosine, maxAbs, error} against a float32 reference streamed from the same file
//	m.release()                     // frees weights and the backend; later calls reject
//
// Built natively the command only says how to build it.
package main
