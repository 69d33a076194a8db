//go:build !(js && wasm)

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/internal/testutil"
)

// tinyLlama writes tools/mkmodel's llama-tiny GGUF (the file the llama package's golden data
// comes from) and returns its bytes.
func tinyLlama(t *testing.T, shape, ff string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	out, err := exec.Command("go", "run", "github.com/nibble-ml/nibble/tools/mkmodel", "-llm", "-shape", shape, "-layers", "2", "-format", ff, "-seed", "1", "-o", path).CombinedOutput()
	if err != nil {
		t.Fatalf("mkmodel: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serveBytes(t *testing.T, files map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// rewrite copies a GGUF file with its metadata edited (drop keys, set values).
func rewrite(t *testing.T, src []byte, drop []string, set map[string]any) []byte {
	t.Helper()
	g, err := format.NewGGUF(bytes.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	var meta []format.GGUFKV
	for _, kv := range g.Metadata {
		if slices.Contains(drop, kv.Key) {
			continue
		}
		if v, ok := set[kv.Key]; ok {
			kv.Value = v
		}
		meta = append(meta, format.GGUFKV{Key: kv.Key, Value: kv.Value})
	}
	var infos []format.TensorInfo
	var data [][]byte
	for {
		tn, err := g.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, format.TensorInfo{Name: tn.Name, DType: tn.DType, Shape: tn.Shape})
		data = append(data, slices.Clone(tn.Data))
	}
	return testutil.GGUF(t, infos, meta, data...)
}

// TestGenerateLlama loads a Llama GGUF over HTTP on the cpu and generates greedily: the tokens
// must be llama.cpp's (the llama package's golden data), streamed one by one, with the KV cache
// reported; a cancelled context stops it.
func TestGenerateLlama(t *testing.T) {
	var g struct {
		Prompt string
		Models map[string]struct{ Greedy []int32 }
	}
	b, err := os.ReadFile("../model/llama/testdata/llamacpp.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	base := serveBytes(t, map[string][]byte{"tiny.gguf": tinyLlama(t, "llama-tiny", "gguf-f32")})
	ctx := context.Background()
	// "auto" would quantize the F32 matrices to q4 on arrival: f32 keeps llama.cpp's arithmetic.
	m, err := Load(ctx, base+"tiny.gguf", Options{Backend: "cpu", Format: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if m.Arch() != ArchLlama {
		t.Fatalf("arch %q", m.Arch())
	}
	var ids []int32
	var text strings.Builder
	err = m.Generate(ctx, g.Prompt, GenerateOptions{MaxTokens: 32, Context: 128}, func(tk Token) error {
		ids = append(ids, tk.ID)
		text.WriteString(tk.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := g.Models["spm-f32"].Greedy; !slices.Equal(ids, want) {
		t.Errorf("greedy %v\nllama.cpp %v", ids, want)
	}
	kv, per, n := m.KVCache()
	t.Logf("32 tokens equal llama.cpp's (%q); KV cache %d bytes for %d tokens, %d per token", text.String(), kv, n, per)
	// The same F32 file quantized on arrival (auto: q4-sym-g32) against llama.cpp on the original.
	mq, err := Load(ctx, base+"tiny.gguf", Options{Backend: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	want := g.Models["spm-f32"].Greedy
	if err := mq.Generate(ctx, g.Prompt, GenerateOptions{MaxTokens: 32, Context: 128}, func(tk Token) error {
		if len(want) > same && tk.ID == want[same] {
			same++
		} else {
			want = nil
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mq.Release()
	t.Logf("quantized to q4-sym-g32 on arrival: the first %d of 32 greedy tokens equal llama.cpp's on the F32 file", same)
	// Sampling is seeded: the same seed gives the same tokens.
	sample := func(seed uint64) []int32 {
		var out []int32
		if err := m.Generate(ctx, g.Prompt, GenerateOptions{MaxTokens: 12, Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: seed, Context: 128, Cache: "int8"}, func(tk Token) error {
			out = append(out, tk.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if a, b := sample(7), sample(7); !slices.Equal(a, b) {
		t.Errorf("seed 7 twice: %v, %v", a, b)
	}
	// A cancel stops within one token.
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	err = m.Generate(cctx, g.Prompt, GenerateOptions{MaxTokens: 30, Context: 128}, func(Token) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, ErrAborted) || n != 3 {
		t.Errorf("cancelled after 3 tokens: %d tokens, err %v", n, err)
	}
	// A prompt longer than the cache is refused, naming both lengths.
	err = m.Generate(ctx, strings.Repeat("the quick brown fox ", 40), GenerateOptions{Context: 16}, func(Token) error { return nil })
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "context holds 16") {
		t.Errorf("long prompt: %v", err)
	}
}

// TestGenerateBadInput: each bad file fails with an error naming what is missing or unsupported,
// before any weight is uploaded.
func TestGenerateBadInput(t *testing.T) {
	good := tinyLlama(t, "llama-tiny", "gguf-q8_0")
	files := map[string][]byte{
		"no-heads.gguf":  rewrite(t, good, []string{"llama.attention.head_count"}, nil),
		"no-tokens.gguf": rewrite(t, good, []string{"tokenizer.ggml.tokens"}, nil),
		"bert-tok.gguf":  rewrite(t, good, nil, map[string]any{"tokenizer.ggml.model": "bert"}),
		"no-tok.gguf":    rewrite(t, good, []string{"tokenizer.ggml.model"}, nil),
		"other.gguf":     rewrite(t, good, nil, map[string]any{"general.architecture": "bert"}),
	}
	base := serveBytes(t, files)
	ctx := context.Background()
	for name, want := range map[string]struct {
		kind error
		says string
	}{
		"no-heads.gguf":  {ErrFormat, "llama.attention.head_count is missing"},
		"no-tokens.gguf": {ErrFormat, "tokenizer.ggml.tokens is missing"},
		"bert-tok.gguf":  {ErrUnsupported, `tokenizer.ggml.model "bert" is not supported`},
		"no-tok.gguf":    {ErrFormat, "tokenizer.ggml.model is missing"},
	} {
		m, err := Load(ctx, base+name, Options{Backend: "cpu"})
		if err == nil {
			m.Release()
			t.Errorf("%s: loaded", name)
			continue
		}
		if !errors.Is(err, want.kind) || !strings.Contains(err.Error(), want.says) {
			t.Errorf("%s: %v (want %v saying %q)", name, err, want.kind, want.says)
		}
	}
	m, err := Load(ctx, base+"other.gguf", Options{Backend: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	err = m.Generate(ctx, "hi", GenerateOptions{}, func(Token) error { return nil })
	if !errors.Is(err, ErrModel) || !strings.Contains(err.Error(), "not a Llama-family GGUF") {
		t.Errorf("another architecture: %v", err)
	}
}
