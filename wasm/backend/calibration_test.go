package backend_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestCalibrate checks the ranges are the max |value| of each Linear's input and output (bias
// included) over every input set, that shared labels merge, and that the graph's own outputs
// are untouched.
func TestCalibrate(t *testing.T) {
	g := graph.New("cal")
	x := g.Input("x", graph.Float32, 1, 2)
	w := g.Weight("w", 2, 2)
	h := g.Linear("fc", x, w, g.Weight("b", 2))
	y := g.Linear("fc2", g.ReLU("relu", h), w, graph.None)
	if err := g.Output(y); err != nil {
		t.Fatal(err)
	}
	b := cpu.New()
	ws := backend.WeightMap{}
	for name, v := range map[string][]float32{"w": {1, 2, -3, 0.5}, "b": {0.25, -1}} {
		n, k := 2, 2
		if len(v) == 2 {
			n, k = 1, 2
		}
		q, err := quant.Quantize(name, v, n, k, quant.Format{Bits: 32}, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ws[name], err = b.Upload(q); err != nil {
			t.Fatal(err)
		}
	}
	in := [][]graph.Tensor{
		{graph.F32Tensor([]float32{1, -1}, 1, 2)},   // fc: [-1+0.25, -3.5-1] = [-0.75, -4.5]; relu [0, 0]; fc2 [0, 0]
		{graph.F32Tensor([]float32{-2, 0.5}, 1, 2)}, // fc: [-1+0.25, 6.25-1] = [-0.75, 5.25]; fc2: [10.5, 2.625]
	}
	c, err := backend.Calibrate(context.Background(), b, g, ws, in)
	if err != nil {
		t.Fatal(err)
	}
	iv := func(lo, hi float32) backend.Interval { return backend.Interval{Min: lo, Max: hi} }
	want := map[string]backend.Range{"fc": {In: iv(-2, 1), Out: iv(-4.5, 5.25)}, "fc2": {In: iv(0, 5.25), Out: iv(0, 10.5)}}
	if len(c.Linear) != 2 || c.Linear["fc"] != want["fc"] || c.Linear["fc2"] != want["fc2"] {
		t.Fatalf("calibration %v, want %v", c.Linear, want)
	}
	if len(g.Outputs) != 1 {
		t.Fatalf("Calibrate changed the graph's outputs: %v", g.Outputs)
	}
	c.Merge(&backend.Calibration{Linear: map[string]backend.Range{"fc": {In: iv(-3, 0), Out: iv(0, 1)}, "other": {In: iv(0, 1), Out: iv(0, 1)}}})
	if r := c.Linear["fc"]; r != (backend.Range{In: iv(-3, 1), Out: iv(-4.5, 5.25)}) || len(c.Linear) != 3 {
		t.Fatalf("merged: %v", c.Linear)
	}
	js, _ := json.Marshal(c)
	t.Logf("%s", js)
}

// TestInterval8 checks the int8 mapping: 0 exact, the ends on −128 and 127, a ReLU interval
// [0, m] at steps of m/255, an empty one harmless, a non-finite one refused.
func TestInterval8(t *testing.T) {
	for _, c := range []struct {
		iv    backend.Interval
		scale float32
		zero  int8
	}{
		{backend.Interval{Min: 0, Max: 2.55}, 0.01, -128},
		{backend.Interval{Min: -1.275, Max: 1.275}, 0.01, 0},
		{backend.Interval{Min: -2.55, Max: 0}, 0.01, 127},
		{backend.Interval{Min: 0.5, Max: 2.55}, 0.01, -128}, // widened to hold 0
		{backend.Interval{}, 1, 0},
	} {
		s, z, err := c.iv.Int8()
		if err != nil || math.Abs(float64(s-c.scale)) > 1e-7 || z != c.zero {
			t.Errorf("%v: scale %g zero %d (%v), want %g %d", c.iv, s, z, err, c.scale, c.zero)
		}
		if q := math.RoundToEven(0/float64(s)) + float64(z); (q-float64(z))*float64(s) != 0 {
			t.Errorf("%v: 0 is not exact", c.iv)
		}
	}
	if _, _, err := (backend.Interval{Min: float32(math.Inf(-1)), Max: 1}).Int8(); err == nil {
		t.Error("infinite interval: want an error")
	}
}
