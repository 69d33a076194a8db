package uselite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// SetPlacement runs stage i of Config.Stages on targets[i] from now on (nil: back to one
// backend). Consecutive stages on the same target (same Name) run as one graph (Segment), so
// the activations leave a backend, through host memory, only where the target changes.
func (e *Encoder) SetPlacement(targets []Target) error {
	if targets != nil && len(targets) != e.Config.NumStages() {
		return fmt.Errorf("use-lite: placement of %d stages, the encoder has %d", len(targets), e.Config.NumStages())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.releasePlaced()
	e.placement = slices.Clone(targets)
	return err
}

// Crossings says how often, and with how many bytes, activations crossed between backends.
func (e *Encoder) Crossings() Crossings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.crossings
}

// segments splits the placement into runs of consecutive stages on one target: [lo, hi).
func (e *Encoder) segments() [][2]int {
	var out [][2]int
	for i, t := range e.placement {
		if len(out) > 0 && e.placement[out[len(out)-1][0]].Name == t.Name {
			out[len(out)-1][1] = i + 1
			continue
		}
		out = append(out, [2]int{i, i + 1})
	}
	return out
}

func (e *Encoder) runPlaced(ctx context.Context, b Batch) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	segs := e.segments()
	key := [2]int{b.B, b.T}
	progs := e.placed[key]
	for _, s := range segs[len(progs):] {
		g, err := e.Config.Segment(b.B, b.T, s[0], s[1])
		if err != nil {
			return nil, err
		}
		t := e.placement[s[0]]
		p, err := t.Backend.Compile(g, t.Weights)
		if err != nil {
			return nil, fmt.Errorf("use-lite: compile %s on %s: %w", g.Name, t.Name, err)
		}
		progs = append(progs, p)
		if e.placed == nil {
			e.placed = map[[2]int][]backend.Program{}
		}
		e.placed[key] = progs
	}
	in := e.inputs(b)
	ids, mask := in[0], in[1]
	var x graph.Tensor
	for i, s := range segs {
		if i > 0 {
			e.crossings.Count++
			e.crossings.Bytes += 4 * int64(len(x.F32))
		}
		out, err := progs[i].Run(ctx, segmentInputs(s[0], s[1], ids, x, mask))
		if err != nil {
			return nil, fmt.Errorf("use-lite: run %s…%s on %s: %w", e.Config.StageName(s[0]), e.Config.StageName(s[1]-1), e.placement[s[0]].Name, err)
		}
		x = out[0]
	}
	return x.F32, nil
}

// segmentInputs are Segment(lo, hi)'s inputs in order.
func segmentInputs(lo, hi int, ids, x, mask graph.Tensor) []graph.Tensor {
	in := []graph.Tensor{x}
	if lo == 0 {
		in[0] = ids
	}
	if hi > 1 {
		in = append(in, mask)
	}
	return in
}

func (e *Encoder) releasePlaced() error {
	var errs []error
	for _, ps := range e.placed {
		for _, p := range ps {
			errs = append(errs, p.Release())
		}
	}
	e.placed = nil
	return errors.Join(errs...)
}

// ProbeStages measures every stage, and the whole encoder as one graph, on each target: a
// B×T batch of seeded token ids (every position real). The target named ref is the reference:
// it runs each stage once, in order, and each stage elsewhere gets the reference's output of
// the stage before it, so an error shows in the stage that makes it; its output's relative
// RMS error against the reference's is recorded. The other targets compile every graph and run
// it once (which compiles pipelines, MLGraphs), then run rounds: every graph of every target
// once per round, runs rounds, so the machine's load drifts over all of them alike; each
// probe is the median, upload and readback included. A target that cannot compile or run a
// graph gets the error in its probe; the others go on.
func (e *Encoder) ProbeStages(ctx context.Context, targets []Target, ref string, B, T, runs int) (*plan.Placement, error) {
	c, runs := e.Config, max(runs, 1)
	rng := rand.New(rand.NewPCG(uint64(B), uint64(T)))
	ids := make([]int32, B*T)
	mask := make([]float32, B*T)
	for i := range ids {
		ids[i], mask[i] = int32(rng.IntN(c.Vocab)), 1
	}
	idsT, maskT := graph.I32Tensor(ids, B, T), graph.F32Tensor(mask, B, T)
	r := slices.IndexFunc(targets, func(t Target) bool { return t.Name == ref })
	if r < 0 {
		return nil, fmt.Errorf("use-lite probe: the reference %q is not among the targets", ref)
	}
	n := c.NumStages()
	pl := &plan.Placement{Reference: ref, Probe: fmt.Sprintf("%d×%d tokens, median of %d rounds; %s: one run", B, T, runs, ref)}
	pl.Stages = make([]plan.Stage, n)
	graphs := make([]*graph.Graph, n+1) // the stages, then the whole model
	inputs := make([][]graph.Tensor, n+1)
	want := make([]graph.Tensor, n+1) // the reference's output of each
	var err error
	for i := range n {
		if graphs[i], err = c.Segment(B, T, i, i+1); err != nil {
			return nil, err
		}
		x := idsT
		if i > 0 {
			x = want[i-1]
		}
		inputs[i] = segmentInputs(i, i+1, idsT, x, maskT)
		p := &probed{probe: plan.Probe{Backend: ref}}
		p.compile(targets[r], graphs[i], inputs[i])
		p.run(ctx)
		if p.probe.Error != "" {
			return nil, fmt.Errorf("use-lite probe: the reference %s failed stage %s: %s", ref, c.StageName(i), p.probe.Error)
		}
		p.finish()
		want[i] = p.out
		pl.Stages[i].Name = c.StageName(i)
		pl.Stages[i].Probe = append(pl.Stages[i].Probe, p.probe)
	}
	if graphs[n], err = c.Build(B, T); err != nil {
		return nil, err
	}
	inputs[n], want[n] = []graph.Tensor{idsT, maskT}, want[n-1]
	var all [][]*probed // per target other than ref: one per graph
	for ti, t := range targets {
		if ti == r {
			continue
		}
		ps := make([]*probed, n+1)
		for i, g := range graphs {
			ps[i] = &probed{probe: plan.Probe{Backend: t.Name}}
			ps[i].compile(t, g, inputs[i])
			ps[i].run(ctx) // the first run compiles: not what a pass costs
			ps[i].ms = nil
		}
		all = append(all, ps)
	}
	for range runs {
		for _, ps := range all {
			for _, p := range ps {
				p.run(ctx)
			}
		}
	}
	for _, ps := range all {
		for i, p := range ps {
			p.finish()
			p.probe.RelErr = relErr(want[i], p.out, p.probe.Error)
			if i < n {
				pl.Stages[i].Probe = append(pl.Stages[i].Probe, p.probe)
			} else {
				pl.Whole = append(pl.Whole, p.probe)
			}
		}
	}
	return pl, ctx.Err()
}

// probed is one graph compiled on one target for the probe, and its timed runs.
type probed struct {
	probe plan.Probe
	prog  backend.Program
	in    []graph.Tensor
	ms    []float64
	out   graph.Tensor
}

func (p *probed) compile(t Target, g *graph.Graph, in []graph.Tensor) {
	prog, err := t.Backend.Compile(g, t.Weights)
	if err != nil {
		p.probe.Error = "compile: " + err.Error()
		return
	}
	p.prog, p.in = prog, in
}

// run times one run (nothing once the graph has failed).
func (p *probed) run(ctx context.Context) {
	if p.prog == nil || p.probe.Error != "" {
		return
	}
	t0 := time.Now()
	out, err := p.prog.Run(ctx, p.in)
	if err != nil {
		p.probe.Error = "run: " + err.Error()
		return
	}
	p.ms = append(p.ms, float64(time.Since(t0).Microseconds())/1000)
	p.out = out[0]
}

// finish takes the median and releases the program.
func (p *probed) finish() {
	if p.prog != nil {
		p.prog.Release()
		p.prog = nil
	}
	if len(p.ms) > 0 {
		slices.Sort(p.ms)
		p.probe.MS = p.ms[len(p.ms)/2]
	}
}

// relErr is got's relative RMS error against want; a huge finite number when got is not
// finite (NaN does not fit in JSON, and must not pass a bound).
func relErr(want, got graph.Tensor, failed string) float64 {
	if failed != "" {
		return 0
	}
	e, err := quant.Compare(want.F32, got.F32)
	if err != nil || !(e.RelRMS <= 1e30) {
		return 1e30
	}
	return e.RelRMS
}
