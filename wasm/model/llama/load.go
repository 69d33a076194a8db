package llama

import (
	"fmt"
	"io"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// File is a GGUF Llama file read whole onto a backend (tests, tools; the engine streams).
type File struct {
	Config    *Config
	Tokenizer *Tokenizer
	Weights   backend.WeightMap
}

// Release frees the weights.
func (f *File) Release() {
	for _, w := range f.Weights {
		w.Release()
	}
	f.Weights = nil
}

// ReadGGUF reads the header, checks the configuration and tokenizer before any weight arrives,
// then uploads each tensor as stored (Q4_0/Q8_0 map losslessly, F16/F32 stay float). On error
// nothing stays resident.
func ReadGGUF(r io.Reader, b backend.Backend) (*File, error) {
	g, err := format.NewGGUF(r, nil)
	if err != nil {
		return nil, errs.Mark(err, errs.ErrFormat)
	}
	c, err := ReadConfig(g, g.Tensors())
	if err != nil {
		return nil, err
	}
	tok, err := NewTokenizer(g)
	if err != nil {
		return nil, err
	}
	if tok.Len() != c.Vocab {
		return nil, errs.Mark(fmt.Errorf("llama: the tokenizer has %d tokens, %s %d rows", tok.Len(), TokenEmbd, c.Vocab), errs.ErrFormat)
	}
	f := &File{Config: c, Tokenizer: tok, Weights: backend.WeightMap{}}
	need := map[string]bool{}
	for _, n := range c.Tensors() {
		need[n] = true
	}
	for {
		t, err := g.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Release()
			return nil, err
		}
		if t.Name == RopeFreqs {
			if c.FreqFactor, err = t.Float32(); err != nil {
				f.Release()
				return nil, err
			}
			continue
		}
		if !need[t.Name] {
			continue
		}
		q, err := t.Quant()
		if err != nil {
			f.Release()
			return nil, err
		}
		if f.Weights[t.Name], err = b.Upload(q); err != nil {
			f.Release()
			return nil, fmt.Errorf("llama: upload %s: %w", t.Name, err)
		}
	}
	for n := range need {
		if _, ok := f.Weights[n]; !ok {
			f.Release()
			return nil, errs.Mark(fmt.Errorf("llama: tensor %s never arrived", n), errs.ErrFormat)
		}
	}
	return f, nil
}
