package llama

import (
	"context"
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// Backend is what the decoder runs on: whole graphs, and states for the KV cache.
type Backend interface {
	backend.Compiler
	backend.StateAllocator
}

// Options size the KV cache.
type Options struct {
	// Context is the cache's length in tokens: prompt and generated tokens together. 0 means the
	// file's context_length, capped at DefaultContext.
	Context int
	// Cache is the storage of the cached keys and values: f32, f16 or int8 per head with a scale.
	Cache graph.StateFormat
	// Calibration, on a backend that can use it (backend.CalibratedCompiler: WebNN), runs every
	// Linear with int8 activations at the calibrated ranges (static W8A8: TFLite fuses the
	// pattern into its int8 kernel); elsewhere it is ignored. See Calibrate. The logits then
	// differ from the exact path by the int8 rounding of every activation and of the weights
	// (4-bit weights are widened to int8 per-channel): a mode for speed, measured, not exact.
	Calibration *backend.Calibration
}

// RowReader is a weight whose rows the host can read back dequantized: the nn backend's, whose
// graphs embed every weight they read as constants of their own (WebNN has no constants shared
// between graphs). Where the token table is one, the decoder looks the prompt's rows up on the
// host and passes them in (the table never becomes a gather constant), and the output head is a
// graph of its own, compiled once per row count and shared by every cache bucket, instead of a
// copy of the vocabulary-sized weight in each bucket's graph; the body's graphs attend over the
// whole cache (one graph per row count, not one per cache length: each build copies every
// weight and takes seconds). With a calibration, the head's most likely tokens are rescored
// on the host (see rescore).
type RowReader interface {
	Rows(ids []int32) ([]float32, error)
}

// DefaultContext caps the cache when Options.Context is 0: a file may state 128K positions,
// which in f32 would take gigabytes a page does not have.
const DefaultContext = 2048

// Model is a decoder bound to a backend: weights resident, a KV cache allocated at its full
// length (so it never moves as it fills), programs compiled per shape bucket and reused.
// Not safe for concurrent use.
type Model struct {
	Config *Config
	opt    Options
	b      Backend
	ws     backend.Weights
	states backend.StateMap
	progs  map[progKey]backend.Program
	embed  RowReader // the token table when the host looks rows up (see RowReader); nil: a gather in the graph
	// Pos is how many tokens the cache holds.
	Pos int
}

type progKey struct {
	rows, keep int
	all, head  bool
	greedy     bool // ends in ArgMax: the next token id, not the logits (chain.go)
}

// New allocates the KV cache on b and binds the weights; graphs compile on first use.
func New(c *Config, b Backend, ws backend.Weights, opt Options) (*Model, error) {
	if opt.Context <= 0 {
		opt.Context = min(c.Context, DefaultContext)
	}
	if opt.Context > c.Context {
		return nil, errs.Mark(fmt.Errorf("llama: a cache of %d tokens is longer than the model's context_length %d", opt.Context, c.Context), errs.ErrBadArgument)
	}
	m := &Model{Config: c, opt: opt, b: b, ws: ws, states: backend.StateMap{}, progs: map[progKey]backend.Program{}}
	if w, ok := ws.Weight(TokenEmbd); ok {
		m.embed, _ = w.(RowReader)
	}
	for i := 0; i < c.Layers; i++ {
		for _, kv := range []string{"k", "v"} {
			spec := graph.StateSpec{Name: cacheName(i, kv), Shape: graph.Shape{opt.Context, c.KVHeads, c.HeadDim}, Storage: opt.Cache}
			s, err := b.NewState(spec)
			if err != nil {
				m.Release()
				return nil, fmt.Errorf("llama: KV cache %s: %w", spec.Name, err)
			}
			m.states[spec.Name] = s
		}
	}
	return m, nil
}

func cacheName(layer int, kv string) string { return fmt.Sprintf("blk.%d.cache_%s", layer, kv) }

// Context is the cache's length in tokens.
func (m *Model) Context() int { return m.opt.Context }

// KVBytes is the memory the KV cache holds; KVBytesPerToken what each cached token costs.
func (m *Model) KVBytes() int64 {
	var n int64
	for _, s := range m.states {
		n += s.Bytes()
	}
	return n
}

func (m *Model) KVBytesPerToken() int64 { return m.KVBytes() / int64(m.opt.Context) }

// Release frees the programs and the cache.
func (m *Model) Release() {
	for _, p := range m.progs {
		p.Release()
	}
	for _, s := range m.states {
		s.Release()
	}
	m.progs, m.states = nil, nil
}

// Reset empties the cache (the next Forward starts at position 0). Nothing is cleared: rows at
// or after Pos are masked until written again.
func (m *Model) Reset() { m.Pos = 0 }

// Forward runs ids at positions Pos, Pos+1, … (writing their keys and values into the cache) and
// returns the logits after the last one, or after each one when all is set ([len(ids)][Vocab]).
func (m *Model) Forward(ctx context.Context, ids []int32, all bool) ([][]float32, error) {
	if m.states == nil {
		return nil, errs.Mark(fmt.Errorf("llama: model released"), errs.ErrBadArgument)
	}
	T := len(ids)
	if T == 0 {
		return nil, errs.Mark(fmt.Errorf("llama: no tokens to run"), errs.ErrBadArgument)
	}
	if m.Pos+T > m.opt.Context {
		return nil, errs.Mark(fmt.Errorf("llama: %d tokens after %d cached exceed the context of %d tokens", T, m.Pos, m.opt.Context), errs.ErrTooLarge)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= m.Config.Vocab {
			return nil, errs.Mark(fmt.Errorf("llama: token id %d outside the vocabulary of %d", id, m.Config.Vocab), errs.ErrBadArgument)
		}
	}
	rows := bucket(T, m.opt.Context-m.Pos)
	keep := bucket(m.Pos+rows, m.opt.Context)
	host := m.embed != nil
	if host {
		// Such a backend copies every weight into each graph, and building one costs seconds:
		// one graph per row count attending over the whole cache (masked), not one per length.
		keep = m.opt.Context
	}
	p, err := m.program(progKey{rows: rows, keep: keep, all: all}, func() (*graph.Graph, error) {
		return m.Config.build(part{rows: rows, keep: keep, all: all, embedded: host, split: host}, m.opt.Cache, m.opt.Context)
	})
	if err != nil {
		return nil, err
	}
	in := m.Config.inputs(ids, m.Pos, rows, keep)
	if host {
		e, err := m.embed.Rows(ids)
		if err != nil {
			return nil, fmt.Errorf("llama: %s rows: %w", TokenEmbd, err)
		}
		// Padded rows are zeros: masked out of every real row's attention, later overwritten.
		in[0] = graph.F32Tensor(append(e, make([]float32, (rows-T)*m.Config.Hidden)...), rows, m.Config.Hidden)
	}
	out, err := p.Run(ctx, in)
	if err != nil {
		return nil, err
	}
	m.Pos += T
	if host {
		n := out[0].Shape[0]
		hp, err := m.program(progKey{rows: n, head: true}, func() (*graph.Graph, error) { return m.Config.BuildHead(n) })
		if err != nil {
			return nil, err
		}
		hidden := out[0]
		if out, err = hp.Run(ctx, out[:1]); err != nil {
			return nil, err
		}
		if err := m.rescore(out[0].F32, hidden); err != nil {
			return nil, err
		}
	}
	V := m.Config.Vocab
	logits := out[0].F32
	if !all {
		return [][]float32{logits[:V]}, nil
	}
	res := make([][]float32, T)
	for t := range res {
		res[t] = logits[t*V : (t+1)*V]
	}
	return res, nil
}

// rescoreTop is how many of each row's most likely tokens rescore recomputes.
var rescoreTop = 32

// rescore, when the head ran with int8 activations, recomputes the logits of each row's
// rescoreTop most likely tokens exactly on the host: the dot products of the row's hidden state
// (the body's float32 output) with those rows of the head weight, read back through RowReader.
// The head's int8 output step (the logits' calibrated range over 255, ~0.5 on a 128K
// vocabulary) would otherwise decide between near-tied tokens; what remains is the body's int8
// error in the hidden state.
func (m *Model) rescore(logits []float32, hidden graph.Tensor) error {
	if m.opt.Calibration == nil || rescoreTop <= 0 {
		return nil
	}
	if _, ok := m.b.(backend.CalibratedCompiler); !ok {
		return nil
	}
	name := Output
	if m.Config.Tied {
		name = TokenEmbd
	}
	w, _ := m.ws.Weight(name)
	head, ok := w.(RowReader)
	if !ok {
		return nil
	}
	V, D := m.Config.Vocab, m.Config.Hidden
	for r := 0; r < hidden.Shape[0]; r++ {
		row := logits[r*V : (r+1)*V]
		top := topK(row, rescoreTop)
		ws, err := head.Rows(top)
		if err != nil {
			return fmt.Errorf("llama: rescore: %w", err)
		}
		h := hidden.F32[r*D : (r+1)*D]
		for i, id := range top {
			var s float32
			for k, v := range ws[i*D : (i+1)*D] {
				s += h[k] * v
			}
			row[id] = s
		}
	}
	return nil
}

// topK is the indices of the k largest values of v (fewer when v is shorter), in no order.
func topK(v []float32, k int) []int32 {
	k = min(k, len(v))
	idx := make([]int32, 0, k)
	low := 0 // index into idx of the smallest kept value, once full
	for i, x := range v {
		if len(idx) < k {
			idx = append(idx, int32(i))
			if len(idx) == k {
				low = argminAt(v, idx)
			}
			continue
		}
		if x > v[idx[low]] {
			idx[low] = int32(i)
			low = argminAt(v, idx)
		}
	}
	return idx
}

func argminAt(v []float32, idx []int32) int {
	j := 0
	for i := range idx {
		if v[idx[i]] < v[idx[j]] {
			j = i
		}
	}
	return j
}

// program is the compiled graph for key, built and compiled on first use: with int8 activations
// where a calibration is given and the backend takes one.
func (m *Model) program(key progKey, build func() (*graph.Graph, error)) (backend.Program, error) {
	if p, ok := m.progs[key]; ok {
		return p, nil
	}
	g, err := build()
	if err != nil {
		return nil, err
	}
	ws := backend.WithStates(m.ws, m.states)
	var p backend.Program
	if cc, ok := m.b.(backend.CalibratedCompiler); ok && m.opt.Calibration != nil {
		p, err = cc.CompileCalibrated(g, ws, m.opt.Calibration)
	} else {
		p, err = m.b.Compile(g, ws)
	}
	if err != nil {
		return nil, fmt.Errorf("llama: compile %s: %w", g.Name, err)
	}
	m.progs[key] = p
	return p, nil
}

// bucket rounds n up to a power of two of at least 16, within limit (n itself beyond it), so a
// few graphs serve every length: padded rows are masked out and later overwritten.
func bucket(n, limit int) int {
	if n == 1 {
		return 1 // decode: one row, never padded
	}
	b := 16
	for b < n {
		b *= 2
	}
	if b > limit {
		return max(n, min(b, limit))
	}
	return b
}

// inputs are a run's tensors: ids (padded with 0), the write position, rope tables for rows
// positions, the causal mask over keep cached rows, and the row whose logits are wanted.
func (c *Config) inputs(ids []int32, pos, rows, keep int) []graph.Tensor {
	T := len(ids)
	padded := make([]int32, rows)
	copy(padded, ids)
	ps := make([]int, rows)
	for i := range ps {
		ps[i] = pos + i
	}
	cos, sin := c.Rope(ps)
	mask := make([]float32, rows*keep)
	for t := 0; t < rows; t++ {
		for j := 0; j <= min(pos+t, keep-1); j++ {
			mask[t*keep+j] = 1
		}
	}
	half := c.HeadDim / 2
	return []graph.Tensor{
		graph.I32Tensor(padded, rows),
		graph.I32Tensor([]int32{int32(pos)}, 1),
		graph.F32Tensor(cos, rows, 1, half, 1),
		graph.F32Tensor(sin, rows, 1, half, 1),
		graph.F32Tensor(mask, rows, keep),
		graph.I32Tensor([]int32{int32(T - 1)}, 1),
	}
}

// Build is the decoder's graph for rows tokens written into a cache of context rows of the given
// storage, attending over its first keep rows: logits [1, Vocab] for the row named by the
// input "last" (or [rows, Vocab] for every row, when all).
//
// Inputs, in order: ids i32 [rows], pos i32 [1] (where the rows go in the cache), rope_cos and
// rope_sin f32 [rows, 1, HeadDim/2, 1], mask f32 [rows, keep] (1 where a row may attend), last
// i32 [1].
func (c *Config) Build(rows, keep int, storage graph.StateFormat, context int, all bool) (*graph.Graph, error) {
	return c.build(part{rows: rows, keep: keep, all: all}, storage, context)
}

// part is which graph build makes: embedded takes the rows' embeddings as the input "x" f32
// [rows, Hidden] in place of ids (the host looked them up); split ends at the normalized hidden
// state ([1, Hidden], or [rows, Hidden] when all) for BuildHead's graph to finish.
type part struct {
	rows, keep           int
	all, embedded, split bool
}

func (c *Config) build(pt part, storage graph.StateFormat, context int) (*graph.Graph, error) {
	rows, keep := pt.rows, pt.keep
	name := fmt.Sprintf("llama/rows%d/keep%d", rows, keep)
	if pt.split {
		name += "/body"
	}
	g := graph.New(name)
	half := c.HeadDim / 2
	var x graph.Value
	if pt.embedded {
		x = g.Input("x", graph.Float32, rows, c.Hidden)
	} else {
		x = g.Input("ids", graph.Int32, rows)
	}
	pos := g.Input("pos", graph.Int32, 1)
	cos := g.Input("rope_cos", graph.Float32, rows, 1, half, 1)
	sin := g.Input("rope_sin", graph.Float32, rows, 1, half, 1)
	mask := g.Input("mask", graph.Float32, rows, keep)
	last := g.Input("last", graph.Int32, 1)
	if !pt.embedded {
		x = g.Gather("embed", g.Weight(TokenEmbd, c.Vocab, c.Hidden), x)
	}
	for i := 0; i < c.Layers; i++ {
		x = c.layer(g, i, x, pos, cos, sin, mask, rows, keep, storage, context)
	}
	if !pt.all {
		x = g.Gather("last", x, last)
	}
	x = g.RMSNorm("output_norm", x, g.Weight(OutputNorm, c.Hidden), c.Eps)
	if !pt.split {
		x = c.head(g, x)
	}
	if err := g.Output(x); err != nil {
		return nil, err
	}
	return g, nil
}

// BuildHead is the output head alone: logits [rows, Vocab] from the normalized hidden state,
// the input "x" f32 [rows, Hidden].
func (c *Config) BuildHead(rows int) (*graph.Graph, error) {
	g := graph.New(fmt.Sprintf("llama/head/rows%d", rows))
	if err := g.Output(c.head(g, g.Input("x", graph.Float32, rows, c.Hidden))); err != nil {
		return nil, err
	}
	return g, nil
}

// head is the Linear "logits" over the output weight, or the token table when tied.
func (c *Config) head(g *graph.Graph, x graph.Value) graph.Value {
	w := Output
	if c.Tied {
		w = TokenEmbd
	}
	return g.Linear("logits", x, g.Weight(w, c.Vocab, c.Hidden), graph.None)
}

// layer is one block: x + attention(norm(x)), then + SwiGLU(norm(·)).
func (c *Config) layer(g *graph.Graph, i int, x, pos, cos, sin, mask graph.Value, rows, keep int, storage graph.StateFormat, context int) graph.Value {
	w := func(name string, shape ...int) graph.Value { return g.Weight(LayerTensor(i, name), shape...) }
	l := func(s string) string { return fmt.Sprintf("blk.%d/%s", i, s) }
	D, H, KV, Dh := c.Hidden, c.Heads, c.KVHeads, c.HeadDim
	G := H / KV
	h := g.RMSNorm(l("attn_norm"), x, w("attn_norm", D), c.Eps)
	q := g.Linear(l("q"), h, w("attn_q", D, D), graph.None)
	k := g.Linear(l("k"), h, w("attn_k", KV*Dh, D), graph.None)
	v := g.Linear(l("v"), h, w("attn_v", KV*Dh, D), graph.None)
	q = c.rope(g, l("q_rope"), q, cos, sin, rows, H)
	k = c.rope(g, l("k_rope"), k, cos, sin, rows, KV)
	v = g.Reshape(l("v_heads"), v, rows, KV, Dh)
	ks := g.StateWrite(l("k_cache"), g.State(cacheName(i, "k"), storage, context, KV, Dh), k, pos, keep)
	vs := g.StateWrite(l("v_cache"), g.State(cacheName(i, "v"), storage, context, KV, Dh), v, pos, keep)
	// Query head h reads KV head h/G: group the G query heads of each KV head into one batch.
	qg := g.Reshape(l("q_group"), q, rows, KV, G, Dh)
	qg = g.Transpose(l("q_t"), qg, 1, 2, 0, 3) // [KV, G, rows, Dh]
	qg = g.Reshape(l("q_flat"), qg, KV, G*rows, Dh)
	kt := g.Transpose(l("k_t"), ks, 1, 0, 2) // [KV, keep, Dh]
	vt := g.Transpose(l("v_t"), vs, 1, 0, 2)
	s := g.MatMul(l("qk"), qg, kt, true) // [KV, G·rows, keep]
	s = g.Scale(l("qk_scale"), s, float32(1/math.Sqrt(float64(Dh))))
	s = g.Reshape(l("scores"), s, KV, G, rows, keep)
	p := g.Softmax(l("attn"), s, mask)
	p = g.Reshape(l("attn_flat"), p, KV, G*rows, keep)
	o := g.MatMul(l("av"), p, vt, false) // [KV, G·rows, Dh]
	o = g.Reshape(l("o_group"), o, KV, G, rows, Dh)
	o = g.Transpose(l("o_t"), o, 2, 0, 1, 3) // [rows, KV, G, Dh]
	o = g.Reshape(l("o_flat"), o, rows, D)
	x = g.Add(l("attn_res"), x, g.Linear(l("o"), o, w("attn_output", D, D), graph.None))
	h = g.RMSNorm(l("ffn_norm"), x, w("ffn_norm", D), c.Eps)
	gate := g.SiLU(l("gate_silu"), g.Linear(l("gate"), h, w("ffn_gate", c.FFN, D), graph.None))
	up := g.Linear(l("up"), h, w("ffn_up", c.FFN, D), graph.None)
	down := g.Linear(l("down"), g.Mul(l("swiglu"), gate, up), w("ffn_down", D, c.FFN), graph.None)
	return g.Add(l("ffn_res"), x, down)
}

// rope rotates the adjacent pairs (2i, 2i+1) of each head of x [rows, heads·Dh] by the angles
// the tables hold: x0·cos − x1·sin, x0·sin + x1·cos. Tables rather than the RoPE op because the
// file may scale each frequency (rope_freqs) or the positions (linear scaling).
func (c *Config) rope(g *graph.Graph, label string, x, cos, sin graph.Value, rows, heads int) graph.Value {
	half := c.HeadDim / 2
	xp := g.Reshape(label+"/pairs", x, rows, heads, half, 2)
	x0 := g.Slice(label+"/x0", xp, 3, 0, 1)
	x1 := g.Slice(label+"/x1", xp, 3, 1, 2)
	y0 := g.Sub(label+"/y0", g.Mul(label+"/x0c", x0, cos), g.Mul(label+"/x1s", x1, sin))
	y1 := g.Add(label+"/y1", g.Mul(label+"/x0s", x0, sin), g.Mul(label+"/x1c", x1, cos))
	return g.Reshape(label+"/heads", g.Concat(label+"/join", 3, y0, y1), rows, heads, c.HeadDim)
}
