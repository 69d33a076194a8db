//go:build js && wasm

package gpu

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestGraphArgMax checks ArgMax against the cpu exactly, over rows longer and shorter than a
// workgroup (software adapters' and hardware's): random rows, ties split across threads, NaN
// (first and later), ±∞, −0 beside +0.
func TestGraphArgMax(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, d := range []int{1, 7, 300, 1000} {
		var rows [][]float32
		row := func(f func(r []float32)) {
			r := make([]float32, d)
			for i := range r {
				r[i] = float32(rng.NormFloat64())
			}
			f(r)
			rows = append(rows, r)
		}
		row(func(r []float32) {})
		row(func(r []float32) { r[d-1], r[d/2] = 9, 9 }) // tie: the lower index
		row(func(r []float32) { r[0] = nan })            // NaN first: index 0
		row(func(r []float32) { r[d/3], r[d-1] = nan, 50 })
		row(func(r []float32) { clear(r); r[d-1] = float32(math.Copysign(0, -1)) }) // −0 ties +0
		row(func(r []float32) { r[d/2], r[d-1] = inf, inf })
		row(func(r []float32) {
			for i := range r {
				r[i] = -inf
			}
			r[d-1] = nan
		})
		for range 5 {
			row(func(r []float32) {
				// Many tied maxima spread over the row: every thread of the reduction holds one.
				for i := range r {
					r[i] = float32(rng.IntN(3))
				}
			})
		}
		var x []float32
		for _, r := range rows {
			x = append(x, r...)
		}
		g := graph.New("argmax")
		if err := g.Output(g.ArgMax("a", g.Input("x", graph.Float32, len(rows), d))); err != nil {
			t.Fatal(err)
		}
		in := []graph.Tensor{graph.F32Tensor(x, len(rows), d)}
		want := runOnce(t, cpu.New(), g, in)[0].I32
		// The workgroup both kinds of adapter get (rowWorkgroup), whichever this one is.
		sw := b.caps.Software
		for _, software := range []bool{true, false} {
			b.caps.Software = software
			got := runOnce(t, b, g, in)[0].I32
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("d %d row %d, workgroup %d: %d, want %d", d, i, rowWorkgroup(d, software), got[i], want[i])
				}
			}
		}
		b.caps.Software = sw
	}
}

func runOnce(t *testing.T, c backend.Compiler, g *graph.Graph, in []graph.Tensor) []graph.Tensor {
	t.Helper()
	p, err := c.Compile(g, backend.WeightMap{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	out, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// chainGraph is a toy greedy step: row ids of a table whose row i peaks at next[i], plus a
// host input; outputs ArgMax and the row.
func chainGraph(name string, next []int, scale float32) *graph.Graph {
	V := len(next)
	table := make([]float32, V*V)
	for i, j := range next {
		table[i*V+j] = scale
	}
	g := graph.New(name)
	ids := g.Input("ids", graph.Int32, 1)
	bias := g.Input("bias", graph.Float32, 1, V)
	row := g.Add("row", g.Gather("g", g.Const("table", table, V, V), ids), bias)
	g.Output(g.ArgMax("next", row), row)
	return g
}

// TestQueueFeed chains runs of two programs, three in flight at a time, each one's ArgMax fed
// to the next one's ids on the device, with host inputs written per run: the ids must follow
// the tables (and a run's host bias, where it is large enough to win), as computed on the host.
// The planner may put the ArgMax where the bias was: a feed read from there would see the next
// run's bias, written before that run's commands.
func TestQueueFeed(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{})
	const V, steps, depth = 37, 20, 3
	rng := rand.New(rand.NewPCG(5, 6))
	nextA, nextB := rng.Perm(V), rng.Perm(V)
	var progs [2]backend.Chainer
	for i, g := range []*graph.Graph{chainGraph("a", nextA, 1), chainGraph("b", nextB, 2)} {
		p, err := b.Compile(g, backend.WeightMap{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release()
		progs[i] = p.(backend.Chainer)
	}
	ctx := context.Background()
	// The host's expectation: program i%3 == 2 is b, else a; every fifth run's bias wins.
	want := make([]int32, steps)
	id := int32(4)
	var ins [][]graph.Tensor
	for s := range steps {
		bias := make([]float32, V)
		next := nextA
		if s%3 == 2 {
			next = nextB
		}
		win := int32(next[id])
		if s%5 == 4 {
			win = int32(rng.IntN(V))
			bias[win] = 10
		}
		ins = append(ins, []graph.Tensor{graph.I32Tensor([]int32{4}, 1), graph.F32Tensor(bias, 1, V)})
		want[s], id = win, win
	}
	var queue []backend.Queued
	var got []int32
	var last backend.Queued
	for s := range steps {
		p := progs[0]
		if s%3 == 2 {
			p = progs[1]
		}
		q, err := p.Queue(ctx, ins[s], backend.Feed{From: last, Output: 0, Input: 0})
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		last = q
		if queue = append(queue, q); len(queue) == depth || s == steps-1 {
			for _, q := range queue {
				out, err := q.Wait(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, out[0].I32[0])
				if j := len(got) - 1; out[1].F32[got[j]] < 1 {
					t.Errorf("step %d: row[%d] = %g, want the peak", j, got[j], out[1].F32[got[j]])
				}
			}
			queue = queue[:0]
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("fed ids %v\nwant     %v", got, want)
	}
	// A feed from a run its program has since run again names overwritten outputs.
	again, err := progs[0].Queue(ctx, ins[0], backend.Feed{From: last})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Wait(ctx)
	stale := last
	q, err := progs[1].Queue(ctx, ins[0], backend.Feed{From: stale})
	if err == nil || !strings.Contains(err.Error(), "ran again") {
		t.Errorf("stale feed: %v, want an error saying it ran again", err)
	}
	if q != nil {
		q.Wait(ctx)
	}
	if _, err := last.Wait(ctx); err == nil || !strings.Contains(err.Error(), "waited for already") {
		t.Errorf("a second Wait: %v, want an error", err)
	}
}
