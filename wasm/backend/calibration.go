package backend

import (
	"context"
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// Calibration is what static int8 execution of Linears (weights int8, activations int8 with
// scales fixed in the compiled graph: W8A8) needs to know before it compiles: for each Linear,
// the interval its input and its output took on representative inputs. A backend maps an
// interval onto the 256 int8 codes (asymmetric: a ReLU output [0, m] gets twice the resolution
// a symmetric ±m would give it); a value outside the interval saturates, so calibrate on inputs
// like those the model will see (a handful of real sentences is enough for an encoder).
//
// Ranges are keyed by the Linear's label, not its node index, so one calibration serves every
// shape bucket of a model: the buckets' graphs differ in shapes, not labels. Linears that share
// a label share one range, the union of theirs. A Linear missing from the calibration runs
// unquantized. The value is plain data (JSON tags) so it can be stored with a model.
type Calibration struct {
	Linear map[string]Range `json:"linear"`
}

// Range is one Linear's calibrated intervals: what the calibration inputs spanned. (Shrinking
// them to the interval of least mean squared int8 error over the calibration values, as some
// calibrators do, made a USE-lite-sized encoder worse: 5.2% output error against 4.5%, because
// the values it saturates on new inputs cost more downstream than the finer steps save.)
type Range struct {
	In  Interval `json:"in"`  // over the input x
	Out Interval `json:"out"` // over the output, bias included
}

// Interval is [Min, Max]; NaN values are not counted.
type Interval struct {
	Min float32 `json:"min"`
	Max float32 `json:"max"`
}

// Int8 maps the interval onto the int8 codes as an affine quantization, x ≈ (q − zero)·scale:
// Min → −128 and Max → 127, the interval first widened to hold 0 so that 0 (padding, ReLU's
// floor) is exact. An asymmetric interval such as a ReLU output [0, m] gets steps of m/255, half
// what a symmetric ±m would. An empty interval (a Linear that only saw zeros) gets scale 1.
func (i Interval) Int8() (scale float32, zero int8, err error) {
	lo, hi := float64(min(i.Min, 0)), float64(max(i.Max, 0))
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 0, fmt.Errorf("calibrated interval [%g, %g] is not finite", i.Min, i.Max)
	}
	if hi == lo {
		return 1, 0, nil
	}
	s := float32((hi - lo) / 255)
	z := math.RoundToEven(-128 - lo/float64(s))
	return s, int8(max(-128, min(127, z))), nil
}

func (i Interval) union(o Interval) Interval {
	return Interval{Min: min(i.Min, o.Min), Max: max(i.Max, o.Max)}
}

// CalibratedCompiler is a Compiler that can also run Linears on quantized activations (the nn
// backend's QDQ mode). CompileCalibrated(g, w, nil) is Compile(g, w).
type CalibratedCompiler interface {
	Compiler
	CompileCalibrated(g *graph.Graph, w Weights, c *Calibration) (Program, error)
}

// Calibrate runs g on ref once per input set and records every Linear's input and output
// intervals (see Range). ref is the cpu reference or any backend's exact Compile: the graph it
// runs is g with each Linear's input and output added as outputs, so nothing about a backend's
// internals is needed.
func Calibrate(ctx context.Context, ref Compiler, g *graph.Graph, ws Weights, inputs [][]graph.Tensor) (*Calibration, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("calibrate %q: no input sets", g.Name)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	probe := &graph.Graph{Name: g.Name + "+calibration", Nodes: g.Nodes, Inputs: g.Inputs, Outputs: append([]graph.Value(nil), g.Outputs...)}
	type watch struct {
		label   string
		in, out int // indices into the probe's outputs
	}
	var watches []watch
	for i, n := range g.Nodes {
		if n.Op != graph.OpLinear {
			continue
		}
		watches = append(watches, watch{n.Label, len(probe.Outputs), len(probe.Outputs) + 1})
		probe.Outputs = append(probe.Outputs, n.Inputs[0], graph.Value(i))
	}
	c := &Calibration{Linear: map[string]Range{}}
	if len(watches) == 0 {
		return c, nil
	}
	prog, err := ref.Compile(probe, ws)
	if err != nil {
		return nil, fmt.Errorf("calibrate %q: %w", g.Name, err)
	}
	defer prog.Release()
	for s, in := range inputs {
		out, err := prog.Run(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("calibrate %q: input set %d: %w", g.Name, s, err)
		}
		for _, w := range watches {
			r := Range{In: extent(out[w.in].F32), Out: extent(out[w.out].F32)}
			if old, ok := c.Linear[w.label]; ok {
				r = Range{In: old.In.union(r.In), Out: old.Out.union(r.Out)}
			}
			c.Linear[w.label] = r
		}
	}
	return c, nil
}

// Merge widens c's ranges to cover o's (calibrations of several buckets or input sets).
func (c *Calibration) Merge(o *Calibration) {
	if c.Linear == nil {
		c.Linear = map[string]Range{}
	}
	for k, r := range o.Linear {
		if m, ok := c.Linear[k]; ok {
			r = Range{In: m.In.union(r.In), Out: m.Out.union(r.Out)}
		}
		c.Linear[k] = r
	}
}

// extent ignores NaN, which would otherwise make every scale NaN; an infinite value is kept and
// makes the backend refuse to quantize that Linear.
func extent(v []float32) Interval {
	i := Interval{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
	for _, x := range v {
		if x == x {
			i.Min, i.Max = min(i.Min, x), max(i.Max, x)
		}
	}
	if i.Min > i.Max { // nothing but NaN
		return Interval{}
	}
	return i
}
