package onnx

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Weight is what the exporter writes for the tensor a graph's Weight node names: float32 values
// row-major in the node's shape, or a quantized [N, K] matrix. A 4-bit matrix with a
// power-of-two group of at least 16 stays 4-bit where the op allows it (a Linear becomes
// MatMulNBits, a Gather of a symmetric table GatherBlockQuantized); everywhere else a quantized
// weight is dequantized to float32 (quant.Dequantize: the values nibble's backends compute with).
type Weight struct {
	F32 []float32
	Q   *quant.Tensor
}

// Options control Export.
type Options struct {
	Producer string
	// Weight gives the tensor a Weight node names.
	Weight func(name string) (Weight, error)
	// DimNames names symbolic dimensions (dynamic export), keyed "input.axis" ("ids.0"); the
	// default name is "input_axis".
	DimNames map[string]string
}

// ErrUnsupported is wrapped when a graph uses what the exporter cannot express.
var ErrUnsupported = errors.New("onnx: not expressible")

// Export writes g as an ONNX model (opset 17, plus com.microsoft for 4-bit weights) computing
// exactly what graph's op definitions say, the cpu backend being the reference:
//
//   - Gather: an id outside [0, V) gives a row of zeros (ONNX's Gather would wrap −1 to the last
//     row), through Where and a multiplication by the valid mask.
//   - Softmax with a mask: excluded entries are set to the lowest float before Softmax and to 0
//     after it, so a row with every entry excluded is all zeros.
//   - MeanPool, L2Normalize, RMSNorm and GELU are spelt out with reductions, Sqrt and Erf.
//
// With a second graph h, built by the same code at other sizes (other batch and length
// buckets), every input dimension that differs between g and h becomes a symbolic dimension,
// and the model takes any size there: a Reshape's target is then computed from the inputs'
// shapes, and a Const whose first dimension is symbolic (a positional table) must be a prefix
// of the other graph's; it is written at the larger size and sliced at run time. A dimension
// that differs but follows no input dimension is an error.
func Export(opt Options, g *graph.Graph, h *graph.Graph) (*Model, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	e := &exporter{opt: opt, g: g, h: h, vals: map[graph.Value]string{}, inits: map[string]bool{}, weights: map[string]Weight{}, symVal: map[int]string{}}
	if h != nil {
		if err := e.symbols(); err != nil {
			return nil, err
		}
	}
	e.m = Model{IRVersion: IRVersion, Producer: opt.Producer, GraphName: g.Name, Opsets: map[string]int64{"": Opset}}
	for i := range g.Nodes {
		if err := e.emit(graph.Value(i)); err != nil {
			n := &g.Nodes[i]
			return nil, fmt.Errorf("onnx: graph %q: node %d (%s %q): %w", g.Name, i, n.Op, n.Label, err)
		}
	}
	for _, o := range g.Outputs {
		dims, err := e.valueDims(o)
		if err != nil {
			return nil, err
		}
		name, err := e.value(o)
		if err != nil {
			return nil, err
		}
		e.m.Outputs = append(e.m.Outputs, ValueInfo{Name: name, ElemType: elemType(g.Nodes[o].DType), Dims: dims})
	}
	if err := Check(&e.m); err != nil {
		return nil, err
	}
	return &e.m, nil
}

// sym is a symbolic dimension: axis of an input, a in g and b in h.
type sym struct {
	input  graph.Value
	axis   int
	a, b   int
	name   string
	parent string // the input's name
}

type exporter struct {
	opt     Options
	g, h    *graph.Graph
	m       Model
	syms    []sym
	symVal  map[int]string // symbol → an int64 [1] tensor holding its size at run time
	vals    map[graph.Value]string
	inits   map[string]bool
	weights map[string]Weight
	count   int
}

// symbols checks that h is g at other sizes and finds the symbolic dimensions.
func (e *exporter) symbols() error {
	g, h := e.g, e.h
	if err := h.Validate(); err != nil {
		return err
	}
	if len(g.Nodes) != len(h.Nodes) || !slices.Equal(g.Inputs, h.Inputs) || !slices.Equal(g.Outputs, h.Outputs) {
		return fmt.Errorf("%w: graphs %q and %q differ in structure", ErrUnsupported, g.Name, h.Name)
	}
	for i := range g.Nodes {
		a, b := g.Nodes[i], h.Nodes[i]
		a.Attr.Data, b.Attr.Data = nil, nil
		if a.Op != b.Op || a.Label != b.Label || a.DType != b.DType || !slices.Equal(a.Inputs, b.Inputs) || !reflect.DeepEqual(a.Attr, b.Attr) || len(a.Shape) != len(b.Shape) {
			return fmt.Errorf("%w: graphs %q and %q differ at node %d (%s %q)", ErrUnsupported, g.Name, h.Name, i, a.Op, a.Label)
		}
	}
	for _, in := range g.Inputs {
		name := g.Nodes[in].Attr.Name
		for ax, d := range g.Shape(in) {
			db := h.Shape(in)[ax]
			if d == db || slices.ContainsFunc(e.syms, func(s sym) bool { return s.a == d && s.b == db }) {
				continue
			}
			s := sym{input: in, axis: ax, a: d, b: db, parent: name, name: fmt.Sprintf("%s_%d", name, ax)}
			if n, ok := e.opt.DimNames[fmt.Sprintf("%s.%d", name, ax)]; ok {
				s.name = n
			}
			e.syms = append(e.syms, s)
		}
	}
	return nil
}

// dim is one dimension of a value: a size, or symbol sym (≥ 0).
type dim struct {
	size int
	sym  int
}

func (e *exporter) dims(v graph.Value) ([]dim, error) {
	s := e.g.Shape(v)
	out := make([]dim, len(s))
	for i, d := range s {
		out[i] = dim{size: d, sym: -1}
		if e.h == nil || e.h.Shape(v)[i] == d {
			continue
		}
		db := e.h.Shape(v)[i]
		j := slices.IndexFunc(e.syms, func(s sym) bool { return s.a == d && s.b == db })
		if j < 0 {
			return nil, fmt.Errorf("%w: dimension %d is %d in one graph and %d in the other, which no input dimension is", ErrUnsupported, i, d, db)
		}
		out[i].sym = j
	}
	return out, nil
}

func (e *exporter) valueDims(v graph.Value) ([]Dim, error) {
	ds, err := e.dims(v)
	if err != nil {
		return nil, err
	}
	out := make([]Dim, len(ds))
	for i, d := range ds {
		if d.sym >= 0 {
			out[i].Param = e.syms[d.sym].name
		} else {
			out[i].Value = int64(d.size)
		}
	}
	return out, nil
}

func elemType(dt graph.DType) int {
	if dt == graph.Int32 {
		return Int32
	}
	return Float
}

// fresh names a new intermediate tensor.
func (e *exporter) fresh(hint string) string {
	e.count++
	return fmt.Sprintf("t%d_%s", e.count, hint)
}

// op appends a node with one output and returns the output's name.
func (e *exporter) op(domain, op string, inputs []string, attrs ...Attribute) string {
	out := e.fresh(op)
	e.m.Nodes = append(e.m.Nodes, Node{Op: op, Domain: domain, Name: out, Inputs: inputs, Outputs: []string{out}, Attrs: attrs})
	if domain != "" {
		e.m.Opsets[domain] = MicrosoftOpset
	}
	return out
}

func (e *exporter) std(op string, attrs []Attribute, inputs ...string) string {
	return e.op("", op, inputs, attrs...)
}

func (e *exporter) init(t Initializer) string {
	if !e.inits[t.Name] {
		e.inits[t.Name] = true
		e.m.Initializers = append(e.m.Initializers, t)
	}
	return t.Name
}

// constant writes a small constant under a name derived from its value, so equal constants
// are written once.
func (e *exporter) constant(dt int, raw []byte, dims ...int64) string {
	return e.init(Initializer{Name: fmt.Sprintf("c_%d_%v_%x", dt, dims, raw), DataType: dt, Dims: dims, Raw: raw})
}

func (e *exporter) scalarF(v float32) string { return e.constant(Float, Float32Bytes([]float32{v})) }

func (e *exporter) ints64(v ...int64) string {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		for j := range 8 {
			raw[8*i+j] = byte(uint64(x) >> (8 * j))
		}
	}
	return e.constant(Int64, raw, int64(len(v)))
}

func (e *exporter) scalarI32(v int32) string {
	return e.constant(Int32, []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

// symSize is the int64 [1] tensor holding symbol s's size at run time.
func (e *exporter) symSize(s int) string {
	if name, ok := e.symVal[s]; ok {
		return name
	}
	y := e.syms[s]
	name := e.std("Shape", []Attribute{IntAttr("start", int64(y.axis)), IntAttr("end", int64(y.axis+1))}, y.parent)
	e.symVal[s] = name
	return name
}

// weight returns the tensor a Weight node names.
func (e *exporter) weight(name string) (Weight, error) {
	if w, ok := e.weights[name]; ok {
		return w, nil
	}
	if e.opt.Weight == nil {
		return Weight{}, fmt.Errorf("weight %q: no Options.Weight", name)
	}
	w, err := e.opt.Weight(name)
	if err != nil {
		return Weight{}, err
	}
	if w.F32 == nil && w.Q == nil {
		return Weight{}, fmt.Errorf("weight %q: neither float32 values nor a quantized tensor", name)
	}
	e.weights[name] = w
	return w, nil
}

func (w Weight) float32s() []float32 {
	if w.F32 != nil {
		return w.F32
	}
	return quant.Dequantize(w.Q)
}

// nbits gives w in ORT's 4-bit layout when it can stay 4-bit.
func (w Weight) nbits() *ORTWeight {
	if w.Q == nil || w.Q.Bits != 4 {
		return nil
	}
	o, err := ToORT(w.Q)
	if err != nil {
		return nil
	}
	return o
}

// value is the tensor name holding v, emitting a Weight node's float32 initializer on first use.
func (e *exporter) value(v graph.Value) (string, error) {
	if name, ok := e.vals[v]; ok {
		return name, nil
	}
	n := &e.g.Nodes[v]
	if n.Op != graph.OpWeight {
		return "", fmt.Errorf("value %%%d (%s) used before it was written", v, n.Op)
	}
	dims, err := e.dims(v)
	if err != nil {
		return "", err
	}
	w, err := e.weight(n.Attr.Name)
	if err != nil {
		return "", err
	}
	f := w.float32s()
	if len(f) != n.Shape.Size() {
		return "", fmt.Errorf("weight %q has %d values for shape %s", n.Attr.Name, len(f), n.Shape)
	}
	d := make([]int64, len(dims))
	for i, x := range dims {
		if x.sym >= 0 {
			return "", fmt.Errorf("%w: weight %q has a symbolic dimension", ErrUnsupported, n.Attr.Name)
		}
		d[i] = int64(x.size)
	}
	name := e.init(Initializer{Name: n.Attr.Name, DataType: Float, Dims: d, Raw: Float32Bytes(f)})
	e.vals[v] = name
	return name, nil
}

func (e *exporter) emit(v graph.Value) error {
	n := &e.g.Nodes[v]
	if n.Op == graph.OpWeight {
		return nil // written where it is used: Linear and Gather may keep it quantized
	}
	if n.Op == graph.OpInput {
		dims, err := e.valueDims(v)
		if err != nil {
			return err
		}
		e.m.Inputs = append(e.m.Inputs, ValueInfo{Name: n.Attr.Name, ElemType: elemType(n.DType), Dims: dims})
		e.vals[v] = n.Attr.Name
		return nil
	}
	in := make([]string, len(n.Inputs))
	for i, x := range n.Inputs {
		if x == graph.None || (n.Op == graph.OpLinear && i == 1) || (n.Op == graph.OpGather && i == 0 && e.g.Nodes[x].Op == graph.OpWeight) {
			continue
		}
		var err error
		if in[i], err = e.value(x); err != nil {
			return err
		}
	}
	out, err := e.lower(v, n, in)
	if err != nil {
		return err
	}
	e.vals[v] = out
	return nil
}

// lower writes node n, whose operands are the tensors in, and returns its output's name.
func (e *exporter) lower(v graph.Value, n *graph.Node, in []string) (string, error) {
	a := n.Attr
	switch n.Op {
	case graph.OpConst:
		return e.constNode(v, n)
	case graph.OpGather:
		return e.gather(n, in)
	case graph.OpLinear:
		return e.linear(n, in)
	case graph.OpMatMul:
		b := in[1]
		if a.TransB {
			r := len(e.g.Nodes[n.Inputs[1]].Shape)
			perm := make([]int64, r)
			for i := range perm {
				perm[i] = int64(i)
			}
			perm[r-2], perm[r-1] = perm[r-1], perm[r-2]
			b = e.std("Transpose", []Attribute{IntsAttr("perm", perm...)}, b)
		}
		return e.std("MatMul", nil, in[0], b), nil
	case graph.OpAdd, graph.OpSub, graph.OpMul, graph.OpDiv:
		op := map[graph.Op]string{graph.OpAdd: "Add", graph.OpSub: "Sub", graph.OpMul: "Mul", graph.OpDiv: "Div"}[n.Op]
		return e.std(op, nil, in[0], in[1]), nil
	case graph.OpScale:
		return e.std("Mul", nil, in[0], e.scalarF(a.Scale)), nil
	case graph.OpLayerNorm:
		return e.std("LayerNormalization", []Attribute{IntAttr("axis", -1), FloatAttr("epsilon", a.Eps)}, in...), nil
	case graph.OpRMSNorm:
		ms := e.std("ReduceMean", []Attribute{IntsAttr("axes", -1), IntAttr("keepdims", 1)}, e.std("Mul", nil, in[0], in[0]))
		r := e.std("Sqrt", nil, e.std("Add", nil, ms, e.scalarF(a.Eps)))
		return e.std("Mul", nil, e.std("Div", nil, in[0], r), in[1]), nil
	case graph.OpSoftmax:
		if n.Inputs[1] == graph.None {
			return e.std("Softmax", []Attribute{IntAttr("axis", -1)}, in[0]), nil
		}
		off := e.std("Equal", nil, in[1], e.scalarF(0))
		p := e.std("Softmax", []Attribute{IntAttr("axis", -1)}, e.std("Where", nil, off, e.scalarF(-math.MaxFloat32), in[0]))
		return e.std("Where", nil, off, e.scalarF(0), p), nil
	case graph.OpReLU:
		return e.std("Relu", nil, in[0]), nil
	case graph.OpTanh:
		return e.std("Tanh", nil, in[0]), nil
	case graph.OpGELU:
		erf := e.std("Erf", nil, e.std("Mul", nil, in[0], e.scalarF(float32(1/math.Sqrt2))))
		half := e.std("Mul", nil, in[0], e.scalarF(0.5))
		return e.std("Mul", nil, half, e.std("Add", nil, erf, e.scalarF(1))), nil
	case graph.OpSiLU:
		return e.std("Mul", nil, in[0], e.std("Sigmoid", nil, in[0])), nil
	case graph.OpTranspose:
		perm := make([]int64, len(a.Perm))
		for i, p := range a.Perm {
			perm[i] = int64(p)
		}
		return e.std("Transpose", []Attribute{IntsAttr("perm", perm...)}, in[0]), nil
	case graph.OpReshape:
		return e.reshape(v, in[0])
	case graph.OpSlice:
		return e.std("Slice", nil, in[0], e.ints64(int64(a.Start)), e.ints64(int64(a.End)), e.ints64(int64(a.Axis))), nil
	case graph.OpConcat:
		return e.std("Concat", []Attribute{IntAttr("axis", int64(a.Axis))}, in...), nil
	case graph.OpMeanPool:
		m := e.std("Unsqueeze", nil, in[1], e.ints64(2))
		sum := e.std("ReduceSum", []Attribute{IntAttr("keepdims", 0)}, e.std("Mul", nil, in[0], m), e.ints64(1))
		count := e.std("ReduceSum", []Attribute{IntAttr("keepdims", 1)}, in[1], e.ints64(1))
		return e.std("Div", nil, sum, e.std("Clip", nil, count, e.scalarF(1))), nil
	case graph.OpL2Normalize:
		ss := e.std("ReduceSumSquare", []Attribute{IntsAttr("axes", -1), IntAttr("keepdims", 1)}, in[0])
		return e.std("Div", nil, in[0], e.std("Sqrt", nil, e.std("Clip", nil, ss, e.scalarF(a.Eps)))), nil
	}
	return "", fmt.Errorf("%w: op %s", ErrUnsupported, n.Op)
}

// constNode writes a Const; one with a symbolic first dimension is a positional table: written
// at the larger graph's length and sliced to the run's.
func (e *exporter) constNode(v graph.Value, n *graph.Node) (string, error) {
	ds, err := e.dims(v)
	if err != nil {
		return "", err
	}
	data, shape := n.Attr.Data, n.Shape
	s := -1
	for i, d := range ds {
		if d.sym >= 0 && i > 0 {
			return "", fmt.Errorf("%w: a Const with symbolic dimension %d (only the first may be)", ErrUnsupported, i)
		}
		if d.sym >= 0 {
			s = d.sym
		}
	}
	if s >= 0 {
		other := e.h.Nodes[v]
		short, long := data, other.Attr.Data
		if len(short) > len(long) {
			short, long, shape = long, short, n.Shape
		} else {
			shape = other.Shape
		}
		if !slices.Equal(short, long[:len(short)]) {
			return "", fmt.Errorf("%w: Const %q differs between the graphs beyond its length (not a positional table)", ErrUnsupported, n.Label)
		}
		data = long
	}
	d := make([]int64, len(shape))
	for i, x := range shape {
		d[i] = int64(x)
	}
	name := e.init(Initializer{Name: e.fresh("const"), DataType: Float, Dims: d, Raw: Float32Bytes(data)})
	if s < 0 {
		return name, nil
	}
	return e.std("Slice", nil, name, e.ints64(0), e.symSize(s), e.ints64(0)), nil
}

func (e *exporter) reshape(v graph.Value, x string) (string, error) {
	ds, err := e.dims(v)
	if err != nil {
		return "", err
	}
	lits := make([]int64, len(ds))
	dynamic := false
	for i, d := range ds {
		lits[i] = int64(d.size)
		dynamic = dynamic || d.sym >= 0
	}
	if !dynamic {
		return e.std("Reshape", nil, x, e.ints64(lits...)), nil
	}
	// A constant target where it can be one (ORT runs a computed int64 shape on the CPU): 0
	// copies the input's dimension at the same index, and one symbolic dimension left over is
	// −1, which Reshape infers.
	in, err := e.dims(e.g.Nodes[v].Inputs[0])
	if err != nil {
		return "", err
	}
	left := 0
	for i, d := range ds {
		switch {
		case d.sym < 0:
		case i < len(in) && in[i].sym == d.sym:
			lits[i] = 0
		default:
			left++
			lits[i] = -1
		}
	}
	if left <= 1 {
		return e.std("Reshape", nil, x, e.ints64(lits...)), nil
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		if d.sym >= 0 {
			parts[i] = e.symSize(d.sym)
		} else {
			parts[i] = e.ints64(int64(d.size))
		}
	}
	return e.std("Reshape", nil, x, e.std("Concat", []Attribute{IntAttr("axis", 0)}, parts...)), nil
}

// gather picks rows with graph's semantics: ids outside [0, V) give zeros.
func (e *exporter) gather(n *graph.Node, in []string) (string, error) {
	tn := &e.g.Nodes[n.Inputs[0]]
	V := int32(tn.Shape[0])
	ids := in[1]
	// No And (ORT's JSEP has no kernel for it): two Wheres pick the id, a product of the two
	// tests the rows kept.
	lo, hi := e.std("GreaterOrEqual", nil, ids, e.scalarI32(0)), e.std("Less", nil, ids, e.scalarI32(V))
	safe := e.std("Where", nil, lo, e.std("Where", nil, hi, ids, e.scalarI32(0)), e.scalarI32(0))
	var rows string
	if tn.Op == graph.OpWeight {
		w, err := e.weight(tn.Attr.Name)
		if err != nil {
			return "", err
		}
		if o := w.nbits(); o != nil && o.ZeroPoints == nil && o.K%o.BlockSize == 0 && o.N == int(V) && o.K == tn.Shape[1] {
			// uint8 data packs two 4-bit codes a byte with ORT's default zero point 8, as MatMulNBits.
			data := e.init(Initializer{Name: tn.Attr.Name + "#q4", DataType: Uint8, Dims: []int64{int64(o.N), int64(o.K / 2)}, Raw: o.B})
			scales := e.init(Initializer{Name: tn.Attr.Name + "#scales", DataType: Float, Dims: []int64{int64(o.N), int64(o.Blocks)}, Raw: Float32Bytes(o.Scales)})
			rows = e.op(Microsoft, "GatherBlockQuantized", []string{data, safe, scales},
				IntAttr("gather_axis", 0), IntAttr("quantize_axis", 1), IntAttr("block_size", int64(o.BlockSize)), IntAttr("bits", 4))
		} else {
			table, err := e.value(n.Inputs[0])
			if err != nil {
				return "", err
			}
			rows = e.std("Gather", []Attribute{IntAttr("axis", 0)}, table, safe)
		}
	} else {
		rows = e.std("Gather", []Attribute{IntAttr("axis", 0)}, in[0], safe)
	}
	toF := []Attribute{IntAttr("to", Float)}
	keep := e.std("Unsqueeze", nil, e.std("Mul", nil, e.std("Cast", toF, lo), e.std("Cast", toF, hi)), e.ints64(-1))
	return e.std("Mul", nil, rows, keep), nil
}

// linear is x·wᵀ + bias: MatMulNBits for a 4-bit w, else MatMul by wᵀ in float32.
func (e *exporter) linear(n *graph.Node, in []string) (string, error) {
	wn := &e.g.Nodes[n.Inputs[1]]
	N, K := wn.Shape[0], wn.Shape[1]
	w, err := e.weight(wn.Attr.Name)
	if err != nil {
		return "", err
	}
	var y string
	if o := w.nbits(); o != nil && o.N == N && o.K == K {
		ins := []string{in[0],
			e.init(Initializer{Name: wn.Attr.Name + "#B", DataType: Uint8, Dims: []int64{int64(o.N), int64(o.Blocks), int64(o.BlobSize)}, Raw: o.B}),
			e.init(Initializer{Name: wn.Attr.Name + "#scales", DataType: Float, Dims: []int64{int64(o.N) * int64(o.Blocks)}, Raw: Float32Bytes(o.Scales)}),
		}
		if o.ZeroPoints != nil {
			ins = append(ins, e.init(Initializer{Name: wn.Attr.Name + "#zero_points", DataType: Uint8, Dims: []int64{int64(len(o.ZeroPoints))}, Raw: o.ZeroPoints}))
		}
		y = e.op(Microsoft, "MatMulNBits", ins, IntAttr("K", int64(K)), IntAttr("N", int64(N)), IntAttr("bits", 4), IntAttr("block_size", int64(o.BlockSize)))
	} else {
		f := w.float32s()
		if len(f) != N*K {
			return "", fmt.Errorf("weight %q has %d values for [%d, %d]", wn.Attr.Name, len(f), N, K)
		}
		t := make([]float32, N*K)
		for r := range N {
			for c := range K {
				t[c*N+r] = f[r*K+c]
			}
		}
		wt := e.init(Initializer{Name: wn.Attr.Name + "#T", DataType: Float, Dims: []int64{int64(K), int64(N)}, Raw: Float32Bytes(t)})
		y = e.std("MatMul", nil, in[0], wt)
	}
	if n.Inputs[2] != graph.None {
		y = e.std("Add", nil, y, in[2])
	}
	return y, nil
}
