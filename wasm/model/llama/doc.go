// Package llama is the Llama-family decoder (Llama 1/2/3, TinyLlama, and GGUF files with
// general.architecture "llama"): its configuration read from GGUF metadata, its tokenizers
// ("llama" SentencePiece with byte fallback, "gpt2" byte-level BPE), its prefill and decode
// graphs over a KV cache kept on the backend (graph.State), and sampling.
//
// Nothing is assumed that the file states: head counts, head size, rope base and frequency
// scaling, norm epsilon, context length, vocabulary and special tokens, tied or separate head.
// What the file lacks or has that this package cannot run is an error naming the key.
//
// The definitions follow llama.cpp (the oracle the tests compare against): rotary embedding of
// adjacent pairs (GGUF stores Q and K permuted for it), angles computed as ggml does in float32,
// query head h reading KV head h/(heads/kv_heads), attention scaled by 1/√head_dim.
//
// On a backend whose graphs embed their weights (WebNN: the token table is a RowReader) the token
// rows are looked up on the host and the head is a graph of its own (see RowReader). A
// calibration (Calibrate, Options.Calibration) runs the Linears there with int8 activations, the
// head's most likely tokens rescored in float32; HeadOnly keeps the layers exact.
//
// Greedy generation on a backend whose programs chain runs (backend.Chainer: webgpu) ends each
// decode graph in ArgMax and feeds the id to the next step on the device, ChainDepth steps
// queued ahead: the device does not wait for the host between tokens (see Model.Generate).
//
// The package is pure Go; it builds graphs and runs them through any backend.Compiler.
package llama
