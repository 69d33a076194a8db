//go:build js && wasm

package webnn

import (
	"errors"
	"math"
	"syscall/js"
	"testing"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// run builds outs over the float32 input x (shape xs) and returns each output as float32 (uint8
// and int32 outputs are cast in the graph so one read path serves all).
func run(t *testing.T, c *Context, b *Builder, xs []int, x []float32, outs map[string]*Operand) map[string][]float32 {
	t.Helper()
	for k, o := range outs {
		if o.Desc.DataType != Float32 {
			outs[k] = b.Cast(k+"-f32", o, Float32)
		}
	}
	g, err := b.Build("ops-test", outs)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	xt, err := c.CreateTensor("x", Descriptor{Float32, xs}, TensorUsage{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	if err := c.WriteTensor(xt, jsutil.Float32sToJS(x)); err != nil {
		t.Fatal(err)
	}
	ts := map[string]*Tensor{}
	for k, o := range outs {
		ot, err := c.CreateTensor(k, o.Desc, TensorUsage{Readable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ot.Destroy()
		ts[k] = ot
	}
	if err := c.Dispatch(g, map[string]*Tensor{"x": xt}, ts); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	for k, ot := range ts {
		n := ot.Desc.Elements()
		arr := js.Global().Get("Float32Array").New(n)
		if err := c.ReadTensorInto(ot, arr); err != nil {
			t.Fatal(err)
		}
		got[k] = make([]float32, n)
		jsutil.CopyFloat32sToGo(got[k], arr)
	}
	return got
}

func f32c(b *Builder, label string, shape []int, v ...float32) *Operand {
	return b.Constant(label, Descriptor{Float32, shape}, jsutil.Float32sToJS(v))
}

func near(a, b []float32, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false
		}
	}
	return true
}

// TestOps runs each binding the nn backend lowers graphs to, on values whose answers are known,
// so a change in an op's argument order or option names fails here, next to the binding.
func TestOps(t *testing.T) {
	c := cpuContext(t)
	b := c.NewBuilder()
	xs := []int{2, 3}
	xv := []float32{1, -2, 3, 0.5, 0, -1}
	x := b.Input("x", Descriptor{Float32, xs}) // [[1 -2 3] [0.5 0 -1]]
	outs := opOutputs(b, x)
	if b.Gelu("gelu", x); b.Err() != nil {
		t.Fatal(b.Err())
	}
	got := run(t, c, b, xs, xv, outs)
	for k, w := range opWants(xv) {
		if !near(got[k], w, 1e-5) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

// opOutputs builds one output per binding TestOps checks, over x [2, 3].
func opOutputs(b *Builder, x *Operand) map[string]*Operand {
	one := f32c(b, "one", nil, 1)
	ids := b.Constant("ids", Descriptor{Int32, []int{3}}, jsutil.BytesToJS([]byte{2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}))
	xzp := b.ConstantBytes("zp", Descriptor{Int8, []int{1, 1}}, []byte{0})
	xsc := f32c(b, "sc", []int{1, 1}, 0.5)
	return map[string]*Operand{
		"add":      b.Add("add", x, one),
		"div":      b.Div("div", x, f32c(b, "two", nil, 2)),
		"max":      b.Max("max", x, one),
		"min":      b.Min("min", x, one),
		"ne":       b.NotEqual("ne", x, f32c(b, "zero", nil, 0)),
		"ge":       b.GreaterOrEqual("ge", x, one),
		"lt":       b.Lesser("lt", x, one),
		"and":      b.LogicalAnd("and", b.GreaterOrEqual("ge0", x, f32c(b, "z2", nil, 0)), b.Lesser("lt1", x, one)),
		"where":    b.Where("where", b.Lesser("neg", x, f32c(b, "z3", nil, 0)), f32c(b, "m1", nil, -1), x),
		"relu":     b.Relu("relu", x),
		"sigmoid":  b.Sigmoid("sigmoid", x),
		"tanh":     b.Tanh("tanh", x),
		"erf":      b.Erf("erf", x),
		"exp":      b.Exp("exp", x),
		"sqrt":     b.Sqrt("sqrt", b.Relu("r2", x)),
		"cos":      b.Cos("cos", x),
		"sin":      b.Sin("sin", x),
		"identity": b.Identity("identity", x),
		"softmax":  b.Softmax("softmax", x, 1),
		"sum":      b.ReduceSum("sum", x, []int{1}, true),
		"mean":     b.ReduceMean("mean", x, []int{0}, false),
		"rmax":     b.ReduceMax("rmax", x, []int{1}, false),
		"ss":       b.ReduceSumSquare("ss", x, []int{1}, false),
		"slice":    b.Slice("slice", x, []int{0, 1}, []int{2, 2}),
		"concat":   b.Concat("concat", []*Operand{x, x}, 0),
		"gather":   b.Gather("gather", x, ids, 1),
		"qdq":      b.DequantizeLinear("dq", b.QuantizeLinear("q", x, xsc, xzp), xsc, xzp),
		"ln":       b.LayerNormalization("ln", x, f32c(b, "g", []int{3}, 1, 1, 2), f32c(b, "bb", []int{3}, 0, 1, 0), []int{1}, 0),
		"gemm":     b.Gemm("gemm", x, x, GemmOptions{BTranspose: true, C: f32c(b, "c", []int{2}, 10, 20)}),
	}
}

// opWants are opOutputs' answers for x = xv, computed in float64.
func opWants(xv []float32) map[string][]float32 {
	e := func(f func(float64) float64, v ...float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(f(float64(x)))
		}
		return out
	}
	sm := func(r []float32) []float32 {
		var s float64
		for _, v := range r {
			s += math.Exp(float64(v))
		}
		return e(func(v float64) float64 { return math.Exp(v) / s }, r...)
	}
	ln := func(r []float32) []float32 {
		m := float64(r[0]+r[1]+r[2]) / 3
		var v float64
		for _, x := range r {
			v += (float64(x) - m) * (float64(x) - m)
		}
		s := math.Sqrt(v / 3)
		return []float32{float32((float64(r[0]) - m) / s), float32((float64(r[1])-m)/s + 1), float32(2 * (float64(r[2]) - m) / s)}
	}
	return map[string][]float32{
		"add":      {2, -1, 4, 1.5, 1, 0},
		"div":      {0.5, -1, 1.5, 0.25, 0, -0.5},
		"max":      {1, 1, 3, 1, 1, 1},
		"min":      {1, -2, 1, 0.5, 0, -1},
		"ne":       {1, 1, 1, 1, 0, 1},
		"ge":       {1, 0, 1, 0, 0, 0},
		"lt":       {0, 1, 0, 1, 1, 1},
		"and":      {0, 0, 0, 1, 1, 0},
		"where":    {1, -1, 3, 0.5, 0, -1},
		"relu":     {1, 0, 3, 0.5, 0, 0},
		"sigmoid":  e(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }, xv...),
		"tanh":     e(math.Tanh, xv...),
		"erf":      e(math.Erf, xv...),
		"exp":      e(math.Exp, xv...),
		"sqrt":     {1, 0, float32(math.Sqrt(3)), float32(math.Sqrt(0.5)), 0, 0},
		"cos":      e(math.Cos, xv...),
		"sin":      e(math.Sin, xv...),
		"identity": xv,
		"softmax":  append(sm(xv[:3]), sm(xv[3:])...),
		"sum":      {2, -0.5},
		"mean":     {0.75, -1, 1},
		"rmax":     {3, 0.5},
		"ss":       {14, 1.25},
		"slice":    {-2, 3, 0, -1},
		"concat":   append(append([]float32{}, xv...), xv...),
		"gather":   {3, 1, -2, -1, 0.5, 0},
		"qdq":      {1, -2, 3, 0.5, 0, -1},
		"ln":       append(ln(xv[:3]), ln(xv[3:])...),
		"gemm":     {14 + 10, -2.5 + 20, -2.5 + 10, 1.25 + 20},
	}
}

// TestUnsupportedNamesOperand checks a type outside opSupportLimits is refused before the
// browser sees it, as ErrUnsupported naming the op, its label and what the context accepts.
func TestUnsupportedNamesOperand(t *testing.T) {
	c := cpuContext(t)
	b := c.NewBuilder()
	if b.Limits() == nil {
		t.Skip("no opSupportLimits")
	}
	x := b.Input("x", Descriptor{Int8, []int{2, 3}})
	if b.Limits().Accepts("sigmoid", "input", Int8, 2) {
		t.Skip("this context takes int8 sigmoid")
	}
	b.Sigmoid("int8-sigmoid", x)
	if !errors.Is(b.Err(), ErrUnsupported) {
		t.Fatalf("sigmoid on int8: got %v, want ErrUnsupported", b.Err())
	}
	t.Logf("error: %v", b.Err())
}
