package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/plan"
)

// BackendHybrid holds the weights on every backend the browser offers (WebGPU, WebNN) and on
// the cpu, then places each stage of the model (USE-lite: the embedding, each layer, the head)
// on the backend that ran it fastest and correctly in a probe at load (plan.Place). The cpu is
// the guard's reference, and runs a stage only when no other backend ran it correctly; copies
// no stage uses are released once the stages are placed. Until then the weights are held once
// per backend: a plan's memory budget counts one copy.
const BackendHybrid = "hybrid"

// The hybrid probe: a batch of 1×16 tokens, every position real; on each accelerator every
// stage and the whole model run once to compile, then 3 rounds, the median kept; the cpu runs
// each stage once, for the reference. Short: it is load time.
const (
	probeBatch  = 1
	probeTokens = 16
	probeRuns   = 3
)

// hybridFault, set by tests only, corrupts the output of every graph that target compiles and
// fault selects, as a wrong kernel there would: the guard must move that stage.
var hybridFault func(target string, g *graph.Graph) bool

// hybridMembers, set by tests only, replaces the backends a hybrid load holds weights on
// (natively there is only the cpu).
var hybridMembers func() []backend.Backend

// newHybrid holds weights on each accelerator that opens, then on the cpu (the reference).
// Why an accelerator is missing goes into the notes; with none, every stage runs on the cpu.
func newHybrid() (backend.Backend, error) {
	if hybridMembers != nil {
		return backend.NewHybrid(hybridMembers()...), nil
	}
	var members []backend.Backend
	var why []error
	for _, name := range []string{"webgpu", "webnn"} {
		// Exact activations: each stage is placed by matching the cpu's exact numbers.
		b, err := newBackend(name, false)
		if err != nil {
			why = append(why, err)
			continue
		}
		members = append(members, b)
	}
	members = append(members, autoCPU{cpu.New(), errors.Join(why...)})
	return backend.NewHybrid(members...), nil
}

// hybridCaps are the caps a plan is made against: each member's, in preference order.
func hybridCaps(b backend.Backend) []plan.Caps {
	h, ok := b.(*backend.Hybrid)
	if !ok {
		return []plan.Caps{b.Caps()}
	}
	var out []plan.Caps
	for _, m := range h.Members() {
		out = append(out, m.Caps())
	}
	return out
}

// placement is a hybrid load's decision, made once.
type placement struct {
	mu   sync.Mutex
	done bool
	err  error
	pl   *plan.Placement
}

// ready is the encoder, placed across backends first when the load is hybrid (which waits
// for the whole model: every stage is probed on every backend).
func (a *useLite) ready(ctx context.Context, m *Model) (*uselite.Encoder, error) {
	enc, err := a.encoder(ctx, m)
	if err != nil {
		return nil, err
	}
	if h, ok := m.Backend.(*backend.Hybrid); ok {
		if err := a.place(ctx, m, enc, h); err != nil {
			return nil, err
		}
	}
	return enc, nil
}

// place probes every stage of enc on every member of h, places each, hands the encoder its
// targets and releases the weight copies no stage reads. It runs once the whole model is
// resident; a failure that is not the context's is kept, so every later call reports it.
func (a *useLite) place(ctx context.Context, m *Model, enc *uselite.Encoder, h *backend.Hybrid) error {
	p := &a.placement
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return p.err
	}
	if _, err := m.load.Result(ctx); err != nil {
		return err // the load's own error, reported by Wait and Embed as it is
	}
	pl, err := a.placeNow(ctx, m, enc, h)
	if err != nil && ctx.Err() != nil {
		return err // cancelled: a later call may try again
	}
	p.done, p.err, p.pl = true, err, pl
	return err
}

func (a *useLite) placeNow(ctx context.Context, m *Model, enc *uselite.Encoder, h *backend.Hybrid) (*plan.Placement, error) {
	members := h.Members()
	targets := make([]uselite.Target, len(members))
	for i, b := range members {
		c, own, ok := h.Member(i, m.load)
		if !ok {
			return nil, fmt.Errorf("%w: hybrid: %s does not run whole graphs", ErrUnsupported, b.Name())
		}
		if hybridFault != nil {
			c = faulty{c, b.Name()}
		}
		targets[i] = uselite.Target{Name: b.Name(), Backend: c, Weights: own}
	}
	ref := members[len(members)-1].Name()
	pl, err := enc.ProbeStages(ctx, targets, ref, probeBatch, probeTokens, probeRuns)
	if err != nil {
		return nil, fmt.Errorf("hybrid probe: %w", err)
	}
	pl.Bound = guardBound
	stageWeights := make([][]string, len(pl.Stages))
	for i := range pl.Stages {
		g, err := enc.Config.Segment(probeBatch, probeTokens, i, i+1)
		if err != nil {
			return nil, err
		}
		stageWeights[i] = g.Weights()
		if pl.Stages[i].Pinned, err = m.planned.pinned(stageWeights[i]); err != nil {
			return nil, fmt.Errorf("stage %s: %w", pl.Stages[i].Name, err)
		}
	}
	if err := plan.Place(pl); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGuard, err)
	}
	// Hand each stage its target, then keep each weight where a stage reads it.
	byName := map[string]int{}
	for i, b := range members {
		byName[b.Name()] = i
	}
	placed := make([]uselite.Target, len(pl.Stages))
	keep := map[string]map[int]bool{}
	for i, s := range pl.Stages {
		mi := byName[s.Backend]
		placed[i] = targets[mi]
		for _, name := range stageWeights[i] {
			if keep[name] == nil {
				keep[name] = map[int]bool{}
			}
			keep[name][mi] = true
		}
	}
	if err := enc.SetPlacement(placed); err != nil {
		return nil, err
	}
	var errList []error
	for _, t := range m.load.Tensors() {
		w, ok := m.load.Weight(t.Name)
		if hw, isHybrid := w.(*backend.HybridWeight); ok && isHybrid {
			k := keep[t.Name]
			if k == nil { // read by no graph (a constant the builder took as a number)
				k = map[int]bool{len(members) - 1: true}
			}
			errList = append(errList, hw.Keep(k))
		}
	}
	if m.opt.Int8Activations {
		pl.Notes = append(pl.Notes, "int8 activations are not used by a hybrid load (WebNN's would need a calibration per stage, and each stage is placed by matching the cpu's exact numbers)")
	}
	m.planned.placed(pl, stageWeights)
	return pl, errors.Join(errList...)
}

// pinned is the backend an override pinned the stage's tensors to ("" if none).
func (p *planned) pinned(names []string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pin, by := "", ""
	for _, n := range names {
		c, ok := p.plan.Lookup(n)
		if !ok || !c.Pinned || c.Backend == "" {
			continue
		}
		if pin != "" && c.Backend != pin {
			return "", fmt.Errorf("%w: overrides pin %s to %s and %s to %s, one stage runs on one backend", errs.ErrBadArgument, by, pin, n, c.Backend)
		}
		pin, by = c.Backend, n
	}
	return pin, nil
}

// placed records the placement in the plan: each stage's tensors are on its backend.
func (p *planned) placed(pl *plan.Placement, stageWeights [][]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan.Placement = pl
	for i, s := range pl.Stages {
		for _, n := range stageWeights[i] {
			if c, ok := p.plan.Lookup(n); ok {
				c.Backend = s.Backend
				c.Reason += "; hybrid: stage " + s.Name + " runs on " + s.Backend
			}
		}
	}
	p.plan.Backends = pl.Backends()
}

// crossings are the encoder's so far (none before it exists).
func (a *useLite) crossings() uselite.Crossings {
	a.mu.Lock()
	enc := a.enc
	a.mu.Unlock()
	if enc == nil {
		return uselite.Crossings{}
	}
	return enc.Crossings()
}

// placementNotes say where the stages run and which the guard moved.
func (a *useLite) placementNotes() []string {
	p := &a.placement
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done || p.pl == nil {
		return nil
	}
	var notes []string
	var where []string
	for _, s := range p.pl.Stages {
		where = append(where, s.Name+" on "+s.Backend)
		if s.Moved != "" {
			notes = append(notes, fmt.Sprintf("%s (stage %s moved to %s)", s.Moved, s.Name, s.Backend))
		}
	}
	return append([]string{fmt.Sprintf("hybrid: %s; %d crossing(s) per pass (probe: %s)", strings.Join(where, ", "), p.pl.Crossings, p.pl.Probe)}, notes...)
}

// faulty is a test's wrong kernel: graphs hybridFault selects come out doubled.
type faulty struct {
	backend.Compiler
	name string
}

func (f faulty) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	p, err := f.Compiler.Compile(g, ws)
	if err != nil || !hybridFault(f.name, g) {
		return p, err
	}
	return doubled{p}, nil
}

type doubled struct{ backend.Program }

func (d doubled) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	out, err := d.Program.Run(ctx, in)
	for i := range out {
		for j := range out[i].F32 {
			out[i].F32[j] *= 2
		}
	}
	return out, err
}
