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
// B×T batch of seeded token ids (every position real), one warm-up run (which compiles), then
// the median of runs timed runs, upload and readback included. The target named ref runs
// first and is the reference: each stage elsewhere gets the reference's output of the stage
// before it, so an error shows in the stage that makes it, and its output's relative RMS error
// against the reference's is recorded. A target that cannot compile or run a stage gets the
// error in its probe; the load goes on with the others.
func (e *Encoder) ProbeStages(ctx context.Context, targets []Target, ref string, B, T, runs int) (*plan.Placement, error) {
	c, runs := e.Config, max(runs, 1)
	rng := rand.New(rand.NewPCG(uint64(B), uint64(T)))
	ids := make([]int32, B*T)
	mask := make([]float32, B*T)
	for i := range ids {
		ids[i], mask[i] = int32(rng.IntN(c.Vocab)), 1
	}
	idsT, maskT := graph.I32Tensor(ids, B, T), graph.F32Tensor(mask, B, T)
	order := slices.Clone(targets)
	r := slices.IndexFunc(order, func(t Target) bool { return t.Name == ref })
	if r < 0 {
		return nil, fmt.Errorf("use-lite probe: the reference %q is not among the targets", ref)
	}
	order[0], order[r] = order[r], order[0]
	pl := &plan.Placement{Reference: ref, Probe: fmt.Sprintf("%d×%d tokens, median of %d runs", B, T, runs)}
	n := c.NumStages()
	pl.Stages = make([]plan.Stage, n)
	want := make([]graph.Tensor, n) // the reference's output of each stage
	for _, t := range order {
		for i := range n {
			x := idsT
			if i > 0 {
				x = want[i-1]
			}
			g, err := c.Segment(B, T, i, i+1)
			if err != nil {
				return nil, err
			}
			p, out := timeGraph(ctx, t, g, segmentInputs(i, i+1, idsT, x, maskT), runs)
			if t.Name == ref {
				if p.Error != "" {
					return nil, fmt.Errorf("use-lite probe: the reference %s failed stage %s: %s", ref, c.StageName(i), p.Error)
				}
				want[i] = out
			}
			p.RelErr = relErr(want[i], out, p.Error)
			pl.Stages[i].Name = c.StageName(i)
			pl.Stages[i].Probe = append(pl.Stages[i].Probe, p)
		}
		g, err := c.Build(B, T)
		if err != nil {
			return nil, err
		}
		p, out := timeGraph(ctx, t, g, []graph.Tensor{idsT, maskT}, runs)
		p.RelErr = relErr(want[n-1], out, p.Error)
		pl.Whole = append(pl.Whole, p)
	}
	return pl, ctx.Err()
}

// timeGraph compiles g on t, runs it once, then runs more times, and gives the median time and
// the output of the last run.
func timeGraph(ctx context.Context, t Target, g *graph.Graph, in []graph.Tensor, runs int) (plan.Probe, graph.Tensor) {
	p := plan.Probe{Backend: t.Name}
	prog, err := t.Backend.Compile(g, t.Weights)
	if err != nil {
		p.Error = "compile: " + err.Error()
		return p, graph.Tensor{}
	}
	defer prog.Release()
	var out []graph.Tensor
	ms := make([]float64, 0, runs)
	for r := range runs + 1 {
		t0 := time.Now()
		if out, err = prog.Run(ctx, in); err != nil {
			p.Error = "run: " + err.Error()
			return p, graph.Tensor{}
		}
		if r > 0 { // the first run compiles (pipelines, the MLGraph): not what a pass costs
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		}
	}
	slices.Sort(ms)
	p.MS = ms[len(ms)/2]
	return p, out[0]
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
