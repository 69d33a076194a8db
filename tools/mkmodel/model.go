package main

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/format"
)

// tensorSpec is one tensor of a synthetic model. Shape is row-major [N, K] for matrices.
type tensorSpec struct {
	Name  string
	Shape []int
	Kind  kind
}

// kind picks the value distribution: what real checkpoints look like for that role.
type kind uint8

const (
	weight    kind = iota // matrix: normal, per-row scale variation, a few outlier input channels
	gain                  // norm scale: close to 1
	bias                  // small, centred on 0
	embedding             // embedding table: normal rows of varied scale, no outlier channels
)

// model is a named architecture: its tensors for a number of layers, and its GGUF metadata.
type model struct {
	Arch    string
	Tensors []tensorSpec
	Meta    []format.GGUFKV
	Scale   map[string]float64   // multiplies a tensor's spread (absent: 1)
	Fixed   map[string][]float32 // fixed values of a 1-D tensor (rope_freqs), not drawn ones
}

// llama describes the sizes of one Llama-family model.
type llama struct{ hidden, ffn, heads, kvHeads, vocab int }

var (
	llama7b = llama{hidden: 4096, ffn: 11008, heads: 32, kvHeads: 32, vocab: 32000}
	// Llama 3.2 1B: grouped-query attention with 8 KV heads of 64, tied embeddings.
	llama1b = llama{hidden: 2048, ffn: 8192, heads: 32, kvHeads: 8, vocab: 128256}
)

// shapeNames are the -shape values, for the usage message.
var shapeNames = []string{"llama-7b", "llama-1b", "bert-base", "single-4096", "custom"}

// buildModel returns the tensors of shape for layers transformer layers (0 means 1); embed adds
// the embedding tables, final norm and output head. gguf selects llama.cpp tensor names instead
// of Hugging Face ones.
func buildModel(shape string, layers, rows, cols int, embed, gguf bool) (*model, error) {
	if layers <= 0 {
		layers = 1
	}
	switch shape {
	case "llama-7b":
		return llama7b.model(layers, embed, gguf), nil
	case "llama-1b":
		return llama1b.model(layers, embed, gguf), nil
	case "bert-base":
		return bertBase(layers, embed, gguf), nil
	case "single-4096":
		rows, cols = 4096, 4096
	case "custom":
		if rows <= 0 || cols <= 0 {
			return nil, fmt.Errorf("-shape custom needs -rows and -cols, both positive (got %d×%d)", rows, cols)
		}
	default:
		return nil, fmt.Errorf("unknown -shape %q (want one of %v)", shape, shapeNames)
	}
	return &model{Arch: "nibble-synthetic", Tensors: []tensorSpec{{Name: "weight", Shape: []int{rows, cols}}},
		Meta: []format.GGUFKV{{Key: "general.architecture", Value: "nibble-synthetic"}}}, nil
}

func (l llama) model(layers int, embed, gguf bool) *model {
	h, f := l.hidden, l.ffn
	kv := h / l.heads * l.kvHeads
	m := &model{Arch: "llama"}
	pick := func(hf, gg string) string {
		if gguf {
			return gg
		}
		return hf
	}
	if embed {
		m.Tensors = append(m.Tensors, tensorSpec{pick("model.embed_tokens.weight", "token_embd.weight"), []int{l.vocab, h}, embedding})
	}
	for i := range layers {
		name := func(hf, gg string) string {
			if gguf {
				return fmt.Sprintf("blk.%d.%s", i, gg)
			}
			return fmt.Sprintf("model.layers.%d.%s", i, hf)
		}
		m.Tensors = append(m.Tensors,
			tensorSpec{name("input_layernorm.weight", "attn_norm.weight"), []int{h}, gain},
			tensorSpec{name("self_attn.q_proj.weight", "attn_q.weight"), []int{h, h}, weight},
			tensorSpec{name("self_attn.k_proj.weight", "attn_k.weight"), []int{kv, h}, weight},
			tensorSpec{name("self_attn.v_proj.weight", "attn_v.weight"), []int{kv, h}, weight},
			tensorSpec{name("self_attn.o_proj.weight", "attn_output.weight"), []int{h, h}, weight},
			tensorSpec{name("post_attention_layernorm.weight", "ffn_norm.weight"), []int{h}, gain},
			tensorSpec{name("mlp.gate_proj.weight", "ffn_gate.weight"), []int{f, h}, weight},
			tensorSpec{name("mlp.up_proj.weight", "ffn_up.weight"), []int{f, h}, weight},
			tensorSpec{name("mlp.down_proj.weight", "ffn_down.weight"), []int{h, f}, weight},
		)
	}
	if embed {
		m.Tensors = append(m.Tensors,
			tensorSpec{pick("model.norm.weight", "output_norm.weight"), []int{h}, gain},
			tensorSpec{pick("lm_head.weight", "output.weight"), []int{l.vocab, h}, weight},
		)
	}
	m.Meta = []format.GGUFKV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "llama.block_count", Value: uint32(layers)},
		{Key: "llama.embedding_length", Value: uint32(h)},
		{Key: "llama.feed_forward_length", Value: uint32(f)},
		{Key: "llama.attention.head_count", Value: uint32(l.heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(l.kvHeads)},
	}
	return m
}

// bertBase is BERT-base's encoder: hidden 768, intermediate 3072, with its biases and norms.
func bertBase(layers int, embed, gguf bool) *model {
	const h, f = 768, 3072
	m := &model{Arch: "bert"}
	if embed {
		pick := func(hf, gg string) string {
			if gguf {
				return gg
			}
			return "bert.embeddings." + hf
		}
		m.Tensors = append(m.Tensors,
			tensorSpec{pick("word_embeddings.weight", "token_embd.weight"), []int{30522, h}, embedding},
			tensorSpec{pick("position_embeddings.weight", "position_embd.weight"), []int{512, h}, embedding},
			tensorSpec{pick("token_type_embeddings.weight", "token_types.weight"), []int{2, h}, embedding},
			tensorSpec{pick("LayerNorm.weight", "token_embd_norm.weight"), []int{h}, gain},
			tensorSpec{pick("LayerNorm.bias", "token_embd_norm.bias"), []int{h}, bias},
		)
	}
	for i := range layers {
		name := func(hf, gg string) string {
			if gguf {
				return fmt.Sprintf("blk.%d.%s", i, gg)
			}
			return fmt.Sprintf("bert.encoder.layer.%d.%s", i, hf)
		}
		lin := func(hf, gg string, n, k int) []tensorSpec {
			return []tensorSpec{
				{name(hf+".weight", gg+".weight"), []int{n, k}, weight},
				{name(hf+".bias", gg+".bias"), []int{n}, bias},
			}
		}
		norm := func(hf, gg string) []tensorSpec {
			return []tensorSpec{
				{name(hf+".weight", gg+".weight"), []int{h}, gain},
				{name(hf+".bias", gg+".bias"), []int{h}, bias},
			}
		}
		for _, ts := range [][]tensorSpec{
			lin("attention.self.query", "attn_q", h, h),
			lin("attention.self.key", "attn_k", h, h),
			lin("attention.self.value", "attn_v", h, h),
			lin("attention.output.dense", "attn_output", h, h),
			norm("attention.output.LayerNorm", "attn_output_norm"),
			lin("intermediate.dense", "ffn_up", f, h),
			lin("output.dense", "ffn_down", h, f),
			norm("output.LayerNorm", "layer_output_norm"),
		} {
			m.Tensors = append(m.Tensors, ts...)
		}
	}
	m.Meta = []format.GGUFKV{
		{Key: "general.architecture", Value: "bert"},
		{Key: "bert.block_count", Value: uint32(layers)},
		{Key: "bert.embedding_length", Value: uint32(h)},
		{Key: "bert.feed_forward_length", Value: uint32(f)},
		{Key: "bert.attention.head_count", Value: uint32(12)},
	}
	return m
}
