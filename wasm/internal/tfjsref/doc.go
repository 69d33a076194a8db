// Package tfjsref runs TF.js itself (npm @tensorflow/tfjs 4.22.0, pinned in package.json) in the
// page, as the reference that nibble's whole-model outputs are checked and benchmarked against:
// the same model.json, the same browser, TF.js's cpu, wasm and webgpu backends. It owns loading
// TF.js's bundles from a local server (tools/streamserve serves node_modules/@tensorflow under
// /vendor/tfjs), picking a backend, and feeding a TF.js graph model the way TF.js's own
// universal-sentence-encoder package does. It is test and benchmark support: nibble's library
// code must not import it. js && wasm only; this file exists so native tooling sees the package.
//
// # What TF.js feeds USE-lite
//
// npm @tensorflow-models/universal-sentence-encoder (1.3.3, embed in src/index.ts) tokenizes
// each text (its SentencePiece Tokenizer over vocab.json: an empty text gives no ids) and calls
// model.executeAsync with two int32 tensors, the model's two placeholders:
//
//	indices  int32 [nnz, 2]  (sentence, position) for every id, sentence-major, positions 0, 1, …
//	values   int32 [nnz]     the ids, in the same order
//
// nnz is the total id count of the batch. Nothing else is added: no BOS/EOS, no padding ids, no
// length or mask input. The output is one float32 tensor [rows, 512], already L2-normalized.
// Embed builds exactly these from [][]int32.
//
// What the graph does with them (read from model.json, confirmed by TestInputEdges):
//
//   - The batch is a SparseTensor turned dense with default value -1, shape
//     max(0, max(indices)+1) per dimension; mask = dense > -1. So rows = last sentence with an
//     id + 1: trailing sentences with no ids get no row (USE's embed then returns fewer rows
//     than texts), while an empty sentence before a non-empty one gets a row: the embedding of
//     no tokens (pooled sum 0 divided by max(length, 1), through the tanh layer, normalized).
//     Embed refuses trailing empty sentences rather than return fewer rows.
//   - Positions from 128 on are dropped (ClipToMaxLength: position < 128): 129 or 140 ids embed
//     exactly as their first 128.
//   - Id 0 (<unk>) is an ordinary token, not padding; the padding value is -1. vocab.json has
//     8000 pieces but the token table (module/Embeddings_en) has 8002 rows.
//   - The ids are embedded in the order of values and scattered to the mask's positions in
//     row-major order: indices must be sorted sentence-major, as USE builds them (unsorted
//     indices silently permute tokens), and a gap in positions changes the positional signal.
//   - A sentence's embedding does not depend on its batch (padding is masked out of attention
//     with a -1e9 bias and out of the mean pooling): batched and alone agree to 1e-13 on wasm, exactly on cpu.
//
// # Surprises
//
//   - Input with no id at all: cpu and webgpu each return one row (different ones), wasm throws
//     "sparseIndices should be a scalar, vector, or matrix". Embed refuses it.
//   - Ids past the table: cpu and wasm throw in GatherV2, webgpu returns a row as if nothing
//     were wrong. A negative id breaks webgpu inside ScatterNd. Embed refuses both.
//   - The webgpu backend reads the GPU synchronously mid-graph (the dense shape and Where are
//     data-dependent) and warns about it on the console; executeAsync is not enough to avoid it.
//   - The wasm backend runs 1 thread in wasmbrowsertest's page: threads need SharedArrayBuffer,
//     i.e. a cross-origin-isolated page (COOP/COEP headers), which that page is not. Describe
//     reports the count the backend really uses.
//   - Backends agree closely: on the sentence set (empty sentence included) wasm is 1e-12 and
//     webgpu (SwiftShader) 3e-8 in cosine distance from cpu.
package tfjsref
