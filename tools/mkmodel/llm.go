package main

import (
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/format"
)

// decoder is a Llama-family model that llama.cpp can run: shapes, the hyper-parameters its GGUF
// metadata states, and the tokenizer it ships with.
type decoder struct {
	llama
	context   int
	ropeBase  float32
	eps       float32
	tokenizer string // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
	tied      bool   // no output.weight: the head is token_embd (Llama 3.2)
	llama3    bool   // rope_freqs.weight from Llama 3's frequency scaling (factor 32, 8192 positions)
}

var decoders = map[string]decoder{
	// Test shape: four heads of 16 sharing two KV heads, every K a multiple of 32 (Q4_0 blocks).
	"llama-tiny": {llama: llama{hidden: 64, ffn: 192, heads: 4, kvHeads: 2, vocab: 640}, context: 256, ropeBase: 10000, eps: 1e-5, tokenizer: "llama"},
	// The same with Llama 3's tokenizer type, tied head and scaled rope frequencies.
	"llama-tiny3": {llama: llama{hidden: 64, ffn: 192, heads: 4, kvHeads: 2, vocab: 640}, context: 256, ropeBase: 500000, eps: 1e-5, tokenizer: "gpt2", tied: true, llama3: true},
	"tinyllama":   {llama: llama{hidden: 2048, ffn: 5632, heads: 32, kvHeads: 4, vocab: 32000}, context: 2048, ropeBase: 10000, eps: 1e-5, tokenizer: "llama"},
	"llama-1b":    {llama: llama1b, context: 131072, ropeBase: 500000, eps: 1e-5, tokenizer: "gpt2", tied: true, llama3: true},
	"llama-7b":    {llama: llama7b, context: 4096, ropeBase: 10000, eps: 1e-5, tokenizer: "llama"},
}

// ggufFileType is general.file_type (llama_ftype) for each -format.
// gguf-mixed says Q8_0, the type of its attention and head.
var ggufFileType = map[string]uint32{"gguf-f32": 0, "gguf-f16": 1, "gguf-q4_0": 2, "gguf-q8_0": 7, "gguf-mixed": 7}

// llmModel is a complete decoder for -llm: embeddings, layers, final norm, head, llama.* metadata
// and a tokenizer vocabulary, so llama.cpp loads the file as it would a converted checkpoint.
func llmModel(o options) (*model, error) {
	d, ok := decoders[o.Shape]
	if !ok {
		return nil, fmt.Errorf("-llm needs -shape llama-tiny, llama-tiny3, tinyllama, llama-1b or llama-7b (got %q)", o.Shape)
	}
	if o.Tokenizer != "" {
		d.tokenizer = o.Tokenizer
	}
	if o.Context > 0 {
		d.context = o.Context
	}
	ft, ok := ggufFileType[o.Format]
	if !ok {
		return nil, fmt.Errorf("-llm writes GGUF: -format gguf-f32|gguf-f16|gguf-q8_0|gguf-q4_0|gguf-mixed (got %q)", o.Format)
	}
	layers := max(1, o.Layers)
	tok, err := buildVocab(d.tokenizer, d.vocab)
	if err != nil {
		return nil, err
	}
	peak := o.Peak
	if peak == 0 {
		peak = 6
	}
	m := d.llama.model(layers, true, true)
	// The head's rows are scaled so that logits spread over several units: a peaked next-token
	// distribution as a trained model has, so greedy choices rarely tie.
	m.Scale = map[string]float64{"output.weight": peak}
	// No outlier input channels in the head (they would swamp the logits), nor anywhere in a
	// small test shape: with K = 64 the one outlier channel (10–50×) dominates every sum, the
	// model turns chaotic (a rounding difference flips which key attention picks), and a
	// comparison against another implementation measures nothing but those flips.
	for i := range m.Tensors {
		if n := m.Tensors[i].Name; n == "output.weight" || (d.hidden < 512 && m.Tensors[i].Kind == weight) {
			m.Tensors[i].Kind = embedding
		}
	}
	if d.tied {
		m.Scale["token_embd.weight"] = peak
	}
	if d.tied {
		m.Tensors = removeTensor(m.Tensors, "output.weight")
	}
	dh := d.hidden / d.heads
	if d.llama3 {
		m.Tensors = append([]tensorSpec{{"rope_freqs.weight", []int{dh / 2}, gain}}, m.Tensors...)
		m.Fixed = map[string][]float32{"rope_freqs.weight": llama3FreqFactors(d.ropeBase, dh)}
	}
	m.Meta = append([]format.GGUFKV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.file_type", Value: ft},
		{Key: "llama.context_length", Value: uint32(d.context)},
		{Key: "llama.embedding_length", Value: uint32(d.hidden)},
		{Key: "llama.block_count", Value: uint32(layers)},
		{Key: "llama.feed_forward_length", Value: uint32(d.ffn)},
		{Key: "llama.rope.dimension_count", Value: uint32(dh)},
		{Key: "llama.attention.head_count", Value: uint32(d.heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(d.kvHeads)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: d.eps},
		{Key: "llama.rope.freq_base", Value: d.ropeBase},
		{Key: "llama.vocab_size", Value: uint32(d.vocab)},
	}, tok.meta()...)
	return m, nil
}

func removeTensor(ts []tensorSpec, name string) []tensorSpec {
	out := ts[:0]
	for _, t := range ts {
		if t.Name != name {
			out = append(out, t)
		}
	}
	return out
}

// llama3FreqFactors are the divisors of each rope frequency that Llama 3.1/3.2 apply (their
// rope_scaling: factor 32, low 1, high 4, 8192 original positions), as convert_hf_to_gguf.py
// writes them into rope_freqs.weight.
func llama3FreqFactors(base float32, dh int) []float32 {
	const factor, low, high, orig = 32.0, 1.0, 4.0, 8192.0
	lowWave, highWave := orig/low, orig/high
	out := make([]float32, dh/2)
	for i := range out {
		freq := 1 / math.Pow(float64(base), float64(2*i)/float64(dh))
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = factor
		default:
			smooth := (orig/wave - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	return out
}
