//go:build js && wasm

package nn

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestGraphConformance runs the shared graph section (every op alone at awkward sizes, every
// weight format in Linear and Gather, an encoder and a decoder block) in the exact mode against
// the cpu interpreter, at the suite's default float32 bound.
func TestGraphConformance(t *testing.T) {
	b := newBackend(t, Options{})
	backendtest.RunGraphs(t, b, backendtest.GraphOptions{})
	for _, n := range b.Caps().Notes {
		t.Log("note: ", n)
	}
}

// TestRunIsOneDispatch holds a compiled graph to one MLGraph build at Compile and exactly one
// dispatch per Run, in both modes: nothing is split into several graphs or run op by op.
func TestRunIsOneDispatch(t *testing.T) {
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	e := encoder{B: 2, T: 5, D: 32, H: 2, F: 48, Layers: 2, Weights: quant.Format{Bits: 8, Scheme: quant.Symmetric}}
	g, ws, err := e.build(rng)
	if err != nil {
		t.Fatal(err)
	}
	nw := upload(t, b, ws)
	cal, err := backend.Calibrate(context.Background(), b, g, nw, [][]graph.Tensor{e.inputs(rng)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*backend.Calibration{nil, cal} {
		builds := b.builds.Load()
		p, err := b.CompileCalibrated(g, nw, c)
		if err != nil {
			t.Fatal(err)
		}
		if n := b.builds.Load() - builds; n != 1 {
			t.Errorf("calibrated=%v: Compile built %d MLGraphs, want 1", c != nil, n)
		}
		d := b.dispatches.Load()
		for range 3 {
			if _, err := p.Run(context.Background(), e.inputs(rng)); err != nil {
				t.Fatal(err)
			}
		}
		if n := b.dispatches.Load() - d; n != 3 {
			t.Errorf("calibrated=%v: 3 runs dispatched %d times, want 3", c != nil, n)
		}
		p.Release()
		if _, err := p.Run(context.Background(), e.inputs(rng)); err == nil {
			t.Error("run after Release: want an error")
		}
	}
}

// TestBucketReuse compiles one shape bucket (16 tokens) once and runs sentences of every length
// through it, the padding masked: no rebuild, one dispatch each, each output the cpu's.
func TestBucketReuse(t *testing.T) {
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(7, 8))
	e := encoder{B: 1, T: 16, D: 32, H: 2, F: 48, Layers: 1, Weights: quant.Q4}
	g, ws, err := e.build(rng)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Compile(g, upload(t, b, ws))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	builds, d := b.builds.Load(), b.dispatches.Load()
	lengths := []int{1, 5, 16, 9, 2, 16, 13}
	for _, n := range lengths {
		in := e.inputs(rng)
		m := in[1].F32
		for i := range m {
			m[i] = 0
			if i < n {
				m[i] = 1
			}
		}
		got, err := p.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if err := backendtest.CompareTensors(cpuRun(t, g, ws, in)[0], got[0], 2e-4); err != nil {
			t.Errorf("length %d: %v", n, err)
		}
	}
	if n := b.builds.Load() - builds; n != 0 {
		t.Errorf("%d runs rebuilt the graph %d times, want 0", len(lengths), n)
	}
	if n := b.dispatches.Load() - d; n != int64(len(lengths)) {
		t.Errorf("%d runs dispatched %d times", len(lengths), n)
	}
}

// TestOutputEdges covers what an MLGraph does not allow directly or the suite does not reach: a
// graph input returned as an output, one value returned twice, an input no output reads, an int32
// output, and a 1-D Linear.
func TestOutputEdges(t *testing.T) {
	b := newBackend(t, Options{})
	g := graph.New("edges")
	x := g.Input("x", graph.Float32, 2, 3)
	g.Input("unused", graph.Float32, 4)
	ids := g.Input("ids", graph.Int32, 2, 2)
	v := g.Input("v", graph.Float32, 3)
	y := g.Tanh("y", x)
	lin := g.Linear("lin", v, g.Weight("w", 2, 3), graph.None)
	if err := g.Output(x, y, y, g.Transpose("idsT", ids, 1, 0), lin); err != nil {
		t.Fatal(err)
	}
	wq, _ := quant.Quantize("w", []float32{1, 2, 3, -1, 0.5, 0}, 2, 3, quant.Format{Bits: 32}, quant.Options{})
	ws := map[string]*quant.Tensor{"w": wq}
	p, err := b.Compile(g, upload(t, b, ws))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	in := []graph.Tensor{
		graph.F32Tensor([]float32{1, -2, 3, 0.5, 0, -1}, 2, 3),
		graph.F32Tensor([]float32{9, 9, 9, 9}, 4),
		graph.I32Tensor([]int32{1, 2, 3, 4}, 2, 2),
		graph.F32Tensor([]float32{1, 1, 2}, 3),
	}
	got, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := cpuRun(t, g, ws, in)
	for i := range want {
		if err := backendtest.CompareTensors(want[i], got[i], 2e-4); err != nil {
			t.Errorf("output %d: %v", i, err)
		}
	}
}
