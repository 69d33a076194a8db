// Package stream owns nibble's progressive loader: it reads a model file as a byte stream, parses
// its header with wasm/format, quantizes every tensor chunk by chunk (a few rows at a time) as
// the bytes arrive, uploads each finished tensor to a backend, and drops the full-precision
// bytes. Nothing here ever holds a whole full-precision tensor, let alone the whole model: peak
// memory is the quantized model plus a bounded window of in-flight chunks.
//
// The pipeline is pure Go over io.Reader and tests natively. Its byte source is an [Opener], a
// function that opens the file at a byte offset, so a broken connection resumes where it broke
// (HTTP Range) and the quantized result is byte-identical to an uninterrupted load. The js && wasm
// files adapt fetch and its ReadableStream to an Opener ([Fetch]); natively [HTTP] does the same
// with net/http.
//
// A model split across files (a TF.js model's weight shards) is one Source through [JoinSource]:
// Range resume mid-shard, each shard's sha256 checked as it ends ([TFJSShards], [TFJSReader]).
//
// With Options.Cache the quantized tensors of each file are kept (in the browser's Cache API,
// [BrowserCache]; [MemCache] natively), keyed by the file's hash and the quantization options,
// so a reload reads them back, progressively and checked, with no download and no quantization.
//
// Files are hostile until proven otherwise: nothing is allocated from a size a header declares
// before it is checked against the file's size (the manifest's, or the server's), the caller's
// Options.MemoryBudget and wasm/format's Limits; where no size is known, a tensor's buffers grow
// with the rows that really arrived. Every file a manifest names must lie in the model's
// directory ([ConfinedURL]). Every error wraps one of wasm/errs's kinds, and one a retry cannot
// fix (a 404, a file shorter than its manifest says) is not retried.
//
// A [Load] is asynchronous: [Start] returns at once, and a model can ask [Load.IsResident] or
// [Load.Wait] for the tensors of layer i and run it while later layers still stream.
//
// Inside, a file goes through named stages, each a function a test calls alone (pipeline.go):
// source (a resumable, hashed byte stream) → header (parsed; read-ahead replayed) → plan (each
// tensor's format, checked against the file's size and the budget) → rows (jobs of whole rows in
// the pool's buffers, pool.go) → quantize (the workers) → upload (quantize.go) → publish (the
// file verified, its tensors usable). A file the cache holds skips them all (cacheload.go);
// load.go holds the Load's state and its methods.
//
// The package does not choose precisions beyond a default (that is wasm/plan's job), does not
// parse file formats itself (wasm/format), and does not touch GPU or WebNN objects except
// through a backend's Upload.
package stream
