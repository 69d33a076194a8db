package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
)

// TestLLM writes each -llm shape's small variant and reads it back: llama.* metadata, a
// vocabulary of exactly the stated size with its types (and scores or merges), every tensor.
func TestLLM(t *testing.T) {
	for _, shape := range []string{"llama-tiny", "llama-tiny3"} {
		var buf bytes.Buffer
		if _, err := generate(&buf, options{Shape: shape, Format: "gguf-q4_0", Seed: 1, Layers: 2, LLM: true}); err != nil {
			t.Fatal(err)
		}
		g, err := format.NewGGUF(bytes.NewReader(buf.Bytes()), nil)
		if err != nil {
			t.Fatal(err)
		}
		d := decoders[shape]
		if v, _ := format.GGUFMeta[uint32](g, "llama.attention.head_count_kv"); int(v) != d.kvHeads {
			t.Errorf("%s: head_count_kv %d", shape, v)
		}
		tokens, _ := format.GGUFMeta[[]string](g, "tokenizer.ggml.tokens")
		types, _ := format.GGUFMeta[[]int32](g, "tokenizer.ggml.token_type")
		if len(tokens) != d.vocab || len(types) != d.vocab {
			t.Errorf("%s: %d tokens, %d types, want %d", shape, len(tokens), len(types), d.vocab)
		}
		seen := map[string]bool{}
		for _, tk := range tokens {
			if seen[tk] {
				t.Errorf("%s: token %q twice", shape, tk)
			}
			seen[tk] = true
		}
		if d.tokenizer == "gpt2" {
			merges, _ := format.GGUFMeta[[]string](g, "tokenizer.ggml.merges")
			if len(merges) < 100 {
				t.Errorf("%s: %d merges", shape, len(merges))
			}
		}
		all := readTensors(t, g)
		n := len(all)
		for _, tn := range all {
			if tn.Name == "rope_freqs.weight" {
				f, _ := tn.Float32()
				if f[0] != 1 || f[len(f)-1] != 32 {
					t.Errorf("rope_freqs %v: want 1 for the highest frequency, 32 for the lowest", f)
				}
			}
		}
		want := 2*9 + 2 // layers, embeddings, final norm
		if !d.tied {
			want++
		}
		if d.llama3 {
			want++
		}
		if n != want {
			t.Errorf("%s: %d tensors, want %d", shape, n, want)
		}
	}
}

// TestLLMMixed checks gguf-mixed's types: Q4_0 for the FFN and the token table, Q8_0 for the
// attention and the head, F32 for the norms.
func TestLLMMixed(t *testing.T) {
	var buf bytes.Buffer
	if _, err := generate(&buf, options{Shape: "llama-tiny", Format: "gguf-mixed", Seed: 1, Layers: 2, LLM: true}); err != nil {
		t.Fatal(err)
	}
	g, err := format.NewGGUF(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]format.DType{
		"token_embd.weight": format.Q4_0, "blk.1.ffn_gate.weight": format.Q4_0, "blk.1.ffn_up.weight": format.Q4_0,
		"blk.0.ffn_down.weight": format.Q4_0, "blk.0.attn_q.weight": format.Q8_0, "blk.1.attn_output.weight": format.Q8_0,
		"output.weight": format.Q8_0, "blk.0.ffn_norm.weight": format.F32, "output_norm.weight": format.F32,
	}
	for _, tn := range readTensors(t, g) {
		if d, ok := want[tn.Name]; ok {
			if tn.DType != d {
				t.Errorf("%s: %v, want %v", tn.Name, tn.DType, d)
			}
			delete(want, tn.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("tensors not written: %v", want)
	}
}

// readTensors reads every tensor of r.
func readTensors(t *testing.T, r interface {
	Next() (*format.Tensor, error)
}) []*format.Tensor {
	var out []*format.Tensor
	for {
		tn, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tn)
	}
}
