//go:build js && wasm

package nn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

// lowering turns one graph.Graph into the ops of one MLGraphBuilder. Each graph op becomes the
// WebNN op of the same meaning where one exists and the context accepts it, otherwise the
// decomposition doc.go writes down; the function is the one each constructor in wasm/graph
// defines, so the cpu interpreter stays the oracle.
type lowering struct {
	b      *Backend
	bd     *webnn.Builder
	g      *graph.Graph
	w      map[string]*Weight
	opt    CompileOptions
	vals   []*webnn.Operand
	used   []bool // nodes an output depends on; others are not lowered
	floats map[string]*webnn.Operand
	linear map[string]*webnn.Operand // a Linear weight's dequantized [N, KPad], by name
	qdq    map[string]*qdqWeight
	scalar map[scalarKey]*webnn.Operand
	notes  []string
	// embedded counts the constant bytes made of each weight, for Weight.Bytes.
	embedded map[string]int64
	// states are the graph's bound states; stateOuts the updated state parts, extra outputs
	// of the MLGraph (state_js.go); stateIO one entry per StateWrite lowered.
	states    map[string]backend.State
	stateOuts map[string]*webnn.Operand
	stateIO   []*stateIO
}

type scalarKey struct {
	dt webnn.DataType
	v  float64
}

func newLowering(b *Backend, g *graph.Graph, w map[string]*Weight, opt CompileOptions) *lowering {
	return &lowering{b: b, bd: b.ctx.NewBuilder(), g: g, w: w, opt: opt,
		vals: make([]*webnn.Operand, len(g.Nodes)), floats: map[string]*webnn.Operand{},
		linear: map[string]*webnn.Operand{}, qdq: map[string]*qdqWeight{}, scalar: map[scalarKey]*webnn.Operand{},
		embedded: map[string]int64{}, stateOuts: map[string]*webnn.Operand{}}
}

func (l *lowering) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !slices.Contains(l.notes, s) {
		l.notes = append(l.notes, s)
	}
}

func (l *lowering) accepts(op, operand string, rank int) bool {
	return l.b.limits.Accepts(op, operand, webnn.Float32, rank)
}

// lower builds every node an output needs and returns the outputs by name.
func (l *lowering) lower() (map[string]*webnn.Operand, error) {
	g := l.g
	l.used = make([]bool, len(g.Nodes))
	for _, o := range g.Outputs {
		l.used[o] = true
	}
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		if !l.used[i] {
			continue
		}
		for _, in := range g.Nodes[i].Inputs {
			if in != graph.None {
				l.used[in] = true
			}
		}
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if !l.used[i] || n.Op == graph.OpWeight { // weights become constants where a user needs them
			continue
		}
		if err := l.node(i, n); err != nil {
			return nil, fmt.Errorf("%s %q: %w", n.Op, n.Label, err)
		}
		if err := l.bd.Err(); err != nil {
			return nil, fmt.Errorf("%s %q: %w", n.Op, n.Label, err)
		}
	}
	outs := map[string]*webnn.Operand{}
	seen := map[graph.Value]bool{}
	for i, v := range g.Outputs {
		o := l.val(v)
		// An output must be an op's result, and each output its own operand.
		if op := g.Nodes[v].Op; op == graph.OpInput || op == graph.OpConst || op == graph.OpWeight || seen[v] {
			o = l.bd.Identity(fmt.Sprintf("%s (output %d)", g.Nodes[v].Label, i), o)
		}
		seen[v] = true
		outs[outputName(i)] = o
	}
	for name, o := range l.stateOuts {
		outs[name] = o
	}
	return outs, l.bd.Err()
}

// val is the operand of v, making a float constant of a Weight node on first use.
func (l *lowering) val(v graph.Value) *webnn.Operand {
	if l.vals[v] == nil && l.g.Nodes[v].Op == graph.OpWeight {
		l.vals[v] = l.floatWeight(&l.g.Nodes[v])
	}
	return l.vals[v]
}

// floatWeight is a float32/float16 weight read by an ordinary op, as a float32 constant of the
// node's shape (the bytes are row-major whatever [n, k] the weight is held as).
func (l *lowering) floatWeight(n *graph.Node) *webnn.Operand {
	key := fmt.Sprint(n.Attr.Name, n.Shape)
	if o := l.floats[key]; o != nil {
		return o
	}
	w := l.w[n.Attr.Name]
	d := webnn.Descriptor{DataType: w.layout.Codes.DataType, Shape: n.Shape}
	o := l.bd.Constant(n.Attr.Name, d, w.codes)
	l.embedded[w.name] += int64(d.ByteLength())
	if d.DataType != webnn.Float32 {
		o = l.bd.Cast(n.Attr.Name+"-f32", o, webnn.Float32)
	}
	l.floats[key] = o
	return o
}

// constant is a float32 constant of the given shape.
func (l *lowering) constant(label string, data []float32, shape ...int) *webnn.Operand {
	return l.bd.Constant(label, webnn.Descriptor{DataType: webnn.Float32, Shape: shape}, jsutil.Float32sToJS(data))
}

// scalarOf is a rank-0 constant, one per value and type in the graph.
func (l *lowering) scalarOf(dt webnn.DataType, v float64) *webnn.Operand {
	k := scalarKey{dt, v}
	if o := l.scalar[k]; o != nil {
		return o
	}
	b := make([]byte, 4)
	switch dt {
	case webnn.Int32:
		binary.LittleEndian.PutUint32(b, uint32(int32(v)))
	default:
		binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v)))
	}
	o := l.bd.ConstantBytes(fmt.Sprintf("%s %g", dt, v), webnn.Descriptor{DataType: dt}, b)
	l.scalar[k] = o
	return o
}

func (l *lowering) f(v float64) *webnn.Operand { return l.scalarOf(webnn.Float32, v) }

func (l *lowering) node(i int, n *graph.Node) error {
	bd, g := l.bd, l.g
	in := func(j int) *webnn.Operand { return l.val(n.Inputs[j]) }
	shape := func(j int) graph.Shape { return g.Nodes[n.Inputs[j]].Shape }
	lb := n.Label
	var out *webnn.Operand
	switch n.Op {
	case graph.OpInput:
		out = bd.Input(n.Attr.Name, webnn.Descriptor{DataType: dataType(n.DType), Shape: n.Shape})
	case graph.OpConst:
		out = l.constant(lb, n.Attr.Data, n.Shape...)
	case graph.OpGather:
		out = l.gather(n)
	case graph.OpLinear:
		out = l.linearOp(n)
	case graph.OpMatMul:
		bm := in(1)
		if n.Attr.TransB {
			bm = bd.Transpose(lb+"/bᵀ", bm, swapLast(len(shape(1))))
		}
		out = bd.Matmul(lb, in(0), bm)
	case graph.OpAdd:
		out = bd.Add(lb, in(0), in(1))
	case graph.OpSub:
		out = bd.Sub(lb, in(0), in(1))
	case graph.OpMul:
		out = bd.Mul(lb, in(0), in(1))
	case graph.OpDiv:
		out = bd.Div(lb, in(0), in(1))
	case graph.OpScale:
		out = bd.Mul(lb, in(0), l.f(float64(n.Attr.Scale)))
	case graph.OpLayerNorm:
		out = l.layerNorm(n, in(0), in(1), in(2))
	case graph.OpRMSNorm:
		x, last := in(0), []int{len(n.Shape) - 1}
		ms := bd.ReduceMean(lb+"/mean(x²)", bd.Mul(lb+"/x²", x, x), last, true)
		rms := bd.Sqrt(lb+"/rms", bd.Add(lb+"/+eps", ms, l.f(float64(n.Attr.Eps))))
		out = bd.Mul(lb, bd.Div(lb+"/x÷rms", x, rms), in(1))
	case graph.OpSoftmax:
		out = l.softmax(n, in(0))
	case graph.OpReLU:
		out = bd.Relu(lb, in(0))
	case graph.OpGELU:
		x := in(0)
		if l.accepts("gelu", "input", len(n.Shape)) {
			out = bd.Gelu(lb, x)
		} else { // x·½(1 + erf(x/√2))
			e := bd.Erf(lb+"/erf", bd.Mul(lb+"/x÷√2", x, l.f(1/math.Sqrt2)))
			out = bd.Mul(lb, bd.Mul(lb+"/½x", x, l.f(0.5)), bd.Add(lb+"/1+erf", e, l.f(1)))
		}
	case graph.OpSiLU:
		out = bd.Mul(lb, in(0), bd.Sigmoid(lb+"/σ", in(0)))
	case graph.OpTanh:
		out = bd.Tanh(lb, in(0))
	case graph.OpTranspose:
		out = bd.Transpose(lb, in(0), n.Attr.Perm)
	case graph.OpReshape:
		out = bd.Reshape(lb, in(0), n.Shape)
	case graph.OpSlice:
		xs := shape(0)
		starts, sizes := make([]int, len(xs)), slices.Clone([]int(xs))
		starts[n.Attr.Axis], sizes[n.Attr.Axis] = n.Attr.Start, n.Attr.End-n.Attr.Start
		out = bd.Slice(lb, in(0), starts, sizes)
	case graph.OpConcat:
		xs := make([]*webnn.Operand, len(n.Inputs))
		for j := range xs {
			xs[j] = in(j)
		}
		out = bd.Concat(lb, xs, n.Attr.Axis)
	case graph.OpMeanPool:
		xs := shape(0)
		B, T := xs[0], xs[1]
		mask := in(1)
		sum := bd.ReduceSum(lb+"/Σ mask·x", bd.Mul(lb+"/mask·x", in(0), bd.Reshape(lb+"/mask[B,T,1]", mask, []int{B, T, 1})), []int{1}, false)
		cnt := bd.ReduceSum(lb+"/Σ mask", mask, []int{1}, true)
		out = bd.Div(lb, sum, bd.Max(lb+"/max(Σ mask, 1)", cnt, l.f(1)))
	case graph.OpL2Normalize:
		x := in(0)
		ss := bd.ReduceSumSquare(lb+"/Σx²", x, []int{len(n.Shape) - 1}, true)
		out = bd.Div(lb, x, bd.Sqrt(lb+"/norm", bd.Max(lb+"/max(Σx², eps)", ss, l.f(float64(n.Attr.Eps)))))
	case graph.OpRoPE:
		out = l.rope(n, in(0), in(1))
	case graph.OpState:
		return nil // an input of the MLGraph that its StateWrite declares
	case graph.OpStateWrite:
		var err error
		if out, err = l.stateWrite(n); err != nil {
			return err
		}
	case graph.OpArgMax: // argMax leaves NaN unspecified, and wasm/webnn does not bind it: pick on the host
		return fmt.Errorf("op %s is not supported on WebNN (pick on the host from the values)", n.Op)
	default:
		return fmt.Errorf("op %s has no WebNN lowering", n.Op)
	}
	l.vals[i] = out
	return nil
}

// swapLast is the permutation exchanging the last two of rank axes.
func swapLast(rank int) []int {
	p := make([]int, rank)
	for i := range p {
		p[i] = i
	}
	p[rank-1], p[rank-2] = rank-2, rank-1
	return p
}

func (l *lowering) layerNorm(n *graph.Node, x, gamma, beta *webnn.Operand) *webnn.Operand {
	bd, lb := l.bd, n.Label
	r := len(n.Shape)
	last := []int{r - 1}
	if l.accepts("layerNormalization", "input", r) && l.accepts("layerNormalization", "scale", 1) && l.accepts("layerNormalization", "bias", 1) {
		return bd.LayerNormalization(lb, x, gamma, beta, last, n.Attr.Eps)
	}
	mean := bd.ReduceMean(lb+"/mean", x, last, true)
	d := bd.Sub(lb+"/x−mean", x, mean)
	v := bd.ReduceMean(lb+"/var", bd.Mul(lb+"/d²", d, d), last, true)
	sd := bd.Sqrt(lb+"/sd", bd.Add(lb+"/var+eps", v, l.f(float64(n.Attr.Eps))))
	return bd.Add(lb, bd.Mul(lb+"/·gamma", bd.Div(lb+"/d÷sd", d, sd), gamma), beta)
}

// softmax with a mask adds −1e30 to the excluded entries (an exact 0 after exp, without the NaN
// an all-−∞ row gives), takes the plain softmax and multiplies by the 0/1 keep mask: excluded
// entries become exactly 0 and a row with nothing kept (which the plain softmax makes uniform)
// becomes all zeros. Only the mask-shaped operands are computed at the mask's size.
func (l *lowering) softmax(n *graph.Node, x *webnn.Operand) *webnn.Operand {
	bd, lb := l.bd, n.Label
	axis := len(n.Shape) - 1
	if n.Inputs[1] == graph.None {
		return bd.Softmax(lb, x, axis)
	}
	keep := bd.Cast(lb+"/keep", bd.NotEqual(lb+"/mask≠0", l.val(n.Inputs[1]), l.f(0)), webnn.Float32)
	bias := bd.Mul(lb+"/bias", bd.Sub(lb+"/keep−1", keep, l.f(1)), l.f(1e30))
	p := bd.Softmax(lb+"/softmax", bd.Add(lb+"/x+bias", x, bias), axis)
	return bd.Mul(lb, p, keep)
}

// rope builds cos and sin of pos·base^(−2i/Dh) in the graph from the int32 positions, so one
// compiled graph serves every position, and rotates the pairs: (x0, x1) → (x0·c − x1·s,
// x0·s + x1·c). Halves (NeoX) are two slices of the last axis; interleaved pairs (GGUF) are the
// last axis of x viewed as [..., Dh/2, 2].
func (l *lowering) rope(n *graph.Node, x, pos *webnn.Operand) *webnn.Operand {
	bd, lb := l.bd, n.Label
	B, T, H, Dh := n.Shape[0], n.Shape[1], n.Shape[2], n.Shape[3]
	half := Dh / 2
	p := bd.Reshape(lb+"/pos[T,1]", bd.Cast(lb+"/pos-f32", pos, webnn.Float32), []int{T, 1})
	theta := bd.Mul(lb+"/θ", p, l.constant(lb+"/inv-freq", ropeInvFreq(n.Attr.Base, Dh), 1, half))
	cs, sn := bd.Cos(lb+"/cos", theta), bd.Sin(lb+"/sin", theta)
	var x0, x1 *webnn.Operand
	var bshape, part []int
	axis := 3
	if n.Attr.Interleaved {
		x5 := bd.Reshape(lb+"/pairs", x, []int{B, T, H, half, 2})
		part = []int{B, T, H, half, 1}
		x0 = bd.Slice(lb+"/x0", x5, []int{0, 0, 0, 0, 0}, part)
		x1 = bd.Slice(lb+"/x1", x5, []int{0, 0, 0, 0, 1}, part)
		bshape, axis = []int{T, 1, half, 1}, 4
	} else {
		part = []int{B, T, H, half}
		x0 = bd.Slice(lb+"/x0", x, []int{0, 0, 0, 0}, part)
		x1 = bd.Slice(lb+"/x1", x, []int{0, 0, 0, half}, part)
		bshape = []int{T, 1, half}
	}
	cs, sn = bd.Reshape(lb+"/cos-b", cs, bshape), bd.Reshape(lb+"/sin-b", sn, bshape)
	y0 := bd.Sub(lb+"/y0", bd.Mul(lb+"/x0·cos", x0, cs), bd.Mul(lb+"/x1·sin", x1, sn))
	y1 := bd.Add(lb+"/y1", bd.Mul(lb+"/x0·sin", x0, sn), bd.Mul(lb+"/x1·cos", x1, cs))
	y := bd.Concat(lb+"/join", []*webnn.Operand{y0, y1}, axis)
	if n.Attr.Interleaved {
		return bd.Reshape(lb, y, n.Shape)
	}
	return y
}

// gather clamps the ids into the table (WebNN leaves out-of-range indices to the
// implementation), gathers, and zeroes the rows whose id was outside [0, V), as the op defines.
// A quantized table is gathered as codes, scales and zero points and only the gathered rows are
// dequantized, so a dispatch never dequantizes the whole vocabulary.
func (l *lowering) gather(n *graph.Node) *webnn.Operand {
	bd, g, lb := l.bd, l.g, n.Label
	tn := &g.Nodes[n.Inputs[0]]
	ids := l.val(n.Inputs[1])
	V, D := tn.Shape[0], tn.Shape[1]
	cnt := g.Nodes[n.Inputs[1]].Shape.Size()
	flat := bd.Reshape(lb+"/ids[n]", ids, []int{cnt})
	zero := l.scalarOf(webnn.Int32, 0)
	valid := bd.LogicalAnd(lb+"/in-range", bd.GreaterOrEqual(lb+"/id≥0", flat, zero), bd.Lesser(lb+"/id<V", flat, l.scalarOf(webnn.Int32, float64(V))))
	safe := bd.Where(lb+"/clamped", valid, flat, zero)
	var rows *webnn.Operand
	w := l.w[tn.Attr.Name]
	switch {
	case tn.Op != graph.OpWeight:
		rows = bd.Gather(lb+"/rows", l.val(n.Inputs[0]), safe, 0)
	case !w.format.Quantized() || w.layout.Path == PathF32:
		d := webnn.Descriptor{DataType: w.layout.Codes.DataType, Shape: []int{V, D}}
		rows = bd.Gather(lb+"/rows", bd.Constant(tn.Attr.Name, d, w.codes), safe, 0)
		l.embedded[w.name] += int64(d.ByteLength())
		if d.DataType != webnn.Float32 {
			rows = bd.Cast(lb+"/rows-f32", rows, webnn.Float32)
		}
	default:
		lay := &w.layout
		codes, zeros := w.codes, w.zeros
		cd, zd := lay.Codes, lay.Zeros
		if cd.DataType == webnn.Int4 && !l.b.limits.Accepts("gather", "input", webnn.Int4, 3) {
			// gather takes no int4 tables here: widen the codes to int8 once, at Compile.
			cb, zb := make([]byte, cd.ByteLength()), make([]byte, zd.ByteLength())
			jsutil.CopyBytesToGo(cb, codes)
			jsutil.CopyBytesToGo(zb, zeros)
			codes, zeros = jsutil.BytesToJS(widenInt4(cb, cd.Elements())), jsutil.BytesToJS(widenInt4(zb, zd.Elements()))
			cd = webnn.Descriptor{DataType: webnn.Int8, Shape: cd.Shape}
			zd = webnn.Descriptor{DataType: webnn.Int8, Shape: zd.Shape}
			l.note("gather %q: int4 table %q widened to int8 in the graph (gather takes no int4)", n.Label, tn.Attr.Name)
		}
		l.embedded[w.name] += int64(cd.ByteLength() + lay.Scales.ByteLength() + zd.ByteLength())
		q := bd.Gather(lb+"/codes", bd.Constant(tn.Attr.Name+"-codes", cd, codes), safe, 0)
		s := bd.Gather(lb+"/scales", bd.Constant(tn.Attr.Name+"-scales", lay.Scales, w.scales), safe, 0)
		z := bd.Gather(lb+"/zeros", bd.Constant(tn.Attr.Name+"-zeros", zd, zeros), safe, 0)
		rows = bd.Reshape(lb+"/rows-padded", bd.DequantizeLinear(lb+"/dequant", q, s, z), []int{cnt, lay.KPad()})
		if lay.KPad() > D {
			rows = bd.Slice(lb+"/rows", rows, []int{0, 0}, []int{cnt, D})
		}
	}
	out := bd.Where(lb+"/zero-out-of-range", bd.Reshape(lb+"/in-range[n,1]", valid, []int{cnt, 1}), rows, l.f(0))
	return bd.Reshape(lb, out, n.Shape)
}

// linearOp is x·wᵀ + bias on x viewed as [M, K]: gemm(bTranspose) with the bias as c, in QDQ
// form when calibrated (see qdq).
func (l *lowering) linearOp(n *graph.Node) *webnn.Operand {
	bd, g, lb := l.bd, l.g, n.Label
	xs := g.Nodes[n.Inputs[0]].Shape
	wn := &g.Nodes[n.Inputs[1]]
	w := l.w[wn.Attr.Name]
	K := xs[len(xs)-1]
	M := xs.Size() / K
	x := l.val(n.Inputs[0])
	if len(xs) != 2 {
		x = bd.Reshape(lb+"/x[M,K]", x, []int{M, K})
	}
	if y, ok := l.qdqLinear(n, w, x, M, K); ok {
		return l.unflatten(n, y)
	}
	x = l.padK(lb, x, M, K, w.layout.KPad())
	wt := l.linear[w.name]
	if wt == nil {
		wt = w.weightOperand(bd, w.name)
		l.linear[w.name] = wt
		l.embedded[w.name] += int64(w.bytes)
	}
	o := webnn.GemmOptions{BTranspose: true}
	if n.Inputs[2] != graph.None {
		o.C = l.val(n.Inputs[2])
	}
	return l.unflatten(n, bd.Gemm(lb, x, wt, o))
}

// padK zero-pads x's columns to the graph-side row length of the weight; the padded weight
// columns then add exactly zero.
func (l *lowering) padK(lb string, x *webnn.Operand, M, K, kp int) *webnn.Operand {
	if kp == K {
		return x
	}
	if l.b.pad {
		return l.bd.Pad(lb+"/x-pad", x, []int{0, 0}, []int{0, kp - K})
	}
	return l.bd.Concat(lb+"/x-pad", []*webnn.Operand{x, l.constant(lb+"/zeros", make([]float32, M*(kp-K)), M, kp-K)}, 1)
}

func (l *lowering) unflatten(n *graph.Node, y *webnn.Operand) *webnn.Operand {
	if len(n.Shape) == 2 {
		return y
	}
	return l.bd.Reshape(n.Label+"/y", y, n.Shape)
}

// qdqWeight is a Linear weight as TFLite's fused int8 FULLY_CONNECTED wants it: codes [N, KPad],
// one float32 scale per row [N, 1], int8 zero points 0 [N, 1]; sw keeps the scales in Go for the
// bias codes.
type qdqWeight struct {
	codes, scales, zeros *webnn.Operand
	sw                   []float32
	kpad                 int
}

// qdqLinear lowers n in the fused QDQ form when the options and the weight allow it, and says
// whether it did.
func (l *lowering) qdqLinear(n *graph.Node, w *Weight, x *webnn.Operand, M, K int) (*webnn.Operand, bool) {
	cal := l.opt.Calibration
	if cal == nil || !w.format.Quantized() || w.format.Bits > 8 {
		return nil, false
	}
	if w.format.Bits < 8 && l.opt.Int4 == Int4Dequantize {
		l.note("linear %q: %d-bit weight %q kept on dequantizeLinear (TFLite fuses int8 weights only; CompileOptions.Int4 can widen it)", n.Label, w.format.Bits, w.name)
		return nil, false
	}
	r, ok := cal.Linear[n.Label]
	if !ok {
		l.note("linear %q: not in the calibration, runs in float32", n.Label)
		return nil, false
	}
	sx, zx, err1 := r.In.Int8()
	sy, zy, err2 := r.Out.Int8()
	if err1 != nil || err2 != nil {
		l.note("linear %q: calibration unusable (%v), runs in float32", n.Label, errors.Join(err1, err2))
		return nil, false
	}
	qw := l.qdqWeight(n, w)
	bd, lb := l.bd, n.Label
	x = l.padK(lb, x, M, K, qw.kpad)
	// The activation quantizes to int8 whatever the weight's type: quantizeLinear makes no int4.
	xsc := l.constant(lb+"/x-scale", []float32{sx}, 1, 1)
	xzp := bd.ConstantBytes(lb+"/x-zero", webnn.Descriptor{DataType: webnn.Int8, Shape: []int{1, 1}}, []byte{byte(zx)})
	xd := bd.DequantizeLinear(lb+"/x-dq", bd.QuantizeLinear(lb+"/x-q", x, xsc, xzp), xsc, xzp)
	wd := bd.DequantizeLinear(lb+"/w-dq", qw.codes, qw.scales, qw.zeros)
	o := webnn.GemmOptions{BTranspose: true}
	var after *webnn.Operand
	if b := n.Inputs[2]; b != graph.None {
		if vals, ok := l.constValues(b); ok {
			q, s := quantizeBias(vals, sx, qw.sw)
			N := len(vals)
			qb := make([]byte, 4*N)
			for i, v := range q {
				binary.LittleEndian.PutUint32(qb[4*i:], uint32(v))
			}
			o.C = bd.DequantizeLinear(lb+"/bias-dq",
				bd.ConstantBytes(lb+"/bias-i32", webnn.Descriptor{DataType: webnn.Int32, Shape: []int{N}}, qb),
				l.constant(lb+"/bias-scale", s, N),
				bd.ConstantBytes(lb+"/bias-zero", webnn.Descriptor{DataType: webnn.Int32, Shape: []int{N}}, make([]byte, 4*N)))
		} else {
			// A bias computed in the graph cannot be an int32 constant; it is added after the
			// output is dequantized, so the calibrated output range (bias included) is a bound.
			after = l.val(b)
			l.note("linear %q: bias is not a constant, added in float32 after the int8 product", n.Label)
		}
	}
	y := bd.Gemm(lb+"/int8-gemm", xd, wd, o)
	ysc := l.constant(lb+"/y-scale", []float32{sy}, 1, 1)
	yzp := bd.ConstantBytes(lb+"/y-zero", webnn.Descriptor{DataType: webnn.Int8, Shape: []int{1, 1}}, []byte{byte(zy)})
	y = bd.DequantizeLinear(lb, bd.QuantizeLinear(lb+"/y-q", y, ysc, yzp), ysc, yzp)
	if after != nil {
		y = bd.Add(lb+"/+bias", y, after)
	}
	return y, true
}

// constValues is a bias's values if it is a Weight or Const node.
func (l *lowering) constValues(v graph.Value) ([]float32, bool) {
	n := &l.g.Nodes[v]
	switch n.Op {
	case graph.OpConst:
		return n.Attr.Data, true
	case graph.OpWeight:
		w := l.w[n.Attr.Name]
		b := make([]byte, w.layout.Codes.ByteLength())
		jsutil.CopyBytesToGo(b, w.codes)
		return floatBytes(b, w.layout.Codes.DataType == webnn.Float16), true
	}
	return nil, false
}

// qdqWeight lays w out per-channel for the fused form, once per compile: the weight is
// dequantized exactly as the exact graph would and quantized per-channel symmetric
// (perChannelSym). A weight stored in that form keeps its codes; any other format gets one more
// rounding, noted. It works through the rows in chunks read out of the JS-held constants and
// writes each chunk's codes straight into the JS array the constant is made of, so a large
// weight (a 128256-row vocabulary head) never exists whole in Go memory, whose linear memory
// never shrinks: the Go-side peak is one chunk.
func (l *lowering) qdqWeight(n *graph.Node, w *Weight) *qdqWeight {
	if q := l.qdq[w.name]; q != nil {
		return q
	}
	bits := 8
	if w.format.Bits < 8 && l.opt.Int4 == Int4QDQ {
		bits = 4
	}
	lay := &w.layout
	N, K := lay.N, lay.K
	kp := K
	if bits == 4 {
		kp = roundUp(K, 2) // whole bytes per row
	}
	rowBytes := kp * bits / 8
	packed := uint8Array.New(N * rowBytes)
	sw := make([]float32, N)
	exact := true
	row, codes := make([]float32, kp), make([]int8, kp)
	const chunk = 1024
	out := make([]byte, chunk*rowBytes)
	for r0 := 0; r0 < N; r0 += chunk {
		cnt := min(chunk, N-r0)
		cb, sb, zb, cs, ss, zs := w.readRows(r0, cnt)
		for r := r0; r < r0+cnt; r++ {
			lay.rowInto(row[:K], r, cb, cs.Lo, sb, ss.Lo, zb, zs.Lo)
			s, ex := symRow(row, bits, codes)
			sw[r], exact = s, exact && ex
			packCodes(out[(r-r0)*rowBytes:(r-r0+1)*rowBytes], codes, bits)
		}
		jsutil.CopyBytesToJS(packed.Call("subarray", r0*rowBytes, (r0+cnt)*rowBytes), out[:cnt*rowBytes])
	}
	if !exact {
		l.note("linear %q: weight %q (%v) requantized to %d-bit per-channel symmetric for the fused form", n.Label, w.name, w.format, bits)
	}
	dt := signedType(bits)
	sb := make([]byte, 4*N)
	for i, v := range sw {
		binary.LittleEndian.PutUint32(sb[4*i:], math.Float32bits(v))
	}
	shape := []int{N, 1}
	zd := webnn.Descriptor{DataType: dt, Shape: shape}
	q := &qdqWeight{sw: sw, kpad: kp,
		codes:  l.bd.Constant(w.name+"-codes", webnn.Descriptor{DataType: dt, Shape: []int{N, kp}}, packed),
		scales: l.bd.ConstantBytes(w.name+"-scales", webnn.Descriptor{DataType: webnn.Float32, Shape: shape}, sb),
		zeros:  l.bd.ConstantBytes(w.name+"-zeros", zd, make([]byte, zd.ByteLength())),
	}
	l.qdq[w.name] = q
	l.embedded[w.name] += int64(N*rowBytes + len(sb) + zd.ByteLength())
	return q
}

func signedType(bits int) webnn.DataType {
	if bits == 4 {
		return webnn.Int4
	}
	return webnn.Int8
}
