package backend

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Hybrid holds every weight on several backends at once, so that each piece of a model (a
// layer) can run on whichever of them measured fastest. Which piece runs where is the
// caller's (the engine probes each at load, plan.Place chooses); Hybrid only keeps the copies
// and hands each member its own (Member). Its MatMul and Compile are the first member's.
// Once the pieces are placed, Keep releases the copies no member needs.
type Hybrid struct {
	members []Backend
}

// NewHybrid holds weights on each of members, the preferred first. The last is where the
// reference copy lives when the caller wants one (the cpu backend).
func NewHybrid(members ...Backend) *Hybrid { return &Hybrid{members: members} }

func (h *Hybrid) Name() string { return "hybrid" }

// Members are the backends every weight is uploaded to, in order.
func (h *Hybrid) Members() []Backend { return h.members }

// Caps are the first member's, named "hybrid"; plan.Request takes each member's own (Members).
func (h *Hybrid) Caps() plan.Caps {
	c := h.members[0].Caps()
	c.Backend = h.Name()
	for _, m := range h.members[1:] {
		c.Notes = append(c.Notes, m.Caps().Notes...)
	}
	return c
}

// Upload copies t to every member. A member that cannot hold t keeps no copy (its error is
// kept: compiling a graph that reads t there says why); the upload fails only when none can.
func (h *Hybrid) Upload(t *quant.Tensor) (Weight, error) {
	w := &HybridWeight{name: t.Name, n: t.N, k: t.K, format: t.Format, on: make([]Weight, len(h.members)), why: make([]error, len(h.members))}
	var errs []error
	for i, m := range h.members {
		mw, err := m.Upload(t)
		if err != nil {
			w.why[i] = fmt.Errorf("%s: %w", m.Name(), err)
			errs = append(errs, w.why[i])
			continue
		}
		w.on[i] = mw
	}
	if len(errs) == len(h.members) {
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// MatMul runs on the first member that holds w.
func (h *Hybrid) MatMul(dst, x []float32, w Weight, m int) error {
	hw, ok := w.(*HybridWeight)
	if !ok {
		return fmt.Errorf("hybrid: weight %q was not uploaded through the hybrid backend", w.Name())
	}
	for i, mw := range hw.live() {
		if mw != nil {
			return h.members[i].MatMul(dst, x, mw, m)
		}
	}
	return fmt.Errorf("hybrid: weight %q is held by no backend any more", w.Name())
}

// Close closes every member.
func (h *Hybrid) Close() error {
	var errs []error
	for _, m := range h.members {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Compile compiles g on the first member, over its own copies.
func (h *Hybrid) Compile(g *graph.Graph, ws Weights) (Program, error) {
	c, own, ok := h.Member(0, ws)
	if !ok {
		return nil, fmt.Errorf("hybrid: %s does not run whole graphs", h.members[0].Name())
	}
	return c.Compile(g, own)
}

// Member returns member i as a Compiler over its own copies of the weights ws resolves (ws
// holds HybridWeights: what Upload returned). ok is false when member i runs no whole graphs.
func (h *Hybrid) Member(i int, ws Weights) (c Compiler, own Weights, ok bool) {
	c, ok = h.members[i].(Compiler)
	return c, memberWeights{ws, i, h.members[i].Name()}, ok
}

type memberWeights struct {
	ws   Weights
	i    int
	name string
}

func (m memberWeights) Weight(name string) (Weight, bool) {
	w, ok := m.ws.Weight(name)
	if !ok {
		return nil, false
	}
	hw, ok := w.(*HybridWeight)
	if !ok {
		return w, true // not uploaded through Hybrid (a test's map)
	}
	mw := hw.On(m.i)
	return mw, mw != nil
}

// Missing says why member i holds no copy of a weight the hybrid holds (BindWeights' error).
func (m memberWeights) Missing(name string) error {
	if w, ok := m.ws.Weight(name); ok {
		if hw, ok := w.(*HybridWeight); ok && hw.On(m.i) == nil {
			return fmt.Errorf("not held on %s: %w", m.name, hw.Why(m.i))
		}
	}
	return nil
}

// State passes through, so a graph with states compiles on a member (each member allocates
// its own; nothing in USE-lite has any).
func (m memberWeights) State(name string) (State, bool) {
	if s, ok := m.ws.(States); ok {
		return s.State(name)
	}
	return nil, false
}

// HybridWeight is one tensor held by several backends.
type HybridWeight struct {
	name   string
	n, k   int
	format quant.Format

	mu  sync.Mutex
	on  []Weight // per member; nil where it holds no copy
	why []error  // per member: why it holds none
}

func (w *HybridWeight) Name() string         { return w.name }
func (w *HybridWeight) Shape() (n, k int)    { return w.n, w.k }
func (w *HybridWeight) Format() quant.Format { return w.format }
func (w *HybridWeight) live() []Weight {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Weight(nil), w.on...)
}

// On is member's copy, nil where it holds none (Why says why).
func (w *HybridWeight) On(member int) Weight { w.mu.Lock(); defer w.mu.Unlock(); return w.on[member] }
func (w *HybridWeight) Why(member int) error { w.mu.Lock(); defer w.mu.Unlock(); return w.why[member] }
func (w *HybridWeight) Release() error       { return w.Keep(nil) }

// Bytes are every copy's, padding included: what the device memories hold together.
func (w *HybridWeight) Bytes() int64 {
	var b int64
	for _, mw := range w.live() {
		if mw != nil {
			b += mw.Bytes()
		}
	}
	return b
}

// Keep releases the copies of the members not in keep.
func (w *HybridWeight) Keep(keep map[int]bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for i, mw := range w.on {
		if mw != nil && !keep[i] {
			errs = append(errs, mw.Release())
			w.on[i] = nil
			w.why[i] = errors.New("released: no piece of the model runs there")
		}
	}
	return errors.Join(errs...)
}
