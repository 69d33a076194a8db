package cpu_test

import (
	"context"
	"math"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// run compiles g on the cpu with f32 weights and runs it once.
func run(t *testing.T, g *graph.Graph, weights map[string][]float32, in ...graph.Tensor) []graph.Tensor {
	t.Helper()
	b := cpu.New()
	ws := backend.WeightMap{}
	for name, v := range weights {
		q, err := quant.Quantize(name, v, 1, len(v), quant.Format{Bits: 32}, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ws[name], err = b.Upload(q); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Compile(g, ws)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] = %g, want %g (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

// Hand-worked values: each op's definition, computed on paper, not by the interpreter.
func TestOpsByHand(t *testing.T) {
	g := graph.New("hand")
	x := g.Input("x", graph.Float32, 2, 3)
	ids := g.Input("ids", graph.Int32, 3)
	mask := g.Input("mask", graph.Float32, 1, 3)
	g.Output(
		g.LayerNorm("ln", x, g.Weight("one", 3), g.Weight("zero", 3), 0), // 0
		g.Softmax("sm", x, mask),                      // 1
		g.Gather("emb", g.Weight("table", 2, 3), ids), // 2
		g.Add("bc", x, g.Weight("one", 3)),            // 3
		g.Transpose("tr", x, 1, 0),                    // 4
		g.MeanPool("pool", g.Reshape("x3", x, 1, 2, 3), g.Reshape("m2", g.Slice("m", mask, 1, 0, 2), 1, 2)), // 5
		g.L2Normalize("l2", x, 1e-12),                        // 6
		g.MatMul("mm", x, g.Transpose("xt", x, 1, 0), false), // 7
		g.Concat("cat", 1, x, g.Slice("s", x, 1, 2, 3)),      // 8
	)
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	out := run(t, g, map[string][]float32{"one": {1, 1, 1}, "zero": {0, 0, 0}, "table": {1, 2, 3, 4, 5, 6}},
		graph.F32Tensor([]float32{1, 2, 3, 0, 3, 4}, 2, 3), graph.I32Tensor([]int32{1, 5, 0}, 3), graph.F32Tensor([]float32{1, 0, 1}, 1, 3))
	s := float32(math.Sqrt(1.5)) // layernorm of (1,2,3): (−1, 0, 1)/√(2/3)
	near(t, "layernorm", out[0].F32[:3], []float32{-s, 0, s}, 1e-6)
	e2 := float32(math.Exp(2))
	near(t, "masked softmax", out[1].F32[:3], []float32{1 / (1 + e2), 0, e2 / (1 + e2)}, 1e-6)
	near(t, "gather", out[2].F32, []float32{4, 5, 6, 0, 0, 0, 1, 2, 3}, 0)
	near(t, "broadcast add", out[3].F32, []float32{2, 3, 4, 1, 4, 5}, 0)
	near(t, "transpose", out[4].F32, []float32{1, 0, 2, 3, 3, 4}, 0)
	near(t, "meanpool", out[5].F32, []float32{1, 2, 3}, 0)
	near(t, "l2", out[6].F32[3:], []float32{0, 0.6, 0.8}, 1e-7)
	near(t, "matmul", out[7].F32, []float32{14, 18, 18, 25}, 0)
	near(t, "concat", out[8].F32, []float32{1, 2, 3, 3, 0, 3, 4, 4}, 0)
}

func TestRoPEByHand(t *testing.T) {
	g := graph.New("rope")
	x := g.Input("x", graph.Float32, 1, 2, 1, 4)
	pos := g.Input("pos", graph.Int32, 2)
	g.Output(g.RoPE("neox", x, pos, 100, false), g.RoPE("pairs", x, pos, 100, true))
	in := graph.F32Tensor([]float32{1, 2, 3, 4, 1, 0, 0, 1}, 1, 2, 1, 4)
	out := run(t, g, nil, in, graph.I32Tensor([]int32{0, 1}, 2))
	// Position 0 is the identity; position 1 rotates pair 0 by 1 rad and pair 1 by 100^(−1/2) = 0.1 rad.
	c1, s1, c2, s2 := float32(math.Cos(1)), float32(math.Sin(1)), float32(math.Cos(0.1)), float32(math.Sin(0.1))
	near(t, "neox", out[0].F32, []float32{1, 2, 3, 4, c1, -s2, s1, c2}, 1e-6) // pairs (0,2), (1,3)
	near(t, "interleaved", out[1].F32, []float32{1, 2, 3, 4, c1, s1, -s2, c2}, 1e-6)
}

// Every conformance case builds and runs on the reference itself (the suite's cases are valid
// graphs and the interpreter handles every op).
func TestGraphCasesRun(t *testing.T) {
	backendtest.RunGraphs(t, cpu.New(), backendtest.GraphOptions{Tolerance: 1e-12})
}

// ArgMax by hand: the first of tied maxima, NaN never picked after element 0, −∞ rows.
func TestArgMaxByHand(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	rows := [][]float32{
		{1, 3, 2, 3},     // tie: the first 3
		{-5, -2, -2, -9}, // tie among negatives
		{2, nan, 7, nan}, // NaN skipped
		{nan, 9, inf, 1}, // NaN at 0: nothing compares greater
		{-inf, -inf, -inf, -inf},
		{0, 0, 0, 1e-30},
	}
	want := []int32{1, 1, 2, 0, 0, 3}
	var x []float32
	for _, r := range rows {
		x = append(x, r...)
	}
	g := graph.New("argmax")
	g.Output(g.ArgMax("a", g.Input("x", graph.Float32, 2, 3, 4)))
	out := run(t, g, nil, graph.F32Tensor(x, 2, 3, 4))
	if got := out[0].I32; len(got) != len(want) || out[0].Shape.String() != "[2×3]" {
		t.Fatalf("argmax: %v %s, want %v [2×3]", got, out[0].Shape, want)
	}
	for i := range want {
		if out[0].I32[i] != want[i] {
			t.Errorf("row %d %v: %d, want %d", i, rows[i], out[0].I32[i], want[i])
		}
	}
}
