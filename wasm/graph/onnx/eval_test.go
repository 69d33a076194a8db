package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// A reference interpreter for the operators this package writes, with ONNX's semantics (not
// nibble's: Gather wraps negative ids and refuses out-of-range ones, Softmax knows no mask), so
// that running an exported model here and comparing with nibble's cpu backend checks the
// exporter's lowering, natively, without ONNX Runtime.

type tensor struct {
	shape []int
	f     []float64 // Float
	i     []int64   // Int32, Int64
	b     []bool    // Bool
	dt    int
}

func size(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func floatT(shape []int, f []float64) *tensor { return &tensor{shape: shape, f: f, dt: Float} }

func fromInit(t Initializer) *tensor {
	shape := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		shape[i] = int(d)
	}
	out := &tensor{shape: shape, dt: t.DataType}
	switch t.DataType {
	case Float:
		for _, v := range BytesFloat32(t.Raw) {
			out.f = append(out.f, float64(v))
		}
	case Int32:
		for i := 0; i < len(t.Raw); i += 4 {
			out.i = append(out.i, int64(int32(binary.LittleEndian.Uint32(t.Raw[i:]))))
		}
	case Int64:
		for i := 0; i < len(t.Raw); i += 8 {
			out.i = append(out.i, int64(binary.LittleEndian.Uint64(t.Raw[i:])))
		}
	case Uint8:
		for _, b := range t.Raw {
			out.i = append(out.i, int64(b))
		}
	}
	return out
}

// broadcast gives the output shape of operands shaped as ins, and for each output element the
// element of each operand it reads.
func broadcast(ins ...[]int) ([]int, func(k int) []int, error) {
	r := 0
	for _, s := range ins {
		r = max(r, len(s))
	}
	out := make([]int, r)
	for i := range out {
		out[i] = 1
		for _, s := range ins {
			if j := len(s) - r + i; j >= 0 && s[j] != 1 {
				if out[i] != 1 && out[i] != s[j] {
					return nil, nil, fmt.Errorf("shapes %v do not broadcast", ins)
				}
				out[i] = s[j]
			}
		}
	}
	strides := make([][]int, len(ins))
	for n, s := range ins {
		st := make([]int, r)
		acc := 1
		for i := r - 1; i >= 0; i-- {
			if j := len(s) - r + i; j >= 0 && s[j] != 1 {
				st[i] = acc
				acc *= s[j]
			} else if j >= 0 {
				acc *= s[j]
			}
		}
		strides[n] = st
	}
	return out, func(k int) []int {
		idx := make([]int, len(ins))
		for i := r - 1; i >= 0; i-- {
			c := k % out[i]
			k /= out[i]
			for n := range ins {
				idx[n] += c * strides[n][i]
			}
		}
		return idx
	}, nil
}

func axis(a, rank int) int {
	if a < 0 {
		return a + rank
	}
	return a
}

func attrInt64(n *Node, name string, def int64) int64 {
	if a, ok := n.Attr(name); ok {
		return a.Int
	}
	return def
}

// run evaluates m on inputs (by name) and returns its outputs in order.
func run(m *Model, inputs map[string]*tensor) ([]*tensor, error) {
	env := map[string]*tensor{}
	for k, v := range inputs {
		env[k] = v
	}
	for _, t := range m.Initializers {
		env[t.Name] = fromInit(t)
	}
	for _, n := range m.Nodes {
		in := make([]*tensor, len(n.Inputs))
		for i, name := range n.Inputs {
			if name != "" {
				in[i] = env[name]
				if in[i] == nil {
					return nil, fmt.Errorf("%s: operand %q undefined", n.Name, name)
				}
			}
		}
		out, err := evalNode(&n, in)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", n.Name, n.Op, err)
		}
		env[n.Outputs[0]] = out
	}
	var outs []*tensor
	for _, o := range m.Outputs {
		outs = append(outs, env[o.Name])
	}
	return outs, nil
}

// evalNode computes one node from its inputs (float64): an eval* function per op family,
// the unary ops inline.
func evalNode(n *Node, in []*tensor) (*tensor, error) {
	unary := func(f func(float64) float64) *tensor {
		out := floatT(in[0].shape, make([]float64, len(in[0].f)))
		for i, v := range in[0].f {
			out.f[i] = f(v)
		}
		return out
	}
	switch n.Op {
	case "Add", "Sub", "Mul", "Div", "Equal", "Less", "GreaterOrEqual":
		return evalBinary(n, in)
	case "Where":
		return evalWhere(n, in)
	case "Cast":
		return evalCast(n, in)
	case "Shape":
		return evalShape(n, in)
	case "Unsqueeze":
		return evalUnsqueeze(n, in)
	case "Reshape":
		return evalReshape(n, in)
	case "Transpose":
		return evalTranspose(n, in)
	case "Slice":
		return evalSlice(n, in)
	case "Concat":
		return evalConcat(n, in)
	case "Gather", "GatherBlockQuantized":
		return evalGather(n, in)
	case "MatMul", "MatMulNBits":
		return evalMatMul(n, in)
	case "Softmax", "LayerNormalization", "ReduceSum", "ReduceSumSquare", "ReduceMean":
		return lastAxis(n, in)
	case "Clip": // min only, a scalar: how the exporter writes it
		lo := in[1].f[0]
		return unary(func(v float64) float64 { return math.Max(v, lo) }), nil
	case "Sqrt":
		return unary(math.Sqrt), nil
	case "Relu":
		return unary(func(v float64) float64 { return math.Max(v, 0) }), nil
	case "Tanh":
		return unary(math.Tanh), nil
	case "Erf":
		return unary(math.Erf), nil
	case "Sigmoid":
		return unary(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }), nil
	}
	return nil, fmt.Errorf("not interpreted")
}

// evalBinary: the broadcasting arithmetic and comparisons, and And.
func evalBinary(n *Node, in []*tensor) (*tensor, error) {
	a, b := in[0], in[1]
	shape, idx, err := broadcast(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	out := &tensor{shape: shape, dt: a.dt}
	cmp := n.Op == "Equal" || n.Op == "Less" || n.Op == "GreaterOrEqual"
	if cmp {
		out.dt = Bool
	}
	for k := range size(shape) {
		ix := idx(k)
		var x, y float64
		if a.dt == Float {
			x, y = a.f[ix[0]], b.f[ix[1]]
		} else {
			x, y = float64(a.i[ix[0]]), float64(b.i[ix[1]])
		}
		if cmp {
			out.b = append(out.b, map[string]bool{"Equal": x == y, "Less": x < y, "GreaterOrEqual": x >= y}[n.Op])
			continue
		}
		if a.dt != Float {
			return nil, fmt.Errorf("integer arithmetic is never written")
		}
		out.f = append(out.f, map[string]float64{"Add": x + y, "Sub": x - y, "Mul": x * y, "Div": x / y}[n.Op])
	}
	return out, nil
}

// evalWhere: Where(cond, x, y), broadcast.
func evalWhere(n *Node, in []*tensor) (*tensor, error) {
	shape, idx, err := broadcast(in[0].shape, in[1].shape, in[2].shape)
	if err != nil {
		return nil, err
	}
	out := &tensor{shape: shape, dt: in[1].dt}
	for k := range size(shape) {
		ix := idx(k)
		src, j := in[2], ix[2]
		if in[0].b[ix[0]] {
			src, j = in[1], ix[1]
		}
		if out.dt == Float {
			out.f = append(out.f, src.f[j])
		} else {
			out.i = append(out.i, src.i[j])
		}
	}
	return out, nil
}

// evalCast: the one cast written, bool → float.
func evalCast(n *Node, in []*tensor) (*tensor, error) {
	if attrInt64(n, "to", 0) != Float || in[0].dt != Bool {
		return nil, fmt.Errorf("only bool → float casts are written")
	}
	out := floatT(in[0].shape, nil)
	for _, b := range in[0].b {
		out.f = append(out.f, map[bool]float64{true: 1}[b])
	}
	return out, nil
}

// evalShape: Shape with start and end.
func evalShape(n *Node, in []*tensor) (*tensor, error) {
	s, e := attrInt64(n, "start", 0), attrInt64(n, "end", int64(len(in[0].shape)))
	out := &tensor{dt: Int64, shape: []int{int(e - s)}}
	for _, d := range in[0].shape[s:e] {
		out.i = append(out.i, int64(d))
	}
	return out, nil
}

// evalUnsqueeze: Unsqueeze with axes as an input.
func evalUnsqueeze(n *Node, in []*tensor) (*tensor, error) {
	shape := slices.Clone(in[0].shape)
	for _, a := range in[1].i {
		shape = slices.Insert(shape, axis(int(a), len(shape)+1), 1)
	}
	out := *in[0]
	out.shape = shape
	return &out, nil
}

// evalReshape: Reshape with 0 (keep) and -1 (infer).
func evalReshape(n *Node, in []*tensor) (*tensor, error) {
	shape := make([]int, len(in[1].i))
	infer := -1
	for i, d := range in[1].i {
		switch d {
		case 0:
			shape[i] = in[0].shape[i]
		case -1:
			infer = i
			shape[i] = 1
		default:
			shape[i] = int(d)
		}
	}
	if infer >= 0 {
		shape[infer] = size(in[0].shape) / size(shape)
	}
	if size(shape) != size(in[0].shape) {
		return nil, fmt.Errorf("reshape %v to %v", in[0].shape, shape)
	}
	out := *in[0]
	out.shape = shape
	return &out, nil
}

// evalTranspose: Transpose by perm, float data.
func evalTranspose(n *Node, in []*tensor) (*tensor, error) {
	a, _ := n.Attr("perm")
	x := in[0]
	r := len(x.shape)
	shape := make([]int, r)
	for i, p := range a.Ints {
		shape[i] = x.shape[p]
	}
	st := make([]int, r)
	acc := 1
	for i := r - 1; i >= 0; i-- {
		st[i] = acc
		acc *= x.shape[i]
	}
	out := floatT(shape, make([]float64, len(x.f)))
	for k := range out.f {
		src, rem := 0, k
		for i := r - 1; i >= 0; i-- {
			src += (rem % shape[i]) * st[a.Ints[i]]
			rem /= shape[i]
		}
		out.f[k] = x.f[src]
	}
	return out, nil
}

// evalSlice: Slice of one axis, one start and end.
func evalSlice(n *Node, in []*tensor) (*tensor, error) {
	x := in[0]
	ax := axis(int(in[3].i[0]), len(x.shape))
	s, e := int(in[1].i[0]), min(int(in[2].i[0]), x.shape[ax])
	shape := slices.Clone(x.shape)
	shape[ax] = e - s
	outer, inner := size(x.shape[:ax]), size(x.shape[ax+1:])
	out := &tensor{shape: shape, dt: x.dt}
	for o := range outer {
		for j := s; j < e; j++ {
			base := (o*x.shape[ax] + j) * inner
			if x.dt == Float {
				out.f = append(out.f, x.f[base:base+inner]...)
			} else {
				out.i = append(out.i, x.i[base:base+inner]...)
			}
		}
	}
	return out, nil
}

// evalConcat: Concat along axis.
func evalConcat(n *Node, in []*tensor) (*tensor, error) {
	ax := axis(int(attrInt64(n, "axis", 0)), len(in[0].shape))
	shape := slices.Clone(in[0].shape)
	shape[ax] = 0
	for _, t := range in {
		shape[ax] += t.shape[ax]
	}
	out := &tensor{shape: shape, dt: in[0].dt}
	for o := range size(shape[:ax]) {
		for _, t := range in {
			w := size(t.shape[ax:])
			if t.dt == Float {
				out.f = append(out.f, t.f[o*w:(o+1)*w]...)
			} else {
				out.i = append(out.i, t.i[o*w:(o+1)*w]...)
			}
		}
	}
	return out, nil
}

// evalGather: Gather along axis 0, and GatherBlockQuantized of 4-bit codes (zero point 8).
func evalGather(n *Node, in []*tensor) (*tensor, error) {
	data, ids := in[0], in[1]
	V := data.shape[0]
	row := size(data.shape[1:])
	var scales []float64
	block := 0
	if n.Op == "GatherBlockQuantized" {
		row *= 2 // two codes a byte
		scales, block = in[2].f, int(attrInt64(n, "block_size", 0))
	}
	shape := append(slices.Clone(ids.shape), data.shape[1:]...)
	if n.Op == "GatherBlockQuantized" {
		shape[len(shape)-1] *= 2
	}
	out := floatT(shape, nil)
	for _, id := range ids.i {
		if id < 0 {
			id += int64(V)
		}
		if id < 0 || id >= int64(V) {
			return nil, fmt.Errorf("index %d out of [0, %d)", id, V)
		}
		for j := range row {
			if scales == nil {
				out.f = append(out.f, data.f[int(id)*row+j])
				continue
			}
			b := data.i[(int(id)*row+j)/2]
			code := (b >> (4 * (j % 2))) & 0xF
			out.f = append(out.f, float64(code-8)*scales[int(id)*(row/block)+j/block])
		}
	}
	return out, nil
}

// evalMatMul: batched MatMul, and MatMulNBits of 4-bit codes (zero point 8, no zero-point input).
func evalMatMul(n *Node, in []*tensor) (*tensor, error) {
	a := in[0]
	K := a.shape[len(a.shape)-1]
	M := a.shape[len(a.shape)-2]
	var N int
	var w func(batch, k, j int) float64 // b[k][j]
	if n.Op == "MatMulNBits" {
		N = int(attrInt64(n, "N", 0))
		bs := int(attrInt64(n, "block_size", 0))
		blocks := (K + bs - 1) / bs
		B, sc := in[1], in[2]
		w = func(_, k, j int) float64 {
			byteAt := j*blocks*bs/2 + k/2
			code := (B.i[byteAt] >> (4 * (k % 2))) & 0xF
			return float64(code-8) * sc.f[j*blocks+k/bs]
		}
		if len(in) > 3 {
			return nil, fmt.Errorf("zero points are not interpreted here")
		}
	} else {
		b := in[1]
		N = b.shape[len(b.shape)-1]
		w = func(batch, k, j int) float64 {
			if len(b.shape) == 2 {
				return b.f[k*N+j]
			}
			return b.f[batch*K*N+k*N+j]
		}
	}
	batches := size(a.shape[:len(a.shape)-2])
	shape := slices.Clone(a.shape)
	shape[len(shape)-1] = N
	out := floatT(shape, make([]float64, batches*M*N))
	for bt := range batches {
		for i := range M {
			for j := range N {
				var s float64
				for k := range K {
					s += a.f[bt*M*K+i*K+k] * w(bt, k, j)
				}
				out.f[bt*M*N+i*N+j] = s
			}
		}
	}
	return out, nil
}

// lastAxis evaluates the ops that work along one axis (the last, or a reduction's one axis).
func lastAxis(n *Node, in []*tensor) (*tensor, error) {
	x := in[0]
	r := len(x.shape)
	ax := r - 1
	keep := attrInt64(n, "keepdims", 1) == 1
	switch n.Op {
	case "ReduceSum":
		ax = axis(int(in[1].i[0]), r)
	case "ReduceSumSquare", "ReduceMean":
		a, _ := n.Attr("axes")
		ax = axis(int(a.Ints[0]), r)
	}
	outer, D, inner := size(x.shape[:ax]), x.shape[ax], size(x.shape[ax+1:])
	reduce := n.Op != "Softmax" && n.Op != "LayerNormalization"
	shape := slices.Clone(x.shape)
	if reduce {
		if keep {
			shape[ax] = 1
		} else {
			shape = slices.Delete(shape, ax, ax+1)
		}
	}
	out := floatT(shape, nil)
	if !reduce {
		out.f = make([]float64, len(x.f))
	}
	for o := range outer {
		for c := range inner {
			at := func(d int) int { return (o*D+d)*inner + c }
			var sum, sq float64
			mx := math.Inf(-1)
			for d := range D {
				v := x.f[at(d)]
				sum += v
				sq += v * v
				mx = math.Max(mx, v)
			}
			switch n.Op {
			case "ReduceSum":
				out.f = append(out.f, sum)
			case "ReduceSumSquare":
				out.f = append(out.f, sq)
			case "ReduceMean":
				out.f = append(out.f, sum/float64(D))
			case "Softmax":
				var z float64
				for d := range D {
					z += math.Exp(x.f[at(d)] - mx)
				}
				for d := range D {
					out.f[at(d)] = math.Exp(x.f[at(d)]-mx) / z
				}
			case "LayerNormalization":
				eps, _ := n.Attr("epsilon")
				mean := sum / float64(D)
				var v float64
				for d := range D {
					v += (x.f[at(d)] - mean) * (x.f[at(d)] - mean)
				}
				rs := 1 / math.Sqrt(v/float64(D)+float64(eps.Float))
				for d := range D {
					out.f[at(d)] = (x.f[at(d)]-mean)*rs*in[1].f[d] + in[2].f[d]
				}
			}
		}
	}
	return out, nil
}
