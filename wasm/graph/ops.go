package graph

import (
	"fmt"
	"slices"
)

// Op is what a node computes. The comment on each constructor is its exact definition; the cpu
// backend implements that definition and the other backends are tested against it.
type Op uint8

const (
	OpInput Op = iota
	OpConst
	OpWeight
	OpGather
	OpLinear
	OpMatMul
	OpAdd
	OpSub
	OpMul
	OpDiv
	OpScale
	OpLayerNorm
	OpRMSNorm
	OpSoftmax
	OpReLU
	OpGELU
	OpSiLU
	OpTanh
	OpTranspose
	OpReshape
	OpSlice
	OpConcat
	OpMeanPool
	OpL2Normalize
	OpRoPE
	OpState
	OpStateWrite
	OpArgMax
	numOps
)

var opNames = [numOps]string{
	"input", "const", "weight", "gather", "linear", "matmul", "add", "sub", "mul", "div", "scale",
	"layernorm", "rmsnorm", "softmax", "relu", "gelu", "silu", "tanh", "transpose", "reshape",
	"slice", "concat", "meanpool", "l2normalize", "rope", "state", "statewrite", "argmax",
}

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Elementwise reports whether o is a binary op with broadcasting.
func (o Op) Elementwise() bool { return o >= OpAdd && o <= OpDiv }

// Unary reports whether o maps each element on its own.
func (o Op) Unary() bool { return o == OpScale || (o >= OpReLU && o <= OpTanh) }

// Input declares a value the caller passes to each run.
func (g *Graph) Input(name string, dt DType, shape ...int) Value {
	v := g.add(Node{Op: OpInput, Label: name, DType: dt, Shape: Shape(shape), Attr: Attr{Name: name}})
	if v != None {
		g.Inputs = append(g.Inputs, v)
	}
	return v
}

// Const embeds float32 data of the given shape (small tables the model computes at build time,
// e.g. a sinusoidal timing signal for the bucket's length).
func (g *Graph) Const(label string, data []float32, shape ...int) Value {
	return g.add(Node{Op: OpConst, Label: label, DType: Float32, Shape: Shape(shape), Attr: Attr{Data: data}})
}

// Weight reads the resident tensor name, viewed with the given shape. Any weight may feed Gather
// (its rows) and Linear (as [N, K]); only float32/float16 weights may feed other ops.
func (g *Graph) Weight(name string, shape ...int) Value {
	return g.add(Node{Op: OpWeight, Label: name, DType: Float32, Shape: Shape(shape), Attr: Attr{Name: name}})
}

// Gather picks rows of table [V, D] by ids (int32, any shape S): out[S..., D] = table[ids[S...]].
// An id outside [0, V) gives a row of zeros.
func (g *Graph) Gather(label string, table, ids Value) Value {
	return g.add(Node{Op: OpGather, Label: label, Inputs: []Value{table, ids}})
}

// Linear is x[..., K] · wᵀ + bias with w a Weight of shape [N, K] (held in any format) and bias
// [N] or None: out[..., N].
func (g *Graph) Linear(label string, x, w, bias Value) Value {
	return g.add(Node{Op: OpLinear, Label: label, Inputs: []Value{x, w, bias}})
}

// MatMul multiplies activations, batched over equal leading dimensions: a[..., M, K] ·
// b[..., K, N] (transB: b is [..., N, K]) = out[..., M, N].
func (g *Graph) MatMul(label string, a, b Value, transB bool) Value {
	return g.add(Node{Op: OpMatMul, Label: label, Inputs: []Value{a, b}, Attr: Attr{TransB: transB}})
}

// Add, Sub, Mul and Div broadcast as NumPy does (dimensions aligned from the right, each equal
// or 1).
func (g *Graph) Add(label string, a, b Value) Value { return g.binary(OpAdd, label, a, b) }
func (g *Graph) Sub(label string, a, b Value) Value { return g.binary(OpSub, label, a, b) }
func (g *Graph) Mul(label string, a, b Value) Value { return g.binary(OpMul, label, a, b) }
func (g *Graph) Div(label string, a, b Value) Value { return g.binary(OpDiv, label, a, b) }

func (g *Graph) binary(op Op, label string, a, b Value) Value {
	return g.add(Node{Op: op, Label: label, Inputs: []Value{a, b}})
}

// Scale is x·c.
func (g *Graph) Scale(label string, x Value, c float32) Value {
	return g.add(Node{Op: OpScale, Label: label, Inputs: []Value{x}, Attr: Attr{Scale: c}})
}

// LayerNorm normalizes the last axis: (x − mean)/√(var + eps)·gamma + beta, var the biased
// variance; gamma and beta are [D].
func (g *Graph) LayerNorm(label string, x, gamma, beta Value, eps float32) Value {
	return g.add(Node{Op: OpLayerNorm, Label: label, Inputs: []Value{x, gamma, beta}, Attr: Attr{Eps: eps}})
}

// RMSNorm is x/√(mean(x²) + eps)·gamma over the last axis; gamma is [D].
func (g *Graph) RMSNorm(label string, x, gamma Value, eps float32) Value {
	return g.add(Node{Op: OpRMSNorm, Label: label, Inputs: []Value{x, gamma}, Attr: Attr{Eps: eps}})
}

// Softmax over the last axis. mask (None, or float32 broadcastable to x) excludes the entries
// where it is 0: they get probability 0, as an additive −∞ bias would give. A row with every
// entry excluded is all zeros.
func (g *Graph) Softmax(label string, x, mask Value) Value {
	return g.add(Node{Op: OpSoftmax, Label: label, Inputs: []Value{x, mask}})
}

// ReLU is max(x, 0); GELU is x·Φ(x) with the exact normal CDF (erf); SiLU is x·σ(x).
func (g *Graph) ReLU(label string, x Value) Value { return g.unary(OpReLU, label, x) }
func (g *Graph) GELU(label string, x Value) Value { return g.unary(OpGELU, label, x) }
func (g *Graph) SiLU(label string, x Value) Value { return g.unary(OpSiLU, label, x) }
func (g *Graph) Tanh(label string, x Value) Value { return g.unary(OpTanh, label, x) }

func (g *Graph) unary(op Op, label string, x Value) Value {
	return g.add(Node{Op: op, Label: label, Inputs: []Value{x}})
}

// Transpose permutes axes: out.shape[i] = x.shape[perm[i]].
func (g *Graph) Transpose(label string, x Value, perm ...int) Value {
	return g.add(Node{Op: OpTranspose, Label: label, Inputs: []Value{x}, Attr: Attr{Perm: perm}})
}

// Reshape reinterprets x's row-major elements with a new shape of the same size.
func (g *Graph) Reshape(label string, x Value, shape ...int) Value {
	return g.add(Node{Op: OpReshape, Label: label, Inputs: []Value{x}, Shape: Shape(shape)})
}

// Slice keeps [start, end) along axis.
func (g *Graph) Slice(label string, x Value, axis, start, end int) Value {
	return g.add(Node{Op: OpSlice, Label: label, Inputs: []Value{x}, Attr: Attr{Axis: axis, Start: start, End: end}})
}

// Concat joins values along axis; every other dimension must agree.
func (g *Graph) Concat(label string, axis int, xs ...Value) Value {
	return g.add(Node{Op: OpConcat, Label: label, Inputs: xs, Attr: Attr{Axis: axis}})
}

// MeanPool averages x[B, T, D] over T where mask[B, T] is 1: out[b] = Σₜ mask·x / max(Σₜ mask, 1).
func (g *Graph) MeanPool(label string, x, mask Value) Value {
	return g.add(Node{Op: OpMeanPool, Label: label, Inputs: []Value{x, mask}})
}

// L2Normalize divides the last axis by √max(Σx², eps).
func (g *Graph) L2Normalize(label string, x Value, eps float32) Value {
	return g.add(Node{Op: OpL2Normalize, Label: label, Inputs: []Value{x}, Attr: Attr{Eps: eps}})
}

// RoPE rotates x[B, T, H, Dh] by position: for pair i of a head (Dh/2 pairs) at position p =
// pos[t], angle p·base^(−2i/Dh). Interleaved pairs are (2i, 2i+1) (GGUF llama); otherwise (i,
// i+Dh/2) (NeoX). pos is int32 [T].
func (g *Graph) RoPE(label string, x, pos Value, base float32, interleaved bool) Value {
	return g.add(Node{Op: OpRoPE, Label: label, Inputs: []Value{x, pos}, Attr: Attr{Base: base, Interleaved: interleaved}})
}

// ArgMax is the index along the last axis of x[..., N] (rank ≥ 2) of its largest element, as
// int32 out[...]: for each row, a scan from index 0 that moves to element i only when x[i] >
// x[best], so ties go to the lowest index and a NaN is never picked unless it is element 0
// (nothing compares greater than it). This is exactly greedy decoding's choice (llama's
// Sampler.Next at temperature 0), so a backend can pick the next token without the logits
// leaving the device.
func (g *Graph) ArgMax(label string, x Value) Value {
	return g.add(Node{Op: OpArgMax, Label: label, Inputs: []Value{x}})
}

// FirstMax is ArgMax of one row: the index a scan from 0 ends on, moving only to strictly
// larger elements. row must not be empty.
func FirstMax(row []float32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

// add checks n's operands, infers its shape and type, and appends it.
func (g *Graph) add(n Node) Value {
	if g.err != nil {
		return None
	}
	for i, in := range n.Inputs {
		optional := (n.Op == OpLinear && i == 2) || (n.Op == OpSoftmax && i == 1)
		if in == None && optional {
			continue
		}
		if !g.valid(in) {
			return g.fail(n.Op, n.Label, "operand %d is not a value of this graph (%d)", i, in)
		}
		if g.Nodes[in].Op == OpState && (n.Op != OpStateWrite || i != 0) {
			return g.fail(n.Op, n.Label, "operand %d is state %q: a state is read only through the StateWrite that updates it", i, g.Nodes[in].Attr.Name)
		}
	}
	shape, dt, err := g.infer(&n)
	if err != nil {
		return g.fail(n.Op, n.Label, "%s", err)
	}
	n.Shape, n.DType = shape, dt
	g.Nodes = append(g.Nodes, n)
	return Value(len(g.Nodes) - 1)
}

func (g *Graph) in(n *Node, i int) *Node { return &g.Nodes[n.Inputs[i]] }

// infer checks n's operands and attributes and returns its output shape and type; each op
// family's rules are in an infer* method below.
func (g *Graph) infer(n *Node) (Shape, DType, error) {
	switch n.Op {
	case OpInput, OpWeight, OpConst:
		return inferLeaf(n)
	case OpGather:
		return g.inferGather(n)
	case OpLinear:
		return g.inferLinear(n)
	case OpMatMul:
		return g.inferMatMul(n)
	case OpAdd, OpSub, OpMul, OpDiv:
		if err := errors2(g.f32(n, 0), g.f32(n, 1)); err != nil {
			return nil, 0, err
		}
		out, err := Broadcast(g.in(n, 0).Shape, g.in(n, 1).Shape)
		return out, Float32, err
	case OpScale, OpReLU, OpGELU, OpSiLU, OpTanh:
		return g.in(n, 0).Shape, Float32, g.f32(n, 0)
	case OpLayerNorm, OpRMSNorm:
		return g.inferNorm(n)
	case OpSoftmax:
		return g.inferSoftmax(n)
	case OpTranspose:
		return g.inferTranspose(n)
	case OpReshape:
		if err := positive(n.Shape); err != nil {
			return nil, 0, err
		}
		if x := g.in(n, 0).Shape; x.Size() != n.Shape.Size() {
			return nil, 0, fmt.Errorf("%s (%d elements) cannot become %s (%d)", x, x.Size(), n.Shape, n.Shape.Size())
		}
		return slices.Clone(n.Shape), g.in(n, 0).DType, nil
	case OpSlice:
		return g.inferSlice(n)
	case OpConcat:
		return g.inferConcat(n)
	case OpMeanPool:
		x, m := g.in(n, 0).Shape, g.in(n, 1).Shape
		if len(x) != 3 || len(m) != 2 || m[0] != x[0] || m[1] != x[1] {
			return nil, 0, fmt.Errorf("x %s and mask %s: want x [B, T, D] and mask [B, T]", x, m)
		}
		return Shape{x[0], x[2]}, Float32, errors2(g.f32(n, 0), g.f32(n, 1))
	case OpL2Normalize:
		if _, err := g.rankAtLeast(n, 0, 1); err != nil {
			return nil, 0, err
		}
		return g.in(n, 0).Shape, Float32, g.f32(n, 0)
	case OpRoPE:
		return g.inferRoPE(n)
	case OpState, OpStateWrite:
		return g.inferState(n)
	case OpArgMax:
		x, err := g.rankAtLeast(n, 0, 2)
		if err != nil {
			return nil, 0, err
		}
		return slices.Clone(x[:len(x)-1]), Int32, g.f32(n, 0)
	}
	return nil, 0, fmt.Errorf("unknown op %d", n.Op)
}

// f32 checks that operand i of n is float32.
func (g *Graph) f32(n *Node, i int) error {
	if x := g.in(n, i); x.DType != Float32 {
		return fmt.Errorf("operand %d (%s) is %s, want f32", i, x.Label, x.DType)
	}
	return nil
}

// rankAtLeast returns the shape of operand i of n, checked to have rank r or more.
func (g *Graph) rankAtLeast(n *Node, i, r int) (Shape, error) {
	s := g.in(n, i).Shape
	if len(s) < r {
		return nil, fmt.Errorf("operand %d (%s) has shape %s, want rank ≥ %d", i, g.in(n, i).Label, s, r)
	}
	return s, nil
}

// inferLeaf checks an Input, Weight or Const: positive dimensions, a name, the data's length.
func inferLeaf(n *Node) (Shape, DType, error) {
	if n.Op != OpConst && n.Attr.Name == "" {
		return nil, 0, fmt.Errorf("empty name")
	}
	if err := positive(n.Shape); err != nil {
		return nil, 0, err
	}
	if n.Op != OpConst {
		return n.Shape, n.DType, nil
	}
	if len(n.Attr.Data) != n.Shape.Size() {
		return nil, 0, fmt.Errorf("%d values for shape %s (%d elements)", len(n.Attr.Data), n.Shape, n.Shape.Size())
	}
	return n.Shape, Float32, nil
}

// inferGather: table [V, D], i32 ids of any shape → ids' shape + [D].
func (g *Graph) inferGather(n *Node) (Shape, DType, error) {
	t, ids := g.in(n, 0), g.in(n, 1)
	if len(t.Shape) != 2 {
		return nil, 0, fmt.Errorf("table %s has shape %s, want [V, D]", t.Label, t.Shape)
	}
	if ids.DType != Int32 {
		return nil, 0, fmt.Errorf("ids %s are %s, want i32", ids.Label, ids.DType)
	}
	return append(slices.Clone(ids.Shape), t.Shape[1]), Float32, nil
}

// inferLinear: x [..., K] times a Weight [N, K], optional bias [N] → [..., N].
func (g *Graph) inferLinear(n *Node) (Shape, DType, error) {
	x, err := g.rankAtLeast(n, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	w := g.in(n, 1)
	if w.Op != OpWeight || len(w.Shape) != 2 {
		return nil, 0, fmt.Errorf("w %s must be a Weight of shape [N, K], is %s %s", w.Label, w.Op, w.Shape)
	}
	if err := g.f32(n, 0); err != nil {
		return nil, 0, err
	}
	N, K := w.Shape[0], w.Shape[1]
	if x[len(x)-1] != K {
		return nil, 0, fmt.Errorf("x %s ends in %d, w %s is [N=%d, K=%d]: K must match", x, x[len(x)-1], w.Label, N, K)
	}
	if b := n.Inputs[2]; b != None {
		if bs := g.Nodes[b].Shape; bs.Size() != N || len(bs) != 1 {
			return nil, 0, fmt.Errorf("bias %s has shape %s, want [%d]", g.Nodes[b].Label, bs, N)
		}
	}
	out := slices.Clone(x)
	out[len(out)-1] = N
	return out, Float32, nil
}

// inferMatMul: a [..., M, K] times b [..., K, N] (or [..., N, K] with TransB), same batch
// dimensions → [..., M, N].
func (g *Graph) inferMatMul(n *Node) (Shape, DType, error) {
	a, err := g.rankAtLeast(n, 0, 2)
	if err != nil {
		return nil, 0, err
	}
	b, err := g.rankAtLeast(n, 1, 2)
	if err != nil {
		return nil, 0, err
	}
	if err := errors2(g.f32(n, 0), g.f32(n, 1)); err != nil {
		return nil, 0, err
	}
	if len(a) != len(b) || !slices.Equal(a[:len(a)-2], b[:len(b)-2]) {
		return nil, 0, fmt.Errorf("batch dimensions differ: a %s, b %s", a, b)
	}
	M, K := a[len(a)-2], a[len(a)-1]
	Kb, N := b[len(b)-2], b[len(b)-1]
	if n.Attr.TransB {
		Kb, N = N, Kb
	}
	if K != Kb {
		return nil, 0, fmt.Errorf("a %s has K=%d, b %s has K=%d (transB=%v)", a, K, b, Kb, n.Attr.TransB)
	}
	out := slices.Clone(a)
	out[len(out)-2], out[len(out)-1] = M, N
	return out, Float32, nil
}

// inferNorm: LayerNorm and RMSNorm over the last dimension D, every parameter [D].
func (g *Graph) inferNorm(n *Node) (Shape, DType, error) {
	x, err := g.rankAtLeast(n, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	if err := g.f32(n, 0); err != nil {
		return nil, 0, err
	}
	D := x[len(x)-1]
	for i := 1; i < len(n.Inputs); i++ {
		if s := g.in(n, i).Shape; s.Size() != D || len(s) != 1 {
			return nil, 0, fmt.Errorf("operand %d (%s) has shape %s, want [%d]", i, g.in(n, i).Label, s, D)
		}
	}
	if !(n.Attr.Eps >= 0) {
		return nil, 0, fmt.Errorf("eps %g", n.Attr.Eps)
	}
	return x, Float32, nil
}

// inferSoftmax: over the last dimension, with an optional mask that broadcasts to x.
func (g *Graph) inferSoftmax(n *Node) (Shape, DType, error) {
	x, err := g.rankAtLeast(n, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	if m := n.Inputs[1]; m != None {
		if err := g.f32(n, 1); err != nil {
			return nil, 0, err
		}
		b, err := Broadcast(x, g.Nodes[m].Shape)
		if err != nil || !slices.Equal(b, x) {
			return nil, 0, fmt.Errorf("mask %s does not broadcast to x %s", g.Nodes[m].Shape, x)
		}
	}
	return x, Float32, g.f32(n, 0)
}

// inferTranspose: Perm must be a permutation of x's dimensions.
func (g *Graph) inferTranspose(n *Node) (Shape, DType, error) {
	x := g.in(n, 0).Shape
	p := n.Attr.Perm
	if len(p) != len(x) {
		return nil, 0, fmt.Errorf("perm %v for rank %d", p, len(x))
	}
	seen := make([]bool, len(p))
	out := make(Shape, len(p))
	for i, a := range p {
		if a < 0 || a >= len(p) || seen[a] {
			return nil, 0, fmt.Errorf("perm %v is not a permutation of 0..%d", p, len(p)-1)
		}
		seen[a] = true
		out[i] = x[a]
	}
	return out, g.in(n, 0).DType, nil
}

// inferSlice: a non-empty [Start, End) inside Axis.
func (g *Graph) inferSlice(n *Node) (Shape, DType, error) {
	x := g.in(n, 0).Shape
	a := n.Attr
	if a.Axis < 0 || a.Axis >= len(x) {
		return nil, 0, fmt.Errorf("axis %d of rank %d", a.Axis, len(x))
	}
	if a.Start < 0 || a.End > x[a.Axis] || a.Start >= a.End {
		return nil, 0, fmt.Errorf("[%d:%d] outside axis %d of size %d", a.Start, a.End, a.Axis, x[a.Axis])
	}
	out := slices.Clone(x)
	out[a.Axis] = a.End - a.Start
	return out, g.in(n, 0).DType, nil
}

// inferConcat: operands of one type and rank that differ only along Axis.
func (g *Graph) inferConcat(n *Node) (Shape, DType, error) {
	if len(n.Inputs) == 0 {
		return nil, 0, fmt.Errorf("nothing to concatenate")
	}
	first := g.in(n, 0)
	ax := n.Attr.Axis
	if ax < 0 || ax >= len(first.Shape) {
		return nil, 0, fmt.Errorf("axis %d of rank %d", ax, len(first.Shape))
	}
	out := slices.Clone(first.Shape)
	for i := 1; i < len(n.Inputs); i++ {
		s := g.in(n, i)
		if len(s.Shape) != len(out) || s.DType != first.DType {
			return nil, 0, fmt.Errorf("operand %d is %s %s, operand 0 %s %s", i, s.Shape, s.DType, first.Shape, first.DType)
		}
		for d := range out {
			if d != ax && s.Shape[d] != out[d] {
				return nil, 0, fmt.Errorf("operand %d has %d in dimension %d, operand 0 %d", i, s.Shape[d], d, out[d])
			}
		}
		out[ax] += s.Shape[ax]
	}
	return out, first.DType, nil
}

// inferRoPE: x [B, T, H, Dh] with Dh even, i32 positions [T], a positive base.
func (g *Graph) inferRoPE(n *Node) (Shape, DType, error) {
	x, err := g.rankAtLeast(n, 0, 4)
	if err != nil {
		return nil, 0, err
	}
	p := g.in(n, 1)
	if len(x) != 4 || x[3]%2 != 0 {
		return nil, 0, fmt.Errorf("x %s: want [B, T, H, Dh] with Dh even", x)
	}
	if p.DType != Int32 || len(p.Shape) != 1 || p.Shape[0] != x[1] {
		return nil, 0, fmt.Errorf("pos %s %s: want i32 [T=%d]", p.Shape, p.DType, x[1])
	}
	if !(n.Attr.Base > 0) {
		return nil, 0, fmt.Errorf("base %g must be positive", n.Attr.Base)
	}
	return x, Float32, g.f32(n, 0)
}

// Broadcast is the NumPy broadcast of two shapes.
func Broadcast(a, b Shape) (Shape, error) {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("%s and %s do not broadcast (dimension %d: %d vs %d)", a, b, i, da, db)
		}
	}
	return out, nil
}

func positive(s Shape) error {
	for i, d := range s {
		if d <= 0 {
			return fmt.Errorf("dimension %d of %s is %d, must be positive", i, s, d)
		}
	}
	return nil
}

func errors2(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
