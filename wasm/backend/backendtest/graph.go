package backendtest

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// GraphOptions adapt the graph section to a backend.
type GraphOptions struct {
	// Tolerance is the relative error allowed per element, measured against the reference's
	// |value| + RMS of the output (so values near zero in an output of size ~1 are not held to
	// a relative bound they cannot meet). 0 means 2e-4: float32 ops in another order, and the
	// transcendental functions of WGSL/WebNN, which are specified to a few ulp only.
	Tolerance float64
	// Supports filters the weight formats of the Linear and Gather cases, as Options.Supports.
	Supports func(f quant.Format) bool
	// Only runs the cases whose name contains it ("" runs all).
	Only string
}

// GraphCase is one graph with its weights and a way to draw inputs.
type GraphCase struct {
	Name    string
	Graph   *graph.Graph
	Weights map[string]*quant.Tensor
	Inputs  func(rng *rand.Rand) []graph.Tensor
}

// GraphCases builds every case: each op alone at awkward sizes, and composite blocks (an
// encoder layer with a padding mask, a decoder layer with RoPE and a causal mask).
func GraphCases(rng *rand.Rand, supports func(quant.Format) bool) []GraphCase {
	cs := &caseSet{rng: rng}
	cs.elementwise()
	cs.reductions()
	cs.weighted(graphFormats(supports))
	cs.shapes()
	cs.blocks(graphFormats(supports))
	return cs.cases
}

// caseSet collects graph cases; its weights come from one generator, so the order cases are
// added in is the order their weights are drawn in.
type caseSet struct {
	rng   *rand.Rand
	cases []GraphCase
}

// add builds a case named name; a build error is a bug in this file, so it panics.
func (cs *caseSet) add(name string, build func(g *graph.Graph, w weightSet) error, inputs func(rng *rand.Rand) []graph.Tensor) {
	g := graph.New(name)
	ws := weightSet{rng: cs.rng, t: map[string]*quant.Tensor{}}
	if err := build(g, ws); err != nil {
		panic(fmt.Sprintf("backendtest: case %s: %v", name, err))
	}
	cs.cases = append(cs.cases, GraphCase{Name: name, Graph: g, Weights: ws.t, Inputs: inputs})
}

// normal draws a float32 tensor of the shape, N(0, 1).
func normal(shape ...int) func(rng *rand.Rand) graph.Tensor {
	return func(rng *rand.Rand) graph.Tensor {
		return graph.F32Tensor(randn(rng, graph.Shape(shape).Size()), shape...)
	}
}

// ins draws one tensor from each of fs: a case's inputs.
func ins(fs ...func(rng *rand.Rand) graph.Tensor) func(rng *rand.Rand) []graph.Tensor {
	return func(rng *rand.Rand) []graph.Tensor {
		out := make([]graph.Tensor, len(fs))
		for i, f := range fs {
			out[i] = f(rng)
		}
		return out
	}
}

// elementwise: each unary op, and each binary op broadcasting an input and a weight.
func (cs *caseSet) elementwise() {
	for _, op := range []graph.Op{graph.OpReLU, graph.OpGELU, graph.OpSiLU, graph.OpTanh, graph.OpScale} {
		cs.add("unary/"+op.String(), func(g *graph.Graph, _ weightSet) error {
			x := g.Input("x", graph.Float32, 3, 37)
			var y graph.Value
			switch op {
			case graph.OpReLU:
				y = g.ReLU("y", x)
			case graph.OpGELU:
				y = g.GELU("y", x)
			case graph.OpSiLU:
				y = g.SiLU("y", x)
			case graph.OpTanh:
				y = g.Tanh("y", x)
			default:
				y = g.Scale("y", x, -0.37)
			}
			return g.Output(y)
		}, ins(normal(3, 37)))
	}
	for _, op := range []graph.Op{graph.OpAdd, graph.OpSub, graph.OpMul, graph.OpDiv} {
		cs.add("binary/"+op.String(), func(g *graph.Graph, w weightSet) error {
			a := g.Input("a", graph.Float32, 2, 3, 37)
			b := g.Input("b", graph.Float32, 2, 1, 37)
			c := g.Input("c", graph.Float32, 3, 1)
			bin := func(l string, x, y graph.Value) graph.Value {
				switch op {
				case graph.OpAdd:
					return g.Add(l, x, y)
				case graph.OpSub:
					return g.Sub(l, x, y)
				case graph.OpMul:
					return g.Mul(l, x, y)
				}
				return g.Div(l, x, y)
			}
			y := bin("ab", a, b)
			y = bin("yc", y, c)
			y = bin("yw", y, w.f32(g, "bias", 37))
			return g.Output(y, bin("same", a, a))
		}, binaryInputs)
	}
}

// binaryInputs are the binary cases' a, b and c, with divisors away from zero so Div's
// outputs stay in range.
func binaryInputs(rng *rand.Rand) []graph.Tensor {
	c := randn(rng, 3)
	for i := range c {
		c[i] = 0.5 + float32(math.Abs(float64(c[i])))
	}
	b := randn(rng, 74)
	for i := range b {
		b[i] = 1.5 + b[i]*0.1
	}
	return []graph.Tensor{graph.F32Tensor(randn(rng, 222), 2, 3, 37), graph.F32Tensor(b, 2, 1, 37), graph.F32Tensor(c, 3, 1)}
}

// reductions: the norms and softmax, plain and masked.
func (cs *caseSet) reductions() {
	cs.add("norm/layernorm", func(g *graph.Graph, w weightSet) error {
		x := g.Input("x", graph.Float32, 5, 67)
		return g.Output(g.LayerNorm("ln", x, w.f32(g, "gamma", 67), w.f32(g, "beta", 67), 1e-6))
	}, ins(normal(5, 67)))
	cs.add("norm/rmsnorm", func(g *graph.Graph, w weightSet) error {
		x := g.Input("x", graph.Float32, 5, 67)
		return g.Output(g.RMSNorm("rms", x, w.f32(g, "gamma", 67), 1e-5))
	}, ins(normal(5, 67)))
	cs.add("norm/l2normalize", func(g *graph.Graph, _ weightSet) error {
		return g.Output(g.L2Normalize("l2", g.Input("x", graph.Float32, 4, 45), 1e-12))
	}, ins(normal(4, 45)))
	cs.add("softmax/plain", func(g *graph.Graph, _ weightSet) error {
		return g.Output(g.Softmax("p", g.Input("x", graph.Float32, 2, 3, 5, 19), graph.None))
	}, ins(normal(2, 3, 5, 19)))
	cs.add("softmax/masked", func(g *graph.Graph, _ weightSet) error {
		x := g.Input("x", graph.Float32, 2, 3, 5, 19)
		m := g.Input("mask", graph.Float32, 2, 1, 1, 19)
		return g.Output(g.Softmax("p", x, m))
	}, ins(normal(2, 3, 5, 19), func(rng *rand.Rand) graph.Tensor {
		m := make([]float32, 38)
		for i := 0; i < 11; i++ {
			m[i] = 1 // batch 0 keeps 11 keys; batch 1 keeps none: its rows are all zeros
		}
		return graph.F32Tensor(m, 2, 1, 1, 19)
	}))
}

// weighted: Linear (with and without bias) and Gather (with out-of-range ids) per format.
func (cs *caseSet) weighted(formats []quant.Format) {
	for _, f := range formats {
		cs.add("linear/"+f.String(), func(g *graph.Graph, w weightSet) error {
			x := g.Input("x", graph.Float32, 2, 3, 300)
			y := g.Linear("fc", x, w.matrix(g, "w", 67, 300, f), w.f32(g, "b", 67))
			z := g.Linear("fc-nobias", g.Reshape("flat", x, 6, 300), w.matrix(g, "w", 67, 300, f), graph.None)
			return g.Output(y, z)
		}, ins(normal(2, 3, 300)))
		cs.add("gather/"+f.String(), func(g *graph.Graph, w weightSet) error {
			ids := g.Input("ids", graph.Int32, 2, 7)
			return g.Output(g.Gather("embed", w.matrix(g, "table", 41, 70, f), ids))
		}, func(rng *rand.Rand) []graph.Tensor {
			ids := make([]int32, 14)
			for i := range ids {
				ids[i] = int32(rng.IntN(41))
			}
			ids[3], ids[9] = -1, 41 // out of range: zero rows
			return []graph.Tensor{graph.I32Tensor(ids, 2, 7)}
		})
	}
}

// shapes: batched MatMul, the layout ops chained, masked mean pooling, RoPE both ways.
func (cs *caseSet) shapes() {
	cs.add("matmul/batched", func(g *graph.Graph, _ weightSet) error {
		a := g.Input("a", graph.Float32, 2, 3, 5, 17)
		b := g.Input("b", graph.Float32, 2, 3, 17, 9)
		bt := g.Input("bt", graph.Float32, 2, 3, 9, 17)
		return g.Output(g.MatMul("ab", a, b, false), g.MatMul("abt", a, bt, true))
	}, ins(normal(2, 3, 5, 17), normal(2, 3, 17, 9), normal(2, 3, 9, 17)))
	cs.add("layout/transpose-reshape-slice-concat", func(g *graph.Graph, _ weightSet) error {
		x := g.Input("x", graph.Float32, 2, 5, 3, 7)
		t := g.Transpose("t", x, 0, 2, 1, 3)
		r := g.Reshape("r", t, 6, 35)
		s := g.Slice("s", r, 1, 4, 23)
		c := g.Concat("c", 1, s, g.Slice("s2", r, 1, 0, 3), s)
		t2 := g.Transpose("t2", x, 3, 1, 0, 2)
		c0 := g.Concat("c0", 0, g.Slice("s3", t2, 0, 2, 5), t2)
		return g.Output(c, c0)
	}, ins(normal(2, 5, 3, 7)))
	cs.add("pool/meanpool", func(g *graph.Graph, _ weightSet) error {
		return g.Output(g.MeanPool("pool", g.Input("x", graph.Float32, 3, 6, 29), g.Input("mask", graph.Float32, 3, 6)))
	}, ins(normal(3, 6, 29), func(rng *rand.Rand) graph.Tensor {
		return graph.F32Tensor([]float32{1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, 3, 6)
	}))
	for _, inter := range []bool{false, true} {
		cs.add(fmt.Sprintf("rope/interleaved=%v", inter), func(g *graph.Graph, _ weightSet) error {
			return g.Output(g.RoPE("rope", g.Input("x", graph.Float32, 2, 5, 3, 10), g.Input("pos", graph.Int32, 5), 10000, inter))
		}, ins(normal(2, 5, 3, 10), func(rng *rand.Rand) graph.Tensor {
			return graph.I32Tensor([]int32{0, 1, 7, 300, 4095}, 5)
		}))
	}
}

// blocks: an encoder layer (encoderBlock) and a decoder layer (buildDecoderBlock) at 4 and
// 32 bits.
func (cs *caseSet) blocks(formats []quant.Format) {
	for _, f := range formats {
		if f.Bits != 4 && f.Bits != 32 {
			continue
		}
		cs.add("block/encoder-"+f.String(), func(g *graph.Graph, w weightSet) error {
			emb, hidden, drawn := encoderBlock.Build(g, blockWeights{w.rng, f})
			maps.Copy(w.t, drawn)
			return g.Output(emb, hidden)
		}, ins(normal(2, 7, 40), func(rng *rand.Rand) graph.Tensor {
			m := make([]float32, 14)
			for i := range m {
				m[i] = 1
			}
			m[7+5], m[7+6] = 0, 0 // the second sequence is two tokens shorter
			return graph.F32Tensor(m, 2, 7)
		}))
		cs.add("block/decoder-"+f.String(), func(g *graph.Graph, w weightSet) error {
			return buildDecoderBlock(g, w, f)
		}, ins(normal(1, 6, 48), func(rng *rand.Rand) graph.Tensor {
			return graph.I32Tensor([]int32{3, 4, 5, 6, 7, 8}, 6)
		}, func(rng *rand.Rand) graph.Tensor {
			m := make([]float32, 36) // causal: query i sees keys ≤ i
			for i := 0; i < 6; i++ {
				for j := 0; j <= i; j++ {
					m[i*6+j] = 1
				}
			}
			return graph.F32Tensor(m, 1, 1, 6, 6)
		}))
	}
}

// encoderBlock is the conformance suite's encoder: one layer over x[2, 7, 40], 4 heads of 10,
// FFN 70, no dense layer; both the embedding and the hidden states are outputs.
var encoderBlock = Encoder{B: 2, T: 7, D: 40, H: 4, F: 70, Layers: 1}

// blockWeights draw the encoder block's weights as the other cases' weightSet does: matrices
// RandomWeights·10 in format f, vectors 1 + 0.2·N(0, 1) whatever the mean.
type blockWeights struct {
	rng *rand.Rand
	f   quant.Format
}

func (w blockWeights) Matrix(name string, n, k int) *quant.Tensor {
	vals := RandomWeights(w.rng, n, k)
	for i := range vals {
		vals[i] *= 10 // ~0.2 per weight: activations keep their size through a layer
	}
	return MustQuantize(name, vals, n, k, w.f)
}

func (w blockWeights) Vector(name string, n int, _ float64) *quant.Tensor {
	vals := randn(w.rng, n)
	for i := range vals {
		vals[i] = 1 + 0.2*vals[i]
	}
	return MustQuantize(name, vals, 1, n, quant.Format{Bits: 32})
}

// MustQuantize is quant.Quantize for test weights, which are always valid: an error panics.
func MustQuantize(name string, vals []float32, n, k int, f quant.Format) *quant.Tensor {
	t, err := quant.Quantize(name, vals, n, k, f, quant.Options{})
	if err != nil {
		panic(err)
	}
	return t
}

// buildDecoderBlock is a Llama-style layer: RMSNorm, RoPE, grouped-query attention (4 query
// heads over 2 key/value heads) under a causal mask, SwiGLU MLP, over x[1, 6, 48].
func buildDecoderBlock(g *graph.Graph, w weightSet, f quant.Format) error {
	const T, D, H, KV, Dh, F = 6, 48, 4, 2, 12, 80
	x := g.Input("x", graph.Float32, 1, T, D)
	pos := g.Input("pos", graph.Int32, T)
	mask := g.Input("mask", graph.Float32, 1, 1, T, T)
	h := g.RMSNorm("attn_norm", x, w.f32(g, "attn_norm", D), 1e-5)
	q := g.RoPE("rope_q", g.Reshape("q4", g.Linear("wq", h, w.matrix(g, "wq", H*Dh, D, f), graph.None), 1, T, H, Dh), pos, 10000, true)
	k := g.RoPE("rope_k", g.Reshape("k4", g.Linear("wk", h, w.matrix(g, "wk", KV*Dh, D, f), graph.None), 1, T, KV, Dh), pos, 10000, true)
	v := g.Reshape("v4", g.Linear("wv", h, w.matrix(g, "wv", KV*Dh, D, f), graph.None), 1, T, KV, Dh)
	kT := g.Transpose("kT", k, 0, 2, 1, 3) // [1, KV, T, Dh]
	vT := g.Transpose("vT", v, 0, 2, 1, 3)
	// Grouped-query attention: each key/value head serves H/KV query heads; repeat it.
	kRep := g.Concat("k_rep", 1, g.Slice("k0", kT, 1, 0, 1), g.Slice("k0b", kT, 1, 0, 1), g.Slice("k1", kT, 1, 1, 2), g.Slice("k1b", kT, 1, 1, 2))
	vRep := g.Concat("v_rep", 1, g.Slice("v0", vT, 1, 0, 1), g.Slice("v0b", vT, 1, 0, 1), g.Slice("v1", vT, 1, 1, 2), g.Slice("v1b", vT, 1, 1, 2))
	qT := g.Scale("q_scaled", g.Transpose("qT", q, 0, 2, 1, 3), float32(1/math.Sqrt(Dh)))
	p := g.Softmax("probs", g.MatMul("scores", qT, kRep, true), mask)
	o := g.Reshape("merge", g.Transpose("unheads", g.MatMul("attend", p, vRep, false), 0, 2, 1, 3), 1, T, H*Dh)
	x = g.Add("res1", x, g.Linear("wo", o, w.matrix(g, "wo", D, H*Dh, f), graph.None))
	h = g.RMSNorm("ffn_norm", x, w.f32(g, "ffn_norm", D), 1e-5)
	gate := g.SiLU("silu", g.Linear("w1", h, w.matrix(g, "w1", F, D, f), graph.None))
	up := g.Linear("w3", h, w.matrix(g, "w3", F, D, f), graph.None)
	x = g.Add("res2", x, g.Linear("w2", g.Mul("swiglu", gate, up), w.matrix(g, "w2", D, F, f), graph.None))
	return g.Output(x)
}

// graphFormats are the weight formats of the Linear and Gather cases: each bit width, both
// schemes, a short last group (K=300 with g=128), f16 scales, and float storage.
func graphFormats(supports func(quant.Format) bool) []quant.Format {
	all := []quant.Format{
		{Bits: 32}, {Bits: 16},
		{Bits: 8, Scheme: quant.Symmetric, GroupSize: 32},
		{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 128, Scales: quant.ScaleF16},
		{Bits: 4, Scheme: quant.Symmetric, GroupSize: 32},
		{Bits: 4, Scheme: quant.Asymmetric, GroupSize: 0},
		{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 16},
	}
	var out []quant.Format
	for _, f := range all {
		if supports == nil || supports(f) {
			out = append(out, f)
		}
	}
	return out
}

// weightSet draws the weights of one case; the same name drawn twice is one tensor.
type weightSet struct {
	rng *rand.Rand
	t   map[string]*quant.Tensor
}

func (w weightSet) matrix(g *graph.Graph, name string, n, k int, f quant.Format) graph.Value {
	if _, ok := w.t[name]; !ok {
		w.t[name] = blockWeights{w.rng, f}.Matrix(name, n, k)
	}
	return g.Weight(name, n, k)
}

func (w weightSet) f32(g *graph.Graph, name string, n int) graph.Value {
	if _, ok := w.t[name]; !ok {
		w.t[name] = blockWeights{rng: w.rng}.Vector(name, n, 1)
	}
	return g.Weight(name, n)
}

func randn(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// RunGraphs runs every graph case on b and on the cpu interpreter with the same weights and
// inputs, twice with fresh inputs (so a program that leaves an output unwritten, or reads a
// stale buffer, is caught on the second run), and compares element by element.
func RunGraphs(t *testing.T, b backend.Backend, opt GraphOptions) {
	comp, ok := b.(backend.Compiler)
	if !ok {
		t.Fatalf("backend %s does not execute graphs (no Compile)", b.Name())
	}
	rng := rand.New(rand.NewPCG(Seed(t, "backend "+b.Name()+": graphs"), 0x6772617068))
	ref := cpu.New()
	for _, c := range GraphCases(rng, opt.Supports) {
		if opt.Only != "" && !strings.Contains(c.Name, opt.Only) {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			if err := CheckGraph(comp, b, ref, c, rng, opt.Tolerance); err != nil {
				t.Error(err)
			}
		})
	}
	if opt.Only == "" || strings.Contains("state/", opt.Only) {
		t.Run("states", func(t *testing.T) { RunStates(t, b, opt) })
	}
}

// CheckGraph compiles c on b and on ref, runs both twice on fresh inputs and compares.
func CheckGraph(comp backend.Compiler, b backend.Backend, ref *cpu.Backend, c GraphCase, rng *rand.Rand, tol float64) error {
	if tol == 0 {
		tol = 2e-4
	}
	upload := func(up backend.Backend) (backend.WeightMap, func(), error) {
		m := backend.WeightMap{}
		release := func() {
			for _, w := range m {
				w.Release()
			}
		}
		for name, t := range c.Weights {
			w, err := up.Upload(t)
			if err != nil {
				release()
				return nil, nil, fmt.Errorf("upload %q (%s) to %s: %w", name, t.Format, up.Name(), err)
			}
			m[name] = w
		}
		return m, release, nil
	}
	ws, rel, err := upload(b)
	if err != nil {
		return err
	}
	defer rel()
	rws, rrel, err := upload(ref)
	if err != nil {
		return err
	}
	defer rrel()
	prog, err := comp.Compile(c.Graph, ws)
	if err != nil {
		return fmt.Errorf("compile on %s: %w", b.Name(), err)
	}
	defer prog.Release()
	rprog, err := ref.Compile(c.Graph, rws)
	if err != nil {
		return fmt.Errorf("compile on cpu: %w", err)
	}
	defer rprog.Release()
	ctx := context.Background()
	for run := 0; run < 2; run++ {
		in := c.Inputs(rng)
		want, err := rprog.Run(ctx, in)
		if err != nil {
			return fmt.Errorf("cpu run: %w", err)
		}
		got, err := prog.Run(ctx, in)
		if err != nil {
			return fmt.Errorf("run %d on %s: %w", run, b.Name(), err)
		}
		if len(got) != len(want) {
			return fmt.Errorf("run %d: %d outputs, want %d", run, len(got), len(want))
		}
		for o := range want {
			if err := CompareTensors(want[o], got[o], tol); err != nil {
				return fmt.Errorf("run %d, output %d (%s): %w", run, o, c.Graph.Node(c.Graph.Outputs[o]).Label, err)
			}
		}
	}
	return nil
}

// CompareTensors checks got against want: same shape, and |got − want| ≤ tol·(|want| + RMS(want))
// for every element (NaN fails).
func CompareTensors(want, got graph.Tensor, tol float64) error {
	if fmt.Sprint(want.Shape) != fmt.Sprint(got.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if want.I32 != nil {
		for i := range want.I32 {
			if got.I32[i] != want.I32[i] {
				return fmt.Errorf("[%d] = %d, want %d", i, got.I32[i], want.I32[i])
			}
		}
		return nil
	}
	if len(got.F32) != len(want.F32) {
		return fmt.Errorf("%d values, want %d", len(got.F32), len(want.F32))
	}
	var ss float64
	for _, v := range want.F32 {
		ss += float64(v) * float64(v)
	}
	rms := math.Sqrt(ss / float64(max(1, len(want.F32))))
	bad, worst, wi := 0, 0.0, 0
	for i, w := range want.F32 {
		d := math.Abs(float64(got.F32[i]) - float64(w))
		lim := tol * (math.Abs(float64(w)) + rms)
		if math.IsNaN(float64(got.F32[i])) || d > lim {
			bad++
			if r := d / (lim + 1e-300); math.IsNaN(r) || r > worst {
				worst, wi = r, i
				if math.IsNaN(r) {
					worst = math.Inf(1)
				}
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d values wrong; worst [%d] = %g, want %g (%.3g× the tolerance %g·(|want|+rms %.3g))", bad, len(want.F32), wi, got.F32[wi], want.F32[wi], worst, tol, rms)
	}
	return nil
}
