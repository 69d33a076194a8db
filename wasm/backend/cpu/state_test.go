package cpu_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestState writes rows through two graphs that share one state and reads back what the
// storage holds: exact for f32, half rounding for f16, s·q with s = max|row|/127 for int8.
func TestState(t *testing.T) {
	const S, H, D = 6, 2, 4
	for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
		b := cpu.New()
		spec := graph.StateSpec{Name: "k", Shape: graph.Shape{S, H, D}, Storage: storage}
		st, err := b.NewState(spec)
		if err != nil {
			t.Fatal(err)
		}
		if st.Bytes() != spec.Bytes() {
			t.Fatalf("%s: %d bytes, spec says %d", storage, st.Bytes(), spec.Bytes())
		}
		progs := map[int]backend.Program{}
		for _, rows := range []int{3, 1} {
			g := graph.New("w")
			x := g.Input("x", graph.Float32, rows, H, D)
			pos := g.Input("pos", graph.Int32, 1)
			if err := g.Output(g.StateWrite("kw", g.State("k", storage, S, H, D), x, pos, S)); err != nil {
				t.Fatal(err)
			}
			if progs[rows], err = b.Compile(g, backend.WithStates(backend.WeightMap{}, backend.StateMap{"k": st})); err != nil {
				t.Fatal(err)
			}
		}
		want := make([]float32, S*H*D)
		write := func(rows, at int, base float32) []float32 {
			x := make([]float32, rows*H*D)
			for i := range x {
				x[i] = base + float32(i)*0.37 - 1.3
			}
			copy(want[at*H*D:], x)
			out, err := progs[rows].Run(context.Background(), []graph.Tensor{graph.F32Tensor(x, rows, H, D), graph.I32Tensor([]int32{int32(at)}, 1)})
			if err != nil {
				t.Fatal(err)
			}
			return out[0].F32
		}
		write(3, 0, 1)
		write(1, 3, 2)
		got := write(1, 5, -3)
		for r := 0; r < S*H; r++ {
			row, wrow := got[r*D:(r+1)*D], want[r*D:(r+1)*D]
			var amax float64
			for _, v := range wrow {
				amax = max(amax, math.Abs(float64(v)))
			}
			for i := range row {
				d := math.Abs(float64(row[i] - wrow[i]))
				var lim float64
				switch storage {
				case graph.StateF16:
					lim = math.Abs(float64(wrow[i])) / 2048
				case graph.StateInt8:
					lim = amax / 127 / 2 * 1.0001
				}
				if d > lim {
					t.Fatalf("%s: element %d of row %d = %g, want %g (±%g)", storage, i, r, row[i], wrow[i], lim)
				}
			}
		}
		_, err = progs[3].Run(context.Background(), []graph.Tensor{graph.F32Tensor(make([]float32, 3*H*D), 3, H, D), graph.I32Tensor([]int32{4}, 1)})
		if err == nil || !strings.Contains(err.Error(), "rows [4, 7)") {
			t.Fatalf("%s: write past the end: %v", storage, err)
		}
	}
}

func TestStateBuildErrors(t *testing.T) {
	for name, build := range map[string]func(g *graph.Graph) graph.Value{
		"read directly": func(g *graph.Graph) graph.Value {
			return g.Scale("s", g.State("k", graph.StateF32, 4, 2), 2)
		},
		"written twice": func(g *graph.Graph) graph.Value {
			s := g.State("k", graph.StateF32, 4, 2)
			x, p := g.Input("x", graph.Float32, 1, 2), g.Input("p", graph.Int32, 1)
			g.StateWrite("a", s, x, p, 2)
			return g.StateWrite("b", s, x, p, 2)
		},
		"keep beyond": func(g *graph.Graph) graph.Value {
			return g.StateWrite("a", g.State("k", graph.StateF32, 4, 2), g.Input("x", graph.Float32, 1, 2), g.Input("p", graph.Int32, 1), 5)
		},
		"row shape": func(g *graph.Graph) graph.Value {
			return g.StateWrite("a", g.State("k", graph.StateF32, 4, 2), g.Input("x", graph.Float32, 1, 3), g.Input("p", graph.Int32, 1), 4)
		},
	} {
		g := graph.New(name)
		build(g)
		if !errors.Is(g.Err(), graph.ErrShape) {
			t.Errorf("%s: err %v, want a shape error", name, g.Err())
		}
	}
	g := graph.New("no states bound")
	if err := g.Output(g.StateWrite("a", g.State("k", graph.StateF32, 4, 2), g.Input("x", graph.Float32, 1, 2), g.Input("p", graph.Int32, 1), 4)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.String(), `state("k" f32)`) {
		t.Errorf("printing: %s", g)
	}
	if _, err := cpu.New().Compile(g, backend.WeightMap{}); err == nil || !strings.Contains(err.Error(), "WithStates") {
		t.Errorf("compile without states: %v", err)
	}
}
