package llama

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// Sampling chooses each next token. The zero value is greedy decoding until the end-of-
// generation token or the cache is full.
type Sampling struct {
	MaxTokens   int     // stop after this many tokens (0: until EOS or the cache is full)
	Temperature float32 // ≤ 0: greedy (the most likely token, the lowest id on ties)
	TopK        int     // keep the K most likely tokens (0: all)
	TopP        float32 // keep the most likely tokens whose probabilities sum to at least P (0 or 1: all)
	Seed        uint64  // the same seed, prompt and settings give the same tokens
}

// Sampler draws tokens from logits as Sampling says.
type Sampler struct {
	s   Sampling
	rng *rand.Rand
	idx []int
	p   []float64
}

// NewSampler checks s and seeds its generator.
func NewSampler(s Sampling) (*Sampler, error) {
	if s.MaxTokens < 0 || s.TopK < 0 || s.TopP < 0 || s.TopP > 1 || math.IsNaN(float64(s.Temperature)) || math.IsNaN(float64(s.TopP)) {
		return nil, errs.Mark(fmt.Errorf("llama: sampling %+v: maxTokens and topK must be ≥ 0, topP in [0, 1]", s), errs.ErrBadArgument)
	}
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x6e6962626c65))}, nil
}

// Next picks a token from logits.
func (z *Sampler) Next(logits []float32) int32 {
	if z.s.Temperature <= 0 {
		return int32(graph.FirstMax(logits)) // what the graph op ArgMax computes on a device
	}
	z.idx = z.idx[:0]
	for i := range logits {
		z.idx = append(z.idx, i)
	}
	sort.SliceStable(z.idx, func(a, b int) bool { return logits[z.idx[a]] > logits[z.idx[b]] })
	n := len(z.idx)
	if z.s.TopK > 0 && z.s.TopK < n {
		n = z.s.TopK
	}
	z.p = z.p[:0]
	mx := float64(logits[z.idx[0]])
	var sum float64
	for _, i := range z.idx[:n] {
		e := math.Exp((float64(logits[i]) - mx) / float64(z.s.Temperature))
		z.p = append(z.p, e)
		sum += e
	}
	if p := float64(z.s.TopP); p > 0 && p < 1 {
		var acc float64
		for j, e := range z.p {
			acc += e / sum
			if acc >= p {
				n = j + 1
				break
			}
		}
		z.p = z.p[:n]
		sum = 0
		for _, e := range z.p {
			sum += e
		}
	}
	r := z.rng.Float64() * sum
	for j, e := range z.p {
		if r -= e; r < 0 {
			return int32(z.idx[j])
		}
	}
	return int32(z.idx[len(z.p)-1])
}

// Generate empties the cache, runs the prompt (ids, BOS included if wanted) and yields each
// generated token until tok says it ends the generation (that token is not yielded),
// s.MaxTokens tokens, or the cache is full. ctx is checked before every token, so a cancel stops
// it within one token's time. yield's error stops it and is returned.
//
// Greedy decoding (Temperature ≤ 0) on a backend whose programs chain runs (backend.Chainer:
// webgpu) picks each token on the device (ArgMax) and keeps ChainDepth steps queued ahead of
// the host; the ids, the stop and Pos afterwards are those of the step-by-step loop.
func (m *Model) Generate(ctx context.Context, prompt []int32, s Sampling, tok *Tokenizer, yield func(id int32) error) error {
	z, err := NewSampler(s)
	if err != nil {
		return err
	}
	m.Reset()
	if len(prompt) >= m.opt.Context {
		return errs.Mark(fmt.Errorf("llama: the prompt is %d tokens, the context holds %d (and needs room for one more)", len(prompt), m.opt.Context), errs.ErrTooLarge)
	}
	logits, err := m.Forward(ctx, prompt, false)
	if err != nil {
		return err
	}
	if s.Temperature <= 0 {
		if chained, err := m.generateChained(ctx, z.Next(logits[0]), s, tok, yield); chained {
			return err
		}
	}
	for n := 0; s.MaxTokens == 0 || n < s.MaxTokens; n++ {
		id := z.Next(logits[0])
		if tok != nil && tok.EndOfGeneration(id) {
			return nil
		}
		if err := yield(id); err != nil {
			return err
		}
		if m.Pos >= m.opt.Context || (s.MaxTokens > 0 && n+1 == s.MaxTokens) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return errs.Mark(err, errs.ErrAborted)
		}
		if logits, err = m.Forward(ctx, []int32{id}, false); err != nil {
			return err
		}
	}
	return nil
}
