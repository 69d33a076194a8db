package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// ArchLlama is a Llama-family decoder from a GGUF file (Model.Generate).
const ArchLlama = "llama"

// llamaArch is what the engine adds to the load of a Llama GGUF file: the configuration and the
// tokenizer from its header (read before any weight is requested), the rope frequency factors as
// they pass the loader, and the decoder once the weights are in.
type llamaArch struct {
	cfg *llama.Config
	tok *llama.Tokenizer

	mu    sync.Mutex
	freqs []float32
	dec   *llama.Model
	opt   llama.Options
}

// detectLlama reads the header of a single GGUF file through its own request, closed once the
// tensor infos are parsed, and recognises a Llama decoder. Another architecture (or another file
// type) is not an error: the weights load as before and Generate says why it cannot run. A
// Llama file whose metadata or tokenizer this engine cannot run fails here, before the load.
func detectLlama(ctx context.Context, spec *Spec) (*llamaArch, error) {
	// Only a .gguf name costs the extra header request: a safetensors file (or a load that the
	// cache serves) must not reach the server for it.
	if spec.Kind != KindFile || len(spec.Sources) != 1 || !strings.HasSuffix(strings.ToLower(spec.Sources[0].Name), ".gguf") {
		return nil, nil
	}
	rc, err := spec.Sources[0].Open(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the header of %s: %w", spec.Sources[0].Name, err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	if magic, err := br.Peek(4); err != nil || string(magic) != format.GGUFMagic {
		return nil, nil
	}
	g, err := format.NewGGUF(br, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, spec.Sources[0].Name, err)
	}
	if a, _ := g.Meta("general.architecture"); a != "llama" {
		return nil, nil
	}
	cfg, err := llama.ReadConfig(g, g.Tensors())
	if err != nil {
		return nil, err
	}
	tok, err := llama.NewTokenizer(g)
	if err != nil {
		return nil, err
	}
	if tok.Len() != cfg.Vocab {
		return nil, fmt.Errorf("%w: the tokenizer has %d tokens, %s has %d rows", ErrFormat, tok.Len(), llama.TokenEmbd, cfg.Vocab)
	}
	return &llamaArch{cfg: cfg, tok: tok}, nil
}

// wrap keeps the values of rope_freqs as they pass (the graph's rope tables are computed from
// them on the host); every tensor still goes to the backend.
func (a *llamaArch) wrap(up stream.Uploader) stream.Uploader {
	return uploaderFunc(func(t *quant.Tensor) (backend.Weight, error) {
		if t.Name == llama.RopeFreqs {
			a.mu.Lock()
			a.freqs = quant.Dequantize(t)
			a.mu.Unlock()
		}
		return up.Upload(t)
	})
}

type uploaderFunc func(t *quant.Tensor) (backend.Weight, error)

func (f uploaderFunc) Upload(t *quant.Tensor) (backend.Weight, error) { return f(t) }

// GenerateOptions are Generate's settings; field names are the JS API's.
type GenerateOptions struct {
	MaxTokens   int     `json:"maxTokens"`   // 0: until the end-of-generation token or a full cache
	Temperature float32 `json:"temperature"` // 0: greedy
	TopK        int     `json:"topK"`
	TopP        float32 `json:"topP"`
	Seed        uint64  `json:"seed"`
	// Context is the KV cache's length in tokens (0: the model's, capped at 2048); Cache its
	// storage: "f32" (default), "f16" or "int8" (per head and token, with a scale).
	Context int    `json:"context"`
	Cache   string `json:"cache"`
}

// Token is one generated token: its id and the text it completes (UTF-8; a token that ends
// inside a character gives "" and the character comes with a later token).
type Token struct {
	ID   int32  `json:"id"`
	Text string `json:"text"`
}

// Generate tokenizes prompt (with BOS when the file asks for it), runs it and yields each
// generated token. It waits for the weights it needs if the model is still loading. Cancelling
// ctx stops it before the next token (ErrAborted); an error from yield stops it and is returned.
func (m *Model) Generate(ctx context.Context, prompt string, opt GenerateOptions, yield func(Token) error) error {
	a := m.llama
	if a == nil {
		return fmt.Errorf("%w: %s is not a Llama-family GGUF file, so nibble cannot generate text with it", ErrModel, m.Spec.URL)
	}
	storage, ok := map[string]graph.StateFormat{"": graph.StateF32, "f32": graph.StateF32, "f16": graph.StateF16, "int8": graph.StateInt8}[opt.Cache]
	if !ok {
		return fmt.Errorf("%w: cache %q: want f32, f16 or int8", ErrBadArgument, opt.Cache)
	}
	dec, err := a.decoder(ctx, m, llama.Options{Context: opt.Context, Cache: storage})
	if err != nil {
		return err
	}
	ids := a.tok.Encode(prompt, false)
	if a.tok.AddBOS {
		ids = append([]int32{a.tok.BOS}, ids...)
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: an empty prompt, and the model adds no BOS token", ErrBadArgument)
	}
	var pending []byte
	err = dec.Generate(ctx, ids, llama.Sampling{MaxTokens: opt.MaxTokens, Temperature: opt.Temperature, TopK: opt.TopK, TopP: opt.TopP, Seed: opt.Seed}, a.tok, func(id int32) error {
		pending = append(pending, a.tok.Piece(id)...)
		n := validPrefix(pending)
		text := string(pending[:n])
		pending = append(pending[:0], pending[n:]...)
		m.markFirstOutput()
		return yield(Token{ID: id, Text: text})
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: generation stopped: %w", ErrAborted, err)
	}
	return err
}

// validPrefix is the length of the longest prefix of b that does not end inside a UTF-8
// character (invalid bytes count as characters: they will never complete).
func validPrefix(b []byte) int {
	for i := len(b); i > 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i-1]) {
			if r, size := utf8.DecodeRune(b[i-1:]); r == utf8.RuneError && size <= 1 && !utf8.FullRune(b[i-1:]) {
				return i - 1
			}
			return len(b)
		}
	}
	return len(b)
}

// decoder builds the decoder once its weights are resident, with a KV cache of opt's size and
// storage (a new cache when they change).
func (a *llamaArch) decoder(ctx context.Context, m *Model, opt llama.Options) (*llama.Model, error) {
	b, ok := m.Backend.(llama.Backend)
	if !ok {
		return nil, fmt.Errorf("%w: the %s backend does not keep KV caches (no graph states) yet", ErrUnsupported, m.Backend.Name())
	}
	if err := m.load.Wait(ctx, a.cfg.Tensors()...); err != nil {
		return nil, fmt.Errorf("llama: waiting for the weights: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dec != nil && a.opt == opt {
		return a.dec, nil
	}
	if a.dec != nil {
		a.dec.Release()
		a.dec = nil
	}
	cfg := *a.cfg
	if llama.HasRopeFreqs(m.load.Tensors()) {
		if a.freqs == nil {
			return nil, fmt.Errorf("%w: %s arrived but its values were not kept", ErrFormat, llama.RopeFreqs)
		}
		cfg.FreqFactor = a.freqs
	}
	dec, err := llama.New(&cfg, b, m.load, opt)
	if err != nil {
		return nil, err
	}
	a.dec, a.opt = dec, opt
	return dec, nil
}

// KVCache reports the decoder's KV cache: bytes held and bytes per token (zeros before the
// first Generate, or for a model that does not generate).
func (m *Model) KVCache() (bytes, perToken int64, tokens int) {
	if m.llama == nil {
		return 0, 0, 0
	}
	m.llama.mu.Lock()
	defer m.llama.mu.Unlock()
	if m.llama.dec == nil {
		return 0, 0, 0
	}
	return m.llama.dec.KVBytes(), m.llama.dec.KVBytesPerToken(), m.llama.dec.Context()
}

func (a *llamaArch) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dec != nil {
		a.dec.Release()
		a.dec = nil
	}
}
