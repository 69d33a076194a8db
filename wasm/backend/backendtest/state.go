package backendtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// stateStep is one run of a state case: which graph, at which position, with how many rows.
type stateStep struct {
	graph int
	pos   int
}

// stateGraphs builds the two graphs of a state case over one state [S, H, D]: "many" writes T
// rows and "one" writes 1 (a decoder's prefill and decode), each reading back keep rows and
// using them (a q·kᵀ over the kept rows, as attention does), so a backend that keeps a stale
// copy or writes at the wrong offset differs.
func stateGraphs(storage graph.StateFormat, S, H, D, T, keepMany, keepOne int) ([]*graph.Graph, error) {
	var gs []*graph.Graph
	for _, c := range []struct {
		name       string
		rows, keep int
	}{{"many", T, keepMany}, {"one", 1, keepOne}} {
		g := graph.New("state/" + storage.String() + "/" + c.name)
		x := g.Input("x", graph.Float32, c.rows, H, D)
		pos := g.Input("pos", graph.Int32, 1)
		q := g.Input("q", graph.Float32, H, 1, D)
		kept := g.StateWrite("write", g.State("cache", storage, S, H, D), x, pos, c.keep)
		kt := g.Transpose("kt", kept, 1, 0, 2) // [H, keep, D]
		scores := g.MatMul("qk", q, kt, true)  // [H, 1, keep]
		if err := g.Output(kept, g.Scale("scores", scores, 0.5)); err != nil {
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// RunStates runs the state cases (graph.State and StateWrite, each storage format) on b and on
// the cpu: states allocated on each, a sequence of writes through two graphs that share them,
// outputs compared after every step, and a write past the end that must fail. A backend without
// states (no backend.StateAllocator) skips.
func RunStates(t *testing.T, b backend.Backend, opt GraphOptions) {
	alloc, ok := b.(backend.StateAllocator)
	if !ok {
		t.Skipf("backend %s keeps no states (no NewState)", b.Name())
	}
	comp := b.(backend.Compiler)
	tol := opt.Tolerance
	if tol == 0 {
		tol = 2e-4
	}
	rng := rand.New(rand.NewPCG(7, 0x7374617465))
	const S, H, D, T = 13, 3, 10, 4
	for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
		t.Run("state/"+storage.String(), func(t *testing.T) {
			gs, err := stateGraphs(storage, S, H, D, T, 6, 9)
			if err != nil {
				t.Fatal(err)
			}
			steps := []stateStep{{0, 0}, {1, 4}, {1, 5}, {0, 2}, {1, 8}, {1, 3}}
			if err := checkStates(comp, alloc, cpu.New(), gs, steps, rng, tol); err != nil {
				t.Error(err)
			}
		})
	}
}

func checkStates(comp backend.Compiler, alloc backend.StateAllocator, ref *cpu.Backend, gs []*graph.Graph, steps []stateStep, rng *rand.Rand, tol float64) error {
	type side struct {
		progs  []backend.Program
		states backend.StateMap
	}
	build := func(c backend.Compiler, a backend.StateAllocator) (*side, error) {
		s := &side{states: backend.StateMap{}}
		for _, sp := range gs[0].States() {
			st, err := a.NewState(sp)
			if err != nil {
				return nil, err
			}
			s.states[sp.Name] = st
		}
		for _, g := range gs {
			p, err := c.Compile(g, backend.WithStates(backend.WeightMap{}, s.states))
			if err != nil {
				return nil, fmt.Errorf("compile %q: %w", g.Name, err)
			}
			s.progs = append(s.progs, p)
		}
		return s, nil
	}
	release := func(s *side) {
		for _, p := range s.progs {
			p.Release()
		}
		for _, st := range s.states {
			st.Release()
		}
	}
	got, err := build(comp, alloc)
	if err != nil {
		return err
	}
	defer release(got)
	want, err := build(ref, ref)
	if err != nil {
		return err
	}
	defer release(want)
	ctx := context.Background()
	for i, st := range steps {
		g := gs[st.graph]
		xs := g.Node(g.Inputs[0]).Shape
		qs := g.Node(g.Inputs[2]).Shape
		in := []graph.Tensor{
			graph.F32Tensor(randn(rng, xs.Size()), xs...),
			graph.I32Tensor([]int32{int32(st.pos)}, 1),
			graph.F32Tensor(randn(rng, qs.Size()), qs...),
		}
		w, err := want.progs[st.graph].Run(ctx, in)
		if err != nil {
			return fmt.Errorf("step %d (%s at %d) on cpu: %w", i, g.Name, st.pos, err)
		}
		o, err := got.progs[st.graph].Run(ctx, in)
		if err != nil {
			return fmt.Errorf("step %d (%s at %d): %w", i, g.Name, st.pos, err)
		}
		for j := range w {
			if err := CompareTensors(w[j], o[j], tol); err != nil {
				return fmt.Errorf("step %d (%s at %d), output %d: %w", i, g.Name, st.pos, j, err)
			}
		}
	}
	// A write past the last row fails on every backend, before it touches the state.
	g := gs[0]
	xs := g.Node(g.Inputs[0]).Shape
	S := gs[0].States()[0].Shape[0]
	in := []graph.Tensor{graph.F32Tensor(randn(rng, xs.Size()), xs...), graph.I32Tensor([]int32{int32(S - 1)}, 1), graph.F32Tensor(randn(rng, g.Node(g.Inputs[2]).Shape.Size()), g.Node(g.Inputs[2]).Shape...)}
	if _, err := got.progs[0].Run(ctx, in); err == nil {
		return fmt.Errorf("a write of %d rows at %d into %d rows did not fail", xs[0], S-1, S)
	}
	return nil
}
