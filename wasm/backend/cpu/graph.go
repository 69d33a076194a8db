package cpu

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Compile binds g's weights. The program interprets the graph node by node: it is the reference
// every other backend's graph execution is tested against, so each op is written as its
// definition in wasm/graph says, in float32 with float64 sums where a reduction needs them.
func (b *Backend) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	bound, err := backend.BindWeights(g, ws)
	if err != nil {
		return nil, err
	}
	p := &program{b: b, g: g, weights: map[string]*quant.Tensor{}, dense: map[string][]float32{}, last: g.LastUse()}
	for name, w := range bound {
		cw, ok := w.(*weight)
		if !ok || cw.t == nil {
			return nil, fmt.Errorf("cpu compile %q: weight %q was not uploaded to this backend or was released", g.Name, name)
		}
		p.weights[name] = cw.t
	}
	states, err := backend.BindStates(g, ws)
	if err != nil {
		return nil, err
	}
	p.states = map[string]*state{}
	for name, st := range states {
		cs, ok := st.(*state)
		if !ok {
			return nil, fmt.Errorf("cpu compile %q: state %q was not allocated by this backend", g.Name, name)
		}
		p.states[name] = cs
	}
	return p, nil
}

var _ backend.Compiler = (*Backend)(nil)

type program struct {
	b       *Backend
	g       *graph.Graph
	weights map[string]*quant.Tensor
	mu      sync.Mutex
	dense   map[string][]float32 // float weights read by elementwise ops, dequantized once
	last    []int
	states  map[string]*state
}

func (p *program) Release() error { p.weights, p.dense = nil, nil; return nil }

// value is one node's result: f32 or i32 elements.
type value struct {
	f []float32
	i []int32
}

func (p *program) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	if p.weights == nil {
		return nil, fmt.Errorf("cpu run %q: program released", p.g.Name)
	}
	if err := p.g.CheckInputs(in); err != nil {
		return nil, err
	}
	vals := make([]value, len(p.g.Nodes))
	next := 0
	for i := range p.g.Nodes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := &p.g.Nodes[i]
		var err error
		if n.Op == graph.OpInput {
			vals[i] = value{f: in[next].F32, i: in[next].I32}
			next++
		} else if vals[i], err = p.eval(n, vals); err != nil {
			return nil, fmt.Errorf("cpu run %q: %s %q: %w", p.g.Name, n.Op, n.Label, err)
		}
		// Drop what no later node reads, so a run holds about one layer of activations.
		for _, v := range n.Inputs {
			if v != graph.None && p.last[v] == i && p.g.Nodes[v].Op != graph.OpWeight {
				vals[v] = value{}
			}
		}
	}
	out := make([]graph.Tensor, len(p.g.Outputs))
	for j, v := range p.g.Outputs {
		n := &p.g.Nodes[v]
		out[j] = graph.Tensor{Shape: n.Shape, F32: vals[v].f, I32: vals[v].i}
	}
	return out, nil
}

func (p *program) denseWeight(name string) []float32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.dense[name]; ok {
		return d
	}
	d := quant.Dequantize(p.weights[name])
	p.dense[name] = d
	return d
}

func (p *program) eval(n *graph.Node, vals []value) (value, error) {
	g := p.g
	arg := func(i int) []float32 { return vals[n.Inputs[i]].f }
	shape := func(i int) graph.Shape { return g.Nodes[n.Inputs[i]].Shape }
	switch n.Op {
	case graph.OpState:
		return value{}, nil // read only by its StateWrite, which goes to the buffer
	case graph.OpStateWrite:
		f, err := stateWrite(p.states[g.Nodes[n.Inputs[0]].Attr.Name], n, arg(1), vals[n.Inputs[2]].i)
		return value{f: f}, err
	case graph.OpConst:
		return value{f: n.Attr.Data}, nil
	case graph.OpWeight:
		t := p.weights[n.Attr.Name]
		if t.Format.Quantized() {
			return value{}, nil // read only by Gather and Linear, which use the packed rows
		}
		return value{f: p.denseWeight(n.Attr.Name)}, nil
	case graph.OpReshape:
		return vals[n.Inputs[0]], nil // same row-major elements; values are never written in place
	case graph.OpSlice:
		return sliceValue(vals[n.Inputs[0]], shape(0), n.Attr.Axis, n.Attr.Start, n.Attr.End), nil
	case graph.OpConcat:
		return concatValues(g, n, vals), nil
	case graph.OpArgMax:
		x, N := arg(0), shape(0)[len(shape(0))-1]
		out := make([]int32, len(x)/N)
		for r := range out {
			out[r] = int32(graph.FirstMax(x[r*N : (r+1)*N]))
		}
		return value{i: out}, nil
	}
	// The ops below write a fresh float32 result; the ones above return a value they made or
	// share, so they need no buffer.
	out := make([]float32, n.Shape.Size())
	switch n.Op {
	case graph.OpGather:
		p.gather(out, n, vals)
	case graph.OpLinear:
		if err := p.linear(out, n, vals); err != nil {
			return value{}, err
		}
	case graph.OpMatMul:
		matmul(out, arg(0), arg(1), shape(0), shape(1), n.Attr.TransB)
	case graph.OpAdd, graph.OpSub, graph.OpMul, graph.OpDiv:
		broadcast(n.Op, out, n.Shape, arg(0), shape(0), arg(1), shape(1))
	case graph.OpScale:
		c := n.Attr.Scale
		for i, v := range arg(0) {
			out[i] = v * c
		}
	case graph.OpReLU, graph.OpGELU, graph.OpSiLU, graph.OpTanh:
		f := unaryFunc(n.Op)
		for i, v := range arg(0) {
			out[i] = f(v)
		}
	case graph.OpLayerNorm:
		layerNorm(out, arg(0), arg(1), arg(2), shape(0)[len(shape(0))-1], n.Attr.Eps)
	case graph.OpRMSNorm:
		rmsNorm(out, arg(0), arg(1), shape(0)[len(shape(0))-1], n.Attr.Eps)
	case graph.OpSoftmax:
		var mask []float32
		var ms graph.Shape
		if n.Inputs[1] != graph.None {
			mask, ms = arg(1), shape(1)
		}
		softmax(out, arg(0), n.Shape, mask, ms)
	case graph.OpTranspose:
		if xi := vals[n.Inputs[0]].i; xi != nil {
			iout := make([]int32, len(out))
			permute(len(xi), shape(0), n.Attr.Perm, func(dst, src int) { iout[dst] = xi[src] })
			return value{i: iout}, nil
		}
		x := arg(0)
		permute(len(x), shape(0), n.Attr.Perm, func(dst, src int) { out[dst] = x[src] })
	case graph.OpMeanPool:
		meanPool(out, arg(0), arg(1), shape(0))
	case graph.OpL2Normalize:
		l2Normalize(out, arg(0), shape(0)[len(shape(0))-1], n.Attr.Eps)
	case graph.OpRoPE:
		rope(out, arg(0), vals[n.Inputs[1]].i, shape(0), n.Attr.Base, n.Attr.Interleaved)
	default:
		return value{}, fmt.Errorf("op %s is not implemented on the cpu", n.Op)
	}
	return value{f: out}, nil
}

// gather writes the rows of n's table that its ids name into out; an id outside the table is
// a row of zeros, as the op defines.
func (p *program) gather(out []float32, n *graph.Node, vals []value) {
	ids := vals[n.Inputs[1]].i
	tn := &p.g.Nodes[n.Inputs[0]]
	V, D := tn.Shape[0], tn.Shape[1]
	for r, id := range ids {
		row := out[r*D : (r+1)*D]
		if id < 0 || int(id) >= V {
			continue
		}
		if tn.Op == graph.OpWeight {
			// The resident tensor may be [V, D] or any [n, k] with the same elements.
			t := p.weights[tn.Attr.Name]
			if t.K == D {
				t.DequantizeRow(int(id), row)
				continue
			}
			copy(row, p.denseWeight(tn.Attr.Name)[int(id)*D:])
			continue
		}
		copy(row, vals[n.Inputs[0]].f[int(id)*D:(int(id)+1)*D])
	}
}

// linear writes x·Wᵀ (+ bias) into out, the matmul on the weight's packed rows.
func (p *program) linear(out []float32, n *graph.Node, vals []value) error {
	w := p.weights[p.g.Nodes[n.Inputs[1]].Attr.Name]
	x := vals[n.Inputs[0]].f
	m := len(x) / w.K
	if err := p.b.MatMul(out, x, &weight{t: w}, m); err != nil {
		return err
	}
	if n.Inputs[2] == graph.None {
		return nil
	}
	bias := vals[n.Inputs[2]].f
	for r := 0; r < m; r++ {
		row := out[r*w.N : (r+1)*w.N]
		for j := range row {
			row[j] += bias[j]
		}
	}
	return nil
}

func unaryFunc(op graph.Op) func(float32) float32 {
	switch op {
	case graph.OpReLU:
		return func(v float32) float32 { return max(v, 0) }
	case graph.OpGELU:
		return func(v float32) float32 { return float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2))) }
	case graph.OpSiLU:
		return func(v float32) float32 { return float32(float64(v) / (1 + math.Exp(-float64(v)))) }
	default:
		return func(v float32) float32 { return float32(math.Tanh(float64(v))) }
	}
}

func broadcast(op graph.Op, out []float32, os graph.Shape, a []float32, as graph.Shape, b []float32, bs graph.Shape) {
	sa, sb := graph.BroadcastStrides(as, os), graph.BroadcastStrides(bs, os)
	idx := make([]int, len(os))
	for i := range out {
		ia, ib := 0, 0
		for d := range idx {
			ia += idx[d] * sa[d]
			ib += idx[d] * sb[d]
		}
		x, y := a[ia], b[ib]
		switch op {
		case graph.OpAdd:
			out[i] = x + y
		case graph.OpSub:
			out[i] = x - y
		case graph.OpMul:
			out[i] = x * y
		default:
			out[i] = x / y
		}
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < os[d] {
				break
			}
			idx[d] = 0
		}
	}
}

func matmul(out, a, b []float32, as, bs graph.Shape, transB bool) {
	r := len(as)
	M, K := as[r-2], as[r-1]
	N := bs[r-1]
	if transB {
		N = bs[r-2]
	}
	batch := len(a) / (M * K)
	for bt := 0; bt < batch; bt++ {
		A := a[bt*M*K : (bt+1)*M*K]
		B := b[bt*K*N : (bt+1)*K*N]
		O := out[bt*M*N : (bt+1)*M*N]
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s float32
				if transB {
					s = dot(A[i*K:(i+1)*K], B[j*K:(j+1)*K])
				} else {
					for k := 0; k < K; k++ {
						s += A[i*K+k] * B[k*N+j]
					}
				}
				O[i*N+j] = s
			}
		}
	}
}

func layerNorm(out, x, gamma, beta []float32, D int, eps float32) {
	for r := 0; r < len(x)/D; r++ {
		row := x[r*D : (r+1)*D]
		var mean, v float64
		for _, e := range row {
			mean += float64(e)
		}
		mean /= float64(D)
		for _, e := range row {
			d := float64(e) - mean
			v += d * d
		}
		inv := 1 / math.Sqrt(v/float64(D)+float64(eps))
		o := out[r*D : (r+1)*D]
		for i, e := range row {
			o[i] = float32((float64(e)-mean)*inv)*gamma[i] + beta[i]
		}
	}
}

func rmsNorm(out, x, gamma []float32, D int, eps float32) {
	for r := 0; r < len(x)/D; r++ {
		row := x[r*D : (r+1)*D]
		var ss float64
		for _, e := range row {
			ss += float64(e) * float64(e)
		}
		inv := 1 / math.Sqrt(ss/float64(D)+float64(eps))
		o := out[r*D : (r+1)*D]
		for i, e := range row {
			o[i] = float32(float64(e)*inv) * gamma[i]
		}
	}
}

func softmax(out, x []float32, xs graph.Shape, mask []float32, ms graph.Shape) {
	D := xs[len(xs)-1]
	var mst []int
	if mask != nil {
		mst = graph.BroadcastStrides(ms, xs)
	}
	idx := make([]int, len(xs))
	for r := 0; r < len(x)/D; r++ {
		// idx holds the row's coordinates (last one 0); the mask offset of element c adds c·mst[last].
		base := 0
		for d := range mst {
			base += idx[d] * mst[d]
		}
		keep := func(c int) bool { return mask == nil || mask[base+c*mst[len(mst)-1]] != 0 }
		row, o := x[r*D:(r+1)*D], out[r*D:(r+1)*D]
		mx := float32(math.Inf(-1))
		for c, e := range row {
			if keep(c) && e > mx {
				mx = e
			}
		}
		var sum float64
		for c, e := range row {
			if keep(c) {
				v := math.Exp(float64(e - mx))
				o[c] = float32(v)
				sum += v
			} else {
				o[c] = 0
			}
		}
		if sum > 0 {
			inv := 1 / sum
			for c := range o {
				o[c] = float32(float64(o[c]) * inv)
			}
		}
		for d := len(idx) - 2; d >= 0; d-- {
			if idx[d]++; idx[d] < xs[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// permute calls move(dst, src) for every element of a transpose of xs by perm.
func permute(n int, xs graph.Shape, perm []int, move func(dst, src int)) {
	ist := xs.Strides()
	os := make(graph.Shape, len(perm))
	for i, p := range perm {
		os[i] = xs[p]
	}
	idx := make([]int, len(os))
	for dst := 0; dst < n; dst++ {
		src := 0
		for d, p := range perm {
			src += idx[d] * ist[p]
		}
		move(dst, src)
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < os[d] {
				break
			}
			idx[d] = 0
		}
	}
}

func sliceValue(v value, xs graph.Shape, axis, start, end int) value {
	outer := xs[:axis].Size()
	inner := xs[axis+1:].Size()
	span := (end - start) * inner
	if v.i != nil {
		out := make([]int32, outer*span)
		for o := 0; o < outer; o++ {
			copy(out[o*span:], v.i[(o*xs[axis]+start)*inner:][:span])
		}
		return value{i: out}
	}
	out := make([]float32, outer*span)
	for o := 0; o < outer; o++ {
		copy(out[o*span:], v.f[(o*xs[axis]+start)*inner:][:span])
	}
	return value{f: out}
}

func concatValues(g *graph.Graph, n *graph.Node, vals []value) value {
	ax := n.Attr.Axis
	outer := n.Shape[:ax].Size()
	inner := n.Shape[ax+1:].Size()
	row := n.Shape[ax] * inner
	if n.DType == graph.Int32 {
		out := make([]int32, n.Shape.Size())
		off := 0
		for _, in := range n.Inputs {
			w := g.Nodes[in].Shape[ax] * inner
			for o := 0; o < outer; o++ {
				copy(out[o*row+off:], vals[in].i[o*w:(o+1)*w])
			}
			off += w
		}
		return value{i: out}
	}
	out := make([]float32, n.Shape.Size())
	off := 0
	for _, in := range n.Inputs {
		w := g.Nodes[in].Shape[ax] * inner
		for o := 0; o < outer; o++ {
			copy(out[o*row+off:], vals[in].f[o*w:(o+1)*w])
		}
		off += w
	}
	return value{f: out}
}

func meanPool(out, x, mask []float32, xs graph.Shape) {
	B, T, D := xs[0], xs[1], xs[2]
	acc := make([]float64, D)
	for b := 0; b < B; b++ {
		clear(acc)
		var cnt float64
		for t := 0; t < T; t++ {
			m := float64(mask[b*T+t])
			if m == 0 {
				continue
			}
			cnt += m
			for d, e := range x[(b*T+t)*D : (b*T+t+1)*D] {
				acc[d] += m * float64(e)
			}
		}
		div := max(cnt, 1)
		for d := range acc {
			out[b*D+d] = float32(acc[d] / div)
		}
	}
}

func l2Normalize(out, x []float32, D int, eps float32) {
	for r := 0; r < len(x)/D; r++ {
		row := x[r*D : (r+1)*D]
		var ss float64
		for _, e := range row {
			ss += float64(e) * float64(e)
		}
		inv := 1 / math.Sqrt(max(ss, float64(eps)))
		for i, e := range row {
			out[r*D+i] = float32(float64(e) * inv)
		}
	}
}

func rope(out, x []float32, pos []int32, xs graph.Shape, base float32, interleaved bool) {
	B, T, H, Dh := xs[0], xs[1], xs[2], xs[3]
	half := Dh / 2
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			p := float64(pos[t])
			for h := 0; h < H; h++ {
				off := ((b*T+t)*H + h) * Dh
				for i := 0; i < half; i++ {
					theta := p * math.Pow(float64(base), -2*float64(i)/float64(Dh))
					c, s := math.Cos(theta), math.Sin(theta)
					i0, i1 := off+i, off+i+half
					if interleaved {
						i0, i1 = off+2*i, off+2*i+1
					}
					x0, x1 := float64(x[i0]), float64(x[i1])
					out[i0] = float32(x0*c - x1*s)
					out[i1] = float32(x0*s + x1*c)
				}
			}
		}
	}
}
