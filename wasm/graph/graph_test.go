package graph

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestBuildAndPrint(t *testing.T) {
	g := New("tiny")
	ids := g.Input("ids", Int32, 2, 5)
	mask := g.Input("mask", Float32, 2, 5)
	emb := g.Gather("embed", g.Weight("table", 10, 8), ids)
	h := g.Linear("proj", emb, g.Weight("w", 6, 8), g.Weight("b", 6))
	h = g.LayerNorm("ln", h, g.Weight("gamma", 6), g.Weight("beta", 6), 1e-6)
	q := g.Transpose("heads", g.Reshape("split", h, 2, 5, 2, 3), 0, 2, 1, 3) // [2,2,5,3]
	s := g.MatMul("scores", q, q, true)                                      // [2,2,5,5]
	p := g.Softmax("probs", s, g.Reshape("keymask", mask, 2, 1, 1, 5))
	o := g.MatMul("attend", p, q, false)
	o = g.Reshape("merge", g.Transpose("unheads", o, 0, 2, 1, 3), 2, 5, 6)
	out := g.L2Normalize("norm", g.Tanh("tanh", g.MeanPool("pool", o, mask)), 1e-12)
	if err := g.Output(out); err != nil {
		t.Fatal(err)
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := g.Shape(out); got.String() != "[2×6]" {
		t.Errorf("output shape %s", got)
	}
	txt := g.String()
	for _, want := range []string{`gather(%`, `linear(%`, `"w"`, "[2×2×5×5] f32  scores", "bᵀ", "eps=1e-06"} {
		if !strings.Contains(txt, want) {
			t.Errorf("printed graph lacks %q:\n%s", want, txt)
		}
	}
	if w := g.Weights(); strings.Join(w, ",") != "table,w,b,gamma,beta" {
		t.Errorf("weights %v", w)
	}
	last := g.LastUse()
	if last[out] != len(g.Nodes) || last[q] <= int(s) {
		t.Errorf("last use: out %d, q %d", last[out], last[q])
	}
}

func TestShapeErrorsAtBuildTime(t *testing.T) {
	cases := []struct {
		name  string
		build func(g *Graph)
		want  string
	}{
		{"linear K", func(g *Graph) { g.Linear("fc", g.Input("x", Float32, 3, 7), g.Weight("w", 4, 8), None) }, "K must match"},
		{"linear bias", func(g *Graph) { g.Linear("fc", g.Input("x", Float32, 3, 8), g.Weight("w", 4, 8), g.Weight("b", 5)) }, "want [4]"},
		{"matmul K", func(g *Graph) { g.MatMul("mm", g.Input("a", Float32, 2, 3, 4), g.Input("b", Float32, 2, 5, 4), false) }, "K=4"},
		{"matmul batch", func(g *Graph) { g.MatMul("mm", g.Input("a", Float32, 2, 3, 4), g.Input("b", Float32, 3, 4, 4), false) }, "batch dimensions"},
		{"broadcast", func(g *Graph) { g.Add("add", g.Input("a", Float32, 2, 3), g.Input("b", Float32, 4)) }, "do not broadcast"},
		{"reshape", func(g *Graph) { g.Reshape("r", g.Input("a", Float32, 2, 3), 4, 2) }, "cannot become"},
		{"perm", func(g *Graph) { g.Transpose("t", g.Input("a", Float32, 2, 3), 0, 0) }, "not a permutation"},
		{"slice", func(g *Graph) { g.Slice("s", g.Input("a", Float32, 2, 3), 1, 2, 4) }, "outside axis"},
		{"gather ids", func(g *Graph) { g.Gather("e", g.Weight("t", 4, 2), g.Input("ids", Float32, 3)) }, "want i32"},
		{"concat", func(g *Graph) { g.Concat("c", 1, g.Input("a", Float32, 2, 3), g.Input("b", Float32, 3, 3)) }, "dimension 0"},
		{"softmax mask", func(g *Graph) { g.Softmax("s", g.Input("a", Float32, 2, 3), g.Input("m", Float32, 3, 3)) }, "does not broadcast"},
		{"layernorm gamma", func(g *Graph) {
			g.LayerNorm("ln", g.Input("a", Float32, 2, 3), g.Weight("g", 4), g.Weight("b", 3), 1e-5)
		}, "want [3]"},
		{"rope odd", func(g *Graph) { g.RoPE("r", g.Input("x", Float32, 1, 2, 2, 3), g.Input("p", Int32, 2), 1e4, false) }, "Dh even"},
		{"meanpool", func(g *Graph) { g.MeanPool("p", g.Input("x", Float32, 2, 3, 4), g.Input("m", Float32, 2, 4)) }, "want x [B, T, D]"},
		{"zero dim", func(g *Graph) { g.Input("x", Float32, 2, 0) }, "must be positive"},
		{"const size", func(g *Graph) { g.Const("c", []float32{1, 2}, 3) }, "2 values"},
		{"argmax rank", func(g *Graph) { g.ArgMax("a", g.Input("x", Float32, 5)) }, "want rank ≥ 2"},
		{"argmax i32", func(g *Graph) { g.ArgMax("a", g.Input("x", Int32, 1, 5)) }, "want f32"},
	}
	for _, c := range cases {
		g := New(c.name)
		c.build(g)
		err := g.Err()
		if err == nil || !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an ErrShape containing %q", c.name, err, c.want)
		}
		// Later ops are no-ops that keep the first error.
		if g.Input("later", Float32, 1) != None || g.Output() != err {
			t.Errorf("%s: the error is not sticky", c.name)
		}
	}
}

func TestArgMaxShape(t *testing.T) {
	g := New("argmax")
	a := g.ArgMax("next", g.Input("logits", Float32, 2, 3, 7))
	if err := g.Output(a); err != nil {
		t.Fatal(err)
	}
	if n := g.Node(a); !slices.Equal(n.Shape, Shape{2, 3}) || n.DType != Int32 {
		t.Errorf("argmax of [2×3×7]: %s %s, want [2×3] i32", n.Shape, n.DType)
	}
	if err := g.Validate(); err != nil {
		t.Error(err)
	}
	if s := g.String(); !strings.Contains(s, "argmax(%0) [2×3] i32  next") {
		t.Errorf("printed:\n%s", s)
	}
}

func TestValidateCatchesHandEdits(t *testing.T) {
	g := New("edited")
	x := g.Input("x", Float32, 2, 3)
	y := g.ReLU("relu", x)
	if err := g.Output(y); err != nil {
		t.Fatal(err)
	}
	g.Nodes[y].Shape = Shape{3, 2}
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "its operands give [2×3]") {
		t.Errorf("got %v", err)
	}
}

func TestCheckInputs(t *testing.T) {
	g := New("in")
	g.Input("ids", Int32, 2)
	g.Input("x", Float32, 2, 2)
	ok := []Tensor{I32Tensor([]int32{1, 2}, 2), F32Tensor(make([]float32, 4), 2, 2)}
	if err := g.CheckInputs(ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]Tensor{ok[:1], {ok[1], ok[0]}, {I32Tensor([]int32{1}, 2), ok[1]}} {
		if err := g.CheckInputs(bad); !errors.Is(err, ErrShape) {
			t.Errorf("%v: got %v", bad, err)
		}
	}
}

func TestBroadcast(t *testing.T) {
	got, err := Broadcast(Shape{2, 1, 5}, Shape{3, 1})
	if err != nil || got.String() != "[2×3×5]" {
		t.Errorf("got %s %v", got, err)
	}
}
