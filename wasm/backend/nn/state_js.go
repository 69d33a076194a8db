//go:build js && wasm

package nn

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

// A state is kept as MLTensors across dispatches. WebNN forbids one tensor as both input and
// output of a dispatch, so each part has two copies: a run reads the current one and writes
// the whole updated state into the other, then they swap. The write is where(rows in
// [pos, pos+T), x gathered at row−pos, cache): a graph of fixed shape serves every position,
// with no scatter (which opSupportLimits may lack), at the cost of copying the state once per
// run.
//
// Parts by storage: f32 one float32 tensor; f16 one float16 tensor (cast rounds to nearest
// even); int8 codes int8 [S, ..., D] and scales float32 [S, ..., 1], quantized in the graph as
// the cpu does (scale = max|x|/127, codes rounded half away from zero: x/scale ± ½, then cast,
// which truncates).
type state struct {
	b     *Backend
	spec  graph.StateSpec
	parts []webnn.Descriptor
	mu    sync.Mutex
	t     [2][]*webnn.Tensor
	cur   int
}

var (
	_         backend.StateAllocator = (*Backend)(nil)
	int8Array                        = js.Global().Get("Int8Array")
)

func stateParts(spec graph.StateSpec) []webnn.Descriptor {
	shape := []int(spec.Shape)
	switch spec.Storage {
	case graph.StateF16:
		return []webnn.Descriptor{{DataType: webnn.Float16, Shape: shape}}
	case graph.StateInt8:
		sc := slices.Clone(shape)
		sc[len(sc)-1] = 1
		return []webnn.Descriptor{{DataType: webnn.Int8, Shape: shape}, {DataType: webnn.Float32, Shape: sc}}
	}
	return []webnn.Descriptor{{DataType: webnn.Float32, Shape: shape}}
}

// NewState allocates a state's tensors, zero-filled.
func (b *Backend) NewState(spec graph.StateSpec) (backend.State, error) {
	if len(spec.Shape) < 2 || spec.Shape.Size() <= 0 || spec.Storage > graph.StateInt8 {
		return nil, fmt.Errorf("webnn: state %q: shape %s storage %s", spec.Name, spec.Shape, spec.Storage)
	}
	s := &state{b: b, spec: graph.StateSpec{Name: spec.Name, Shape: slices.Clone(spec.Shape), Storage: spec.Storage}, parts: stateParts(spec)}
	for _, d := range s.parts {
		if !b.limits.Accepts("where", "trueValue", d.DataType, len(d.Shape)) || !b.limits.Accepts("gather", "input", d.DataType, len(d.Shape)) {
			return nil, fmt.Errorf("webnn: state %q: storage %s needs where and gather over %s, which this context does not accept: use f32", spec.Name, spec.Storage, d.DataType)
		}
	}
	for c := range s.t {
		for j, d := range s.parts {
			t, err := b.ctx.CreateTensor(fmt.Sprintf("state %s %d/%d", spec.Name, c, j), d, webnn.TensorUsage{Writable: true})
			if err == nil {
				err = b.ctx.WriteTensor(t, int8Array.New(d.ByteLength()))
			}
			if err != nil {
				s.Release()
				return nil, fmt.Errorf("webnn: state %q: %w", spec.Name, err)
			}
			s.t[c] = append(s.t[c], t)
		}
	}
	return s, nil
}

func (s *state) Spec() graph.StateSpec { return s.spec }

// Bytes counts both copies.
func (s *state) Bytes() int64 {
	var n int64
	for _, d := range s.parts {
		n += 2 * int64(d.ByteLength())
	}
	return n
}

func (s *state) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.t {
		for _, t := range s.t[c] {
			t.Destroy()
		}
		s.t[c] = nil
	}
	return nil
}

// stateIO is one StateWrite of a program: the graph's input and output names of each part,
// and what Run checks on the host before the dispatch.
type stateIO struct {
	st       *state
	ins      []string
	outs     []string
	posInput int // index in g.Inputs, -1 when computed in the graph
	rows     int
	label    string
}

// stateWrite lowers a StateWrite (see state).
func (l *lowering) stateWrite(n *graph.Node) (*webnn.Operand, error) {
	bd, g, lb := l.bd, l.g, n.Label
	sn := &g.Nodes[n.Inputs[0]]
	bs, ok := l.states[sn.Attr.Name]
	if !ok {
		return nil, fmt.Errorf("state %q not bound", sn.Attr.Name)
	}
	st, ok := bs.(*state)
	if !ok || st.b != l.b {
		return nil, fmt.Errorf("state %q was not allocated on this backend", sn.Attr.Name)
	}
	S, T := st.spec.Shape[0], g.Nodes[n.Inputs[1]].Shape[0]
	rank := len(st.spec.Shape)
	io := &stateIO{st: st, posInput: -1, rows: T, label: lb}
	if g.Nodes[n.Inputs[2]].Op == graph.OpInput {
		io.posInput = slices.Index(g.Inputs, n.Inputs[2])
	}
	x, pos := l.val(n.Inputs[1]), l.val(n.Inputs[2])
	ar := make([]byte, 4*S)
	for r := range S {
		binary.LittleEndian.PutUint32(ar[4*r:], uint32(r))
	}
	idx := bd.Sub(lb+"/row−pos", bd.ConstantBytes(lb+"/rows", webnn.Descriptor{DataType: webnn.Int32, Shape: []int{S}}, ar), pos)
	zero := l.scalarOf(webnn.Int32, 0)
	valid := bd.LogicalAnd(lb+"/written", bd.GreaterOrEqual(lb+"/≥pos", idx, zero), bd.Lesser(lb+"/<pos+T", idx, l.scalarOf(webnn.Int32, float64(T))))
	safe := bd.Where(lb+"/src-row", valid, idx, zero)
	mshape := make([]int, rank)
	for i := range mshape {
		mshape[i] = 1
	}
	mshape[0] = S
	mask := bd.Reshape(lb+"/mask", valid, mshape)

	var vals []*webnn.Operand
	switch st.spec.Storage {
	case graph.StateF32:
		vals = []*webnn.Operand{x}
	case graph.StateF16:
		vals = []*webnn.Operand{bd.Cast(lb+"/f16", x, webnn.Float16)}
	case graph.StateInt8:
		absx := bd.Max(lb+"/|x|", x, bd.Sub(lb+"/−x", l.f(0), x))
		sc := bd.Div(lb+"/scale", bd.ReduceMax(lb+"/max|x|", absx, []int{rank - 1}, true), l.f(127))
		safeSc := bd.Where(lb+"/scale≠0", bd.NotEqual(lb+"/nonzero", sc, l.f(0)), sc, l.f(1))
		v := bd.Div(lb+"/x÷scale", x, safeSc)
		half := bd.Where(lb+"/±½", bd.Lesser(lb+"/neg", v, l.f(0)), l.f(-0.5), l.f(0.5))
		q := bd.Cast(lb+"/codes", bd.Add(lb+"/v±½", v, half), webnn.Int8)
		vals = []*webnn.Operand{q, sc}
	}
	var kept []*webnn.Operand
	for j, d := range st.parts {
		name := fmt.Sprintf("state %s/%d", st.spec.Name, j)
		old := bd.Input(name, d)
		upd := bd.Where(lb+fmt.Sprintf("/part%d", j), mask, bd.Gather(lb+fmt.Sprintf("/rows%d", j), vals[j], safe, 0), old)
		io.ins = append(io.ins, name)
		io.outs = append(io.outs, name+" out")
		l.stateOuts[name+" out"] = upd
		starts := make([]int, rank)
		sizes := slices.Clone(d.Shape)
		sizes[0] = n.Attr.End
		kept = append(kept, bd.Slice(lb+fmt.Sprintf("/kept%d", j), upd, starts, sizes))
	}
	l.stateIO = append(l.stateIO, io)
	switch st.spec.Storage {
	case graph.StateF16:
		return bd.Cast(lb, kept[0], webnn.Float32), nil
	case graph.StateInt8:
		return bd.Mul(lb, bd.Cast(lb+"/codes-f32", kept[0], webnn.Float32), kept[1]), nil
	}
	return bd.Identity(lb, kept[0]), nil
}

// stateTensors checks the writes of a run and adds each state's current and next tensors.
func (p *program) stateTensors(in []graph.Tensor, inputs, outputs map[string]*webnn.Tensor) error {
	for _, io := range p.states {
		st := io.st
		if st.t[0] == nil {
			return fmt.Errorf("state %q was released", st.spec.Name)
		}
		if io.posInput >= 0 {
			pos, S := int(in[io.posInput].I32[0]), st.spec.Shape[0]
			if pos < 0 || pos+io.rows > S {
				return fmt.Errorf("%w: %s: rows [%d, %d) written into state %q of %d rows", graph.ErrShape, io.label, pos, pos+io.rows, st.spec.Name, S)
			}
		}
		for j := range st.parts {
			inputs[io.ins[j]] = st.t[st.cur][j]
			outputs[io.outs[j]] = st.t[1-st.cur][j]
		}
	}
	return nil
}

// swapStates makes the tensors a dispatch wrote the current ones.
func (p *program) swapStates() {
	for _, io := range p.states {
		io.st.cur = 1 - io.st.cur
	}
}
