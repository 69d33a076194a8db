// Package engine is nibble's public Go API and what the nibble bundle does: it measures the devices the browser
// offers, resolves a model URL into the files to stream, loads them through wasm/stream into the
// chosen backend with the chosen quantized format, runs matmuls on the resident weights, and
// measures each layer (latency on the backend, error against a float32 reference streamed from
// the same file).
//
// It is the one implementation behind both faces of the bundle: the JS API that
// wasm/cmd/nibble exports (globalThis.nibble) and the demo page in site/. Everything that need
// not touch the browser is pure Go and tests natively (over net/http, with the CPU backend);
// the *_js.go files add fetch, WebGPU and WebNN.
//
// It owns no format, kernel or loading logic of its own: parsing is wasm/format's, streaming
// wasm/stream's, quantization wasm/quant's, compute the backends'. It must not hold a model's
// full-precision weights: the reference is computed one tensor at a time as the file streams
// past a second time.
package engine
