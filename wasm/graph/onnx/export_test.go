package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// weightSet draws every Weight a graph names: matrices 4-bit (group 32) when q4 says so.
type weightSet struct {
	f32  map[string][]float32
	q    map[string]*quant.Tensor
	rows map[string][2]int // [n, k] as the backend holds it: matrices as they are, vectors [1, size]
}

func drawWeights(t *testing.T, rng *rand.Rand, g *graph.Graph, q4 func(name string) bool) *weightSet {
	t.Helper()
	w := &weightSet{f32: map[string][]float32{}, q: map[string]*quant.Tensor{}, rows: map[string][2]int{}}
	for _, n := range g.Nodes {
		if n.Op != graph.OpWeight || w.f32[n.Attr.Name] != nil {
			continue
		}
		v := make([]float32, n.Shape.Size())
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.3)
		}
		w.f32[n.Attr.Name] = v
		w.rows[n.Attr.Name] = [2]int{1, len(v)}
		if len(n.Shape) == 2 {
			w.rows[n.Attr.Name] = [2]int{n.Shape[0], n.Shape[1]}
		}
		if len(n.Shape) == 2 && q4(n.Attr.Name) {
			qt, err := quant.Quantize(n.Attr.Name, v, n.Shape[0], n.Shape[1], quant.Q4, quant.Options{})
			if err != nil {
				t.Fatal(err)
			}
			w.q[n.Attr.Name] = qt
		}
	}
	return w
}

func (w *weightSet) weight(name string) (Weight, error) {
	if q := w.q[name]; q != nil {
		return Weight{Q: q}, nil
	}
	if f := w.f32[name]; f != nil {
		return Weight{F32: f}, nil
	}
	return Weight{}, fmt.Errorf("no weight %q", name)
}

// cpuRun runs g on nibble's reference backend with the same weights (quantized ones as such).
func (w *weightSet) cpuRun(t *testing.T, g *graph.Graph, in []graph.Tensor) []float32 {
	t.Helper()
	b := cpu.New()
	ws := backend.WeightMap{}
	for name, f := range w.f32 {
		qt := w.q[name]
		if qt == nil {
			var err error
			if qt, err = quant.Quantize(name, f, w.rows[name][0], w.rows[name][1], quant.Format{Bits: 32}, quant.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		up, err := b.Upload(qt)
		if err != nil {
			t.Fatal(err)
		}
		ws[name] = up
	}
	p, err := b.Compile(g, ws)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].F32
}

// onnxRun runs an exported model in the reference interpreter.
func onnxRun(t *testing.T, m *Model, in map[string]graph.Tensor) []float64 {
	t.Helper()
	// Through the bytes: what ORT gets is what is checked.
	parsed, err := Parse(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(parsed); err != nil {
		t.Fatal(err)
	}
	feeds := map[string]*tensor{}
	for name, x := range in {
		tt := &tensor{shape: x.Shape, dt: Float}
		if x.I32 != nil {
			tt.dt = Int32
			for _, v := range x.I32 {
				tt.i = append(tt.i, int64(v))
			}
		} else {
			for _, v := range x.F32 {
				tt.f = append(tt.f, float64(v))
			}
		}
		feeds[name] = tt
	}
	out, err := run(parsed, feeds)
	if err != nil {
		t.Fatal(err)
	}
	return out[0].f
}

func closeTo(t *testing.T, what string, want []float32, got []float64, tol float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale, worst float64
	for i := range want {
		scale = math.Max(scale, math.Abs(float64(want[i])))
		worst = math.Max(worst, math.Abs(float64(want[i])-got[i]))
	}
	if !(worst <= tol*math.Max(scale, 1e-6)) {
		t.Errorf("%s: worst difference %.3g against a largest value %.3g (tolerance %.1g relative)", what, worst, scale, tol)
	}
}

// batch makes ids and mask for B sentences of the given lengths (−1 and 0 past each end); ids
// include out-of-range ones, which graph's Gather turns into zero rows.
func batch(rng *rand.Rand, B, T, V int, lengths ...int) (ids []int32, mask []float32) {
	ids, mask = make([]int32, B*T), make([]float32, B*T)
	for b := range B {
		for j := range T {
			ids[b*T+j] = -1
			if j < lengths[b] {
				ids[b*T+j], mask[b*T+j] = int32(rng.IntN(V)), 1
			}
		}
	}
	ids[0] = int32(V + 3) // out of range: a zero row in nibble, an error in a bare ONNX Gather
	return ids, mask
}

func tinyUSE() *uselite.Config {
	c := &uselite.Config{Vocab: 40, Embed: 64, MaxLength: 16, Eps: 1e-6, L2Eps: 1e-12, Out: 32}
	for i := range c.Embed / 2 {
		c.Timescales = append(c.Timescales, float32(math.Pow(1e4, -float64(i)/float64(c.Embed/2))))
	}
	c.Layers = []uselite.LayerConfig{
		{In: 64, Width: 96, Heads: 2, HeadDim: 32, FFN: 128, QScale: float32(1 / math.Sqrt(32)), Adjust: true},
		{In: 96, Width: 96, Heads: 2, HeadDim: 64, FFN: 64, QScale: 0.125},
	}
	return c
}

// USE-lite's own graph builder (uselite.Config.Build) at a small size: the model exported with
// symbolic batch and length, and run at a third size, computes what nibble's cpu backend does on
// the graph built at that size, with float32 weights and with 4-bit matrices (MatMulNBits,
// GatherBlockQuantized). The batch has a sentence with no token at all (every key masked: the
// softmax row and the mean must be zeros, not NaN) and an out-of-range id.
func TestExportUSELiteMatchesCPU(t *testing.T) {
	c := tinyUSE()
	ga, err := c.Build(3, 5)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := c.Build(4, 11)
	if err != nil {
		t.Fatal(err)
	}
	for _, q4 := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(7, 8))
		w := drawWeights(t, rng, ga, func(string) bool { return q4 })
		m, err := Export(Options{Weight: w.weight, DimNames: map[string]string{"ids.0": "batch", "ids.1": "length"}}, ga, gb)
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, n := range m.Nodes {
			ops[n.Op]++
		}
		if ops["Concat"] != 0 {
			t.Errorf("%d Concats: every USE-lite Reshape target should be a constant (0 copies, −1 infers)", ops["Concat"])
		}
		if q4 && (ops["MatMulNBits"] != 10 || ops["GatherBlockQuantized"] != 1 || ops["MatMul"] != 4) {
			t.Errorf("4-bit: ops %v, want 10 MatMulNBits (every Linear), 1 GatherBlockQuantized, 4 MatMul (attention)", ops)
		}
		if !q4 && (ops["MatMulNBits"] != 0 || ops["MatMul"] != 14 || ops["Gather"] != 1) {
			t.Errorf("float32: ops %v", ops)
		}
		if d := m.Inputs[0].Dims; len(d) != 2 || d[0].Param != "batch" || d[1].Param != "length" {
			t.Errorf("ids dims %+v, want [batch, length]", d)
		}
		for _, size := range [][2]int{{2, 7}, {4, 11}, {1, 3}} {
			B, T := size[0], size[1]
			g, err := c.Build(B, T)
			if err != nil {
				t.Fatal(err)
			}
			lengths := []int{T, 0, 2, 1}[:B]
			if B == 1 {
				lengths = []int{T}
			}
			ids, mask := batch(rng, B, T, c.Vocab, lengths...)
			in := []graph.Tensor{graph.I32Tensor(ids, B, T), graph.F32Tensor(mask, B, T)}
			want := w.cpuRun(t, g, in)
			got := onnxRun(t, m, map[string]graph.Tensor{"ids": in[0], "mask": in[1]})
			closeTo(t, fmt.Sprintf("q4=%v %d×%d", q4, B, T), want, got, 1e-4)
		}
	}
}

// The ops USE-lite does not use, statically (one graph: every dimension fixed).
func TestExportOtherOpsMatchCPU(t *testing.T) {
	g := graph.New("others")
	x := g.Input("x", graph.Float32, 2, 3, 32)
	a := g.GELU("gelu", x)
	b := g.SiLU("silu", g.Sub("sub", x, g.Weight("bias", 32)))
	c := g.RMSNorm("rms", g.Div("div", a, g.Const("two", []float32{2}, 1)), g.Weight("gamma", 32), 1e-5)
	y := g.Concat("cat", 2, b, c)
	y = g.Linear("proj", y, g.Weight("w", 16, 64), graph.None)
	if err := g.Output(g.Softmax("soft", y, graph.None)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	w := drawWeights(t, rng, g, func(string) bool { return false })
	m, err := Export(Options{Weight: w.weight}, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	xs := make([]float32, 2*3*32)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	in := graph.F32Tensor(xs, 2, 3, 32)
	closeTo(t, "others", w.cpuRun(t, g, []graph.Tensor{in}), onnxRun(t, m, map[string]graph.Tensor{"x": in}), 1e-5)
}

// A Reshape whose target has two symbolic dimensions in new places gets its shape computed
// (Shape, Concat) at run time.
func TestExportComputedReshape(t *testing.T) {
	build := func(B, T int) *graph.Graph {
		g := graph.New("swap")
		x := g.Input("x", graph.Float32, B, T, 2)
		g.Output(g.Transpose("t", g.Reshape("r", x, T, B, 2), 1, 0, 2)) // the transpose makes a wrong target visible
		return g
	}
	m, err := Export(Options{}, build(2, 3), build(4, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(m.Nodes, func(n Node) bool { return n.Op == "Concat" }) {
		t.Error("no computed target: [T, B, 2] from [B, T, 2] needs one")
	}
	g := build(3, 7)
	xs := make([]float32, 3*7*2)
	for i := range xs {
		xs[i] = float32(i)
	}
	in := graph.F32Tensor(xs, 3, 7, 2)
	w := &weightSet{}
	closeTo(t, "computed reshape", w.cpuRun(t, g, []graph.Tensor{in}), onnxRun(t, m, map[string]graph.Tensor{"x": in}), 0)
}

func TestExportRejects(t *testing.T) {
	w := func(string) (Weight, error) { return Weight{F32: make([]float32, 64)}, nil }
	rope := graph.New("rope")
	x := rope.Input("x", graph.Float32, 1, 2, 2, 4)
	rope.Output(rope.RoPE("rope", x, rope.Input("pos", graph.Int32, 2), 1e4, false))
	if _, err := Export(Options{Weight: w}, rope, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("RoPE: %v, want ErrUnsupported", err)
	}
	// A Const that is not a positional table: its rows at one length are not a prefix of the
	// other's.
	build := func(T int, v float32) *graph.Graph {
		g := graph.New("table")
		x := g.Input("x", graph.Float32, T, 2)
		data := make([]float32, 2*T)
		for i := range data {
			data[i] = v
		}
		g.Output(g.Add("add", x, g.Const("c", data, T, 2)))
		return g
	}
	if _, err := Export(Options{}, build(3, 1), build(5, 2)); err == nil || !strings.Contains(err.Error(), "positional table") {
		t.Errorf("non-prefix Const: %v", err)
	}
	if _, err := Export(Options{}, build(3, 1), rope); !errors.Is(err, ErrUnsupported) {
		t.Errorf("two different graphs: %v", err)
	}
	// A dimension that varies but follows no input's.
	odd := func(n int) *graph.Graph {
		g := graph.New("odd")
		x := g.Input("x", graph.Float32, 2, 2)
		g.Output(g.Reshape("r", g.Const("c", make([]float32, n), n), n))
		_ = x
		return g
	}
	if _, err := Export(Options{}, odd(4), odd(6)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a dimension no input gives: %v", err)
	}
}

// Check catches a model whose node reads a tensor written later, and initializers of the wrong
// size: the structural guarantees Export relies on.
func TestCheckRejects(t *testing.T) {
	ok := func() *Model {
		return &Model{IRVersion: IRVersion, Opsets: map[string]int64{"": Opset},
			Inputs:       []ValueInfo{{Name: "x", ElemType: Float, Dims: []Dim{{Value: 2}}}},
			Initializers: []Initializer{{Name: "c", DataType: Float, Dims: []int64{2}, Raw: make([]byte, 8)}},
			Nodes: []Node{{Op: "Add", Name: "a", Inputs: []string{"x", "c"}, Outputs: []string{"y"}},
				{Op: "Relu", Name: "b", Inputs: []string{"y"}, Outputs: []string{"z"}}},
			Outputs: []ValueInfo{{Name: "z", ElemType: Float}}}
	}
	if err := Check(ok()); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(m *Model){
		"order":     func(m *Model) { m.Nodes[0], m.Nodes[1] = m.Nodes[1], m.Nodes[0] },
		"size":      func(m *Model) { m.Initializers[0].Raw = m.Initializers[0].Raw[:4] },
		"op":        func(m *Model) { m.Nodes[1].Op = "Frobnicate" },
		"domain":    func(m *Model) { m.Nodes[1].Domain = Microsoft },
		"twice":     func(m *Model) { m.Nodes[1].Outputs[0] = "y" },
		"output":    func(m *Model) { m.Outputs[0].Name = "w" },
		"operands":  func(m *Model) { m.Nodes[0].Inputs = m.Nodes[0].Inputs[:1] },
		"opset old": func(m *Model) { m.Opsets[""] = 13 },
	} {
		m := ok()
		spoil(m)
		if err := Check(m); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
