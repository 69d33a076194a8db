//go:build js && wasm

package gpu

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// state is a graph.State in a buffer of its own, outside every program's arena: the programs
// that share it (prefill and decode) bind the same buffer, and it outlives them. Its layout is
// ops_state.wgsl's.
type state struct {
	b        *Backend
	spec     graph.StateSpec
	buf      *webgpu.Buffer
	rowElems int // elements of one state row (one position)
	d        int // int8: elements per scaled row (the last axis)
	wpr      int // int8: words per scaled row
	scaleAt  int // int8: first word of the scales
}

var _ backend.StateAllocator = (*Backend)(nil)

// NewState allocates a zero-filled state at its full size (WebGPU zero-fills new buffers).
// f16 is stored as packed halves, so it needs no shader-f16.
func (b *Backend) NewState(spec graph.StateSpec) (backend.State, error) {
	if len(spec.Shape) < 2 || spec.Shape.Size() <= 0 {
		return nil, fmt.Errorf("gpu: state %q: shape %s: want [S, ...] of rank ≥ 2", spec.Name, spec.Shape)
	}
	n := spec.Shape.Size()
	s := &state{b: b, spec: graph.StateSpec{Name: spec.Name, Shape: slices.Clone(spec.Shape), Storage: spec.Storage}, rowElems: spec.Shape[1:].Size(), d: spec.Shape[len(spec.Shape)-1]}
	var words int
	switch spec.Storage {
	case graph.StateF32:
		words = n
	case graph.StateF16:
		words = (n + 1) / 2
	case graph.StateInt8:
		rows := n / s.d
		s.wpr = (s.d + 3) / 4
		s.scaleAt = rows * s.wpr
		words = s.scaleAt + rows
	default:
		return nil, fmt.Errorf("gpu: state %q: storage %s", spec.Name, spec.Storage)
	}
	if int64(words)*4 > b.maxBind {
		return nil, fmt.Errorf("gpu: state %q %s %s needs %d bytes, more than one binding may hold (%d): use a shorter context", spec.Name, spec.Shape, spec.Storage, 4*words, b.maxBind)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("gpu: backend closed")
	}
	var err error
	if s.buf, err = b.dev.CreateBuffer(fmt.Sprintf("%s state %s", b.label, spec.Name), int64(words)*4, webgpu.BufferStorage|webgpu.BufferCopyDst|webgpu.BufferCopySrc); err != nil {
		return nil, fmt.Errorf("gpu: state %q: %w", spec.Name, err)
	}
	return s, nil
}

func (s *state) Spec() graph.StateSpec { return s.spec }

// Bytes is the buffer's size: the spec's bytes plus int8 rows padded to whole words.
func (s *state) Bytes() int64 {
	if s.buf == nil {
		return 0
	}
	return s.buf.Size()
}

func (s *state) Release() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.buf != nil {
		s.buf.Destroy()
		s.buf = nil
	}
	return nil
}

// stateCheck is what Run checks on the host before it submits a StateWrite: the dispatch
// reads the position on the device and skips rows past the end, so the error must come from
// here, before anything touches the state.
type stateCheck struct {
	st    *state
	input int // index in g.Inputs of the position, -1 when computed inside the graph
	rows  int
	label string
}

// bindStates resolves g's states to this backend's.
func (c *compiler) bindStates(ws backend.Weights) error {
	bound, err := backend.BindStates(c.p.g, ws)
	if err != nil {
		return err
	}
	c.states = map[string]*state{}
	for name, bs := range bound {
		s, ok := bs.(*state)
		if !ok || s.b != c.p.b {
			return fmt.Errorf("state %q was not allocated on this backend", name)
		}
		if s.buf == nil {
			return fmt.Errorf("state %q was released", name)
		}
		c.states[name] = s
	}
	return nil
}

// stateWrite lowers a StateWrite: the write of x's rows at pos, then the read of rows
// [0, keep) into the node's value, unless only products read them and do so in the state's
// buffer (fuse.go's findStatesInPlace). Of a pair (fuse.go's findStateWritePairs) the first
// writes both; the second only reads. Dispatches in one pass run in order, so the read (or
// the product) sees the write.
func (c *compiler) stateWrite(what string, i int, n *graph.Node) error {
	p, g := c.p, c.p.g
	name := g.Nodes[n.Inputs[0]].Attr.Name
	s := c.states[name]
	if s == nil {
		return fmt.Errorf("state %q not bound", name)
	}
	S := s.spec.Shape[0]
	T := g.Nodes[n.Inputs[1]].Shape[0]
	check := stateCheck{st: s, input: -1, rows: T, label: n.Label}
	if pn := g.Nodes[n.Inputs[2]]; pn.Op == graph.OpInput {
		check.input = slices.Index(g.Inputs, n.Inputs[2])
	}
	p.stateChecks = append(p.stateChecks, check)
	storage := map[graph.StateFormat]string{graph.StateF32: "f32", graph.StateF16: "f16", graph.StateInt8: "int8"}[s.spec.Storage]
	whole := s.whole(3)
	written := T * s.rowElems
	words := []uint32{0, uint32(s.rowElems), uint32(s.d), uint32(s.scaleAt), uint32(S), uint32(T), uint32(s.wpr), 0}
	switch s.spec.Storage {
	case graph.StateF32:
		words[0] = uint32(written)
	case graph.StateF16:
		words[0] = uint32(written/2 + 1) // the words an odd start spreads the rows over
	case graph.StateInt8:
		words[0] = uint32(written / s.d)
	}
	k := shaders.OpKey{Family: shaders.OpStateWrite, Variant: storage, WG: elemWG}
	ops := []webgpu.BufferBinding{p.bind(1, n.Inputs[1]), p.bind(2, n.Inputs[2]), whole}
	invocations, label := int(words[0]), what+" write"
	if r, ok := p.plan.rotatedReads[i]; ok {
		// x is a table rotation's input, rotated as it is read (fuse.go's findRotatedWrites).
		m, rn := p.plan.ropes[r], &g.Nodes[r]
		k.Rope, label = true, label+" (rotated)"
		ops[0] = p.bind(1, m.x)
		ops = append(ops, p.bind(6, m.cos), p.bind(7, m.sin))
		words[7] = uint32(rn.Shape[1])
		words = append(words, uint32(rn.Shape[2]))
	}
	if j, ok := c.statePairs[i]; ok {
		// The second StateWrite's rows too (fuse.go's findStateWritePairs): its x at 4, its
		// state at 5, invocations past the first's.
		m := &g.Nodes[j]
		s2 := c.states[g.Nodes[m.Inputs[0]].Attr.Name]
		if s2 == nil {
			return fmt.Errorf("state %q not bound", g.Nodes[m.Inputs[0]].Attr.Name)
		}
		k.Pair, label = true, label+" (and "+m.Label+")"
		ops = append(ops, p.bind(4, m.Inputs[1]), webgpu.BufferBinding{Binding: 5, Buffer: s2.buf, Size: s2.buf.Size()})
		invocations *= 2
	}
	// The q/k/v GEMV writes the rows of a kvWritten StateWrite (kvwrite.go).
	if _, second := c.pairedWith[i]; !second && !p.plan.kvWritten[i] {
		if err := c.dispatch(label, k, words, groupsFor(invocations, elemWG), ops...); err != nil {
			return err
		}
	}
	k.Pair = false
	if p.plan.statesInPlace[i] {
		return nil // the products read the state's buffer (product, stateInPlace)
	}
	read := n.Shape.Size()
	whole.Binding = 1
	k.Family = shaders.OpStateRead
	rw := []uint32{uint32(read), uint32(s.d), uint32(s.scaleAt), uint32(s.wpr)}
	return c.dispatch(what+" read", k, rw, groupsFor(groupsFor(read, stateReadPer), elemWG), whole, p.bind(2, graph.Value(i)))
}

// stateInPlace is the state whose buffer holds v's elements where v is (a view of) the kept
// rows of a StateWrite that products read in place; nil otherwise.
func (c *compiler) stateInPlace(v graph.Value) *state {
	g := c.p.g
	r := c.p.plan.root[v]
	if !c.p.plan.statesInPlace[int(r)] {
		return nil
	}
	return c.states[g.Nodes[g.Nodes[r].Inputs[0]].Attr.Name]
}

// whole is the state's whole buffer at binding: what the kernels that index it bind.
func (s *state) whole(binding int) webgpu.BufferBinding {
	return webgpu.BufferBinding{Binding: binding, Buffer: s.buf, Size: s.buf.Size()}
}

// readInPlace makes k, a product or attention kernel with words its uniform block, read its b
// from the state's buffer as it is (fuse.go's findStatesInPlace; ops_state_load.wgsl): k.State
// names the storage, words[8:11] hold d, the scales' first word and the words a scaled row.
func (s *state) readInPlace(k *shaders.OpKey, words []uint32) {
	k.State = map[graph.StateFormat]string{graph.StateF16: "f16", graph.StateInt8: "int8"}[s.spec.Storage]
	copy(words[8:], []uint32{uint32(s.d), uint32(s.scaleAt), uint32(s.wpr)})
}

// stateReadPer is ops_state_read.wgsl's PER: elements one invocation reads.
const stateReadPer = 4

// checkStates fails a run whose writes would pass a state's last row, or whose state was
// released.
func (p *program) checkStates(in []graph.Tensor) error {
	for _, c := range p.stateChecks {
		if c.st.buf == nil {
			return fmt.Errorf("state %q was released", c.st.spec.Name)
		}
		if c.input < 0 {
			continue
		}
		pos, S := int(in[c.input].I32[0]), c.st.spec.Shape[0]
		if pos < 0 || pos+c.rows > S {
			return fmt.Errorf("%w: %s: rows [%d, %d) written into state %q of %d rows", graph.ErrShape, c.label, pos, pos+c.rows, c.st.spec.Name, S)
		}
	}
	return nil
}
