package llama

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// chainTiny is a toy decoder for the chained loop's tests: its 40-token cache makes generation
// to the end cross two bucket boundaries (16 → 32 → 40 cached rows), so fed ids cross programs.
var chainTiny = Config{Layers: 2, Hidden: 64, FFN: 128, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 97,
	Context: 64, Eps: 1e-5, RopeBase: 10000, RopeScale: 1}

const chainContext = 40

// randomWeights uploads random f32 weights of every tensor c reads: matrices with rows of norm
// about 1, norm gains around 1, a token table of unit normals.
func randomWeights(t testing.TB, b backend.Backend, c *Config, seed uint64) backend.WeightMap {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	D, KV := c.Hidden, c.KVHeads*c.HeadDim
	shapes := map[string][2]int{TokenEmbd: {c.Vocab, D}, OutputNorm: {1, D}, Output: {c.Vocab, D}}
	for i := 0; i < c.Layers; i++ {
		for name, s := range map[string][2]int{"attn_norm": {1, D}, "ffn_norm": {1, D}, "attn_q": {D, D}, "attn_k": {KV, D},
			"attn_v": {KV, D}, "attn_output": {D, D}, "ffn_gate": {c.FFN, D}, "ffn_up": {c.FFN, D}, "ffn_down": {D, c.FFN}} {
			shapes[LayerTensor(i, name)] = s
		}
	}
	ws := backend.WeightMap{}
	for _, name := range c.Tensors() {
		s := shapes[name]
		v := make([]float32, s[0]*s[1])
		for i := range v {
			switch {
			case s[0] == 1:
				v[i] = 1 + 0.1*float32(rng.NormFloat64())
			case name == TokenEmbd:
				v[i] = float32(rng.NormFloat64())
			default:
				v[i] = float32(rng.NormFloat64() / math.Sqrt(float64(s[1])))
			}
		}
		q, err := quant.Quantize(name, v, s[0], s[1], quant.Format{Bits: 32}, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ws[name], err = b.Upload(q); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// hostChain is the cpu as a backend whose programs chain runs: Queue runs at once, the fed id
// copied on the host. It runs the chained loop's logic (what it queues ahead, where it stops,
// Pos) natively, against the step-by-step loop on the plain cpu.
type hostChain struct {
	*cpu.Backend
	queued *int
}

func (h hostChain) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	p, err := h.Backend.Compile(g, ws)
	return chainedProgram{p, h.queued}, err
}

type chainedProgram struct {
	backend.Program
	queued *int
}

type ranAlready []graph.Tensor

func (r ranAlready) Wait(context.Context) ([]graph.Tensor, error) { return r, nil }

func (p chainedProgram) Queue(ctx context.Context, in []graph.Tensor, feed backend.Feed) (backend.Queued, error) {
	if feed.From != nil {
		in = slices.Clone(in)
		in[feed.Input] = feed.From.(ranAlready)[feed.Output]
	}
	*p.queued++
	out, err := p.Run(ctx, in)
	return ranAlready(out), err
}

// generation is one Generate call's outcome.
type generation struct {
	ids  []int32
	err  error
	pos  int
	next []float32 // the logits of one more token after it: the cache it left must be the same
}

// chainCases run Generate on a model in the ways it can stop: at the context, after MaxTokens,
// at an end-of-generation token, on a yield error, on a cancel.
func chainCases(t *testing.T, m *Model, prompt []int32, eos int32) map[string]generation {
	t.Helper()
	errStop := errors.New("stop")
	tok := &Tokenizer{eog: map[int32]bool{eos: true}}
	out := map[string]generation{}
	run := func(name string, s Sampling, tok *Tokenizer, yield func(n int, cancel func()) error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var g generation
		g.err = m.Generate(ctx, prompt, s, tok, func(id int32) error {
			g.ids = append(g.ids, id)
			return yield(len(g.ids), cancel)
		})
		g.pos = m.Pos
		m.Pos = min(m.Pos, m.Context()-1) // a full cache: rewrite its last row
		l, err := m.Forward(context.Background(), []int32{7}, false)
		if err != nil {
			t.Fatalf("%s: the next token: %v", name, err)
		}
		g.next = l[0]
		out[name] = g
	}
	none := func(int, func()) error { return nil }
	run("to the context", Sampling{}, nil, none)
	for _, n := range []int{1, 2, 9} {
		run("max "+string(rune('0'+n)), Sampling{MaxTokens: n}, nil, none)
	}
	run("end of generation", Sampling{}, tok, none)
	run("yield error", Sampling{}, nil, func(n int, _ func()) error {
		if n == 4 {
			return errStop
		}
		return nil
	})
	run("cancel", Sampling{}, nil, func(n int, cancel func()) error {
		if n == 5 {
			cancel()
		}
		return nil
	})
	if g := out["yield error"]; g.err != errStop {
		t.Errorf("yield error: Generate returned %v", g.err)
	}
	if g := out["cancel"]; errs.Kind(g.err) != errs.ErrAborted || len(g.ids) != 5 {
		t.Errorf("cancel: %d tokens, %v; want 5 and ErrAborted", len(g.ids), g.err)
	}
	return out
}

// compareGenerations checks that got (the chained loop) yielded exactly want's ids, stopped
// with the same error and Pos, and left a cache that gives the next token's logits within tol.
func compareGenerations(t *testing.T, got, want map[string]generation, tol float64) {
	t.Helper()
	for name, w := range want {
		g := got[name]
		if !slices.Equal(g.ids, w.ids) {
			t.Errorf("%s: ids\n%v\nwant\n%v", name, g.ids, w.ids)
		}
		if (g.err == nil) != (w.err == nil) || g.err != nil && g.err.Error() != w.err.Error() {
			t.Errorf("%s: error %v, want %v", name, g.err, w.err)
		}
		if g.pos != w.pos {
			t.Errorf("%s: Pos %d, want %d", name, g.pos, w.pos)
		}
		worst := 0.0
		for i := range w.next {
			worst = max(worst, math.Abs(float64(g.next[i]-w.next[i])))
		}
		if !(worst <= tol) {
			t.Errorf("%s: the next token's logits differ by %g (tolerance %g)", name, worst, tol)
		}
	}
}

// chainPrompt and the end-of-generation id: the 7th token the plain loop generates.
var chainPrompt = []int32{1, 17, 42, 5, 63}

func chainEOS(t *testing.T, m *Model) int32 {
	t.Helper()
	var ids []int32
	if err := m.Generate(context.Background(), chainPrompt, Sampling{MaxTokens: 7}, nil, func(id int32) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids[6]
}

// TestChainedGreedy runs greedy generation on the cpu step by step and through the chained
// loop (hostChain): the same ids, stops, errors and Pos, and the same logits after, exactly.
func TestChainedGreedy(t *testing.T) {
	c := chainTiny
	plain := cpu.New()
	queued := 0
	chained := hostChain{cpu.New(), &queued}
	models := map[string]*Model{}
	for name, b := range map[string]Backend{"plain": plain, "chained": chained} {
		m, err := New(&c, b, randomWeights(t, cpu.New(), &c, 3), Options{Context: chainContext})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Release()
		models[name] = m
	}
	eos := chainEOS(t, models["plain"])
	want := chainCases(t, models["plain"], chainPrompt, eos)
	queued = 0
	got := chainCases(t, models["chained"], chainPrompt, eos)
	compareGenerations(t, got, want, 0)
	if n := len(want["to the context"].ids); n != chainContext-len(chainPrompt)+1 {
		t.Errorf("to the context: %d tokens, want %d", n, chainContext-len(chainPrompt)+1)
	}
	// Steps queued: those the plain loop ran, plus up to ChainDepth ahead at each early stop.
	ran, extra := 0, 0
	for name, w := range want {
		ran += w.pos - len(chainPrompt)
		if strings.HasPrefix(name, "max") || name == "to the context" {
			continue
		}
		extra += ChainDepth
	}
	if queued < ran || queued > ran+extra {
		t.Errorf("%d steps queued, want the %d the plain loop ran plus at most %d ahead", queued, ran, extra)
	}
}
