package backend

import (
	"context"
	"fmt"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// Weights resolves the names a graph's Weight nodes give to weights resident in a backend
// (stream.Load is one).
type Weights interface {
	Weight(name string) (Weight, bool)
}

// WeightMap is Weights over a map, for tests and tools.
type WeightMap map[string]Weight

func (m WeightMap) Weight(name string) (Weight, bool) { w, ok := m[name]; return w, ok }

// Program is a graph compiled for one backend: the weights are bound, the kernels or the MLGraph
// built. Run may be called many times, not concurrently.
type Program interface {
	// Run takes the graph's inputs in g.Inputs order and returns its outputs in g.Outputs order
	// (float32 or int32 as each output's DType says).
	Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error)
	Release() error
}

// Compiler is a backend that executes whole graphs.
type Compiler interface {
	Compile(g *graph.Graph, w Weights) (Program, error)
}

// BindWeights resolves every Weight node of g and checks it can serve each use: the resident
// [n, k] must hold as many elements as the node's shape, a Linear needs exactly [N, K], a Gather
// from a quantized table needs its rows, and only
// float weights (Bits 16/32) may feed ops other than Gather and Linear.
func BindWeights(g *graph.Graph, ws Weights) (map[string]Weight, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	out := map[string]Weight{}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Op != graph.OpWeight {
			continue
		}
		w, ok := ws.Weight(n.Attr.Name)
		if !ok {
			if m, ok := ws.(interface{ Missing(name string) error }); ok {
				if err := m.Missing(n.Attr.Name); err != nil {
					return nil, fmt.Errorf("graph %q: weight %q: %w", g.Name, n.Attr.Name, err)
				}
			}
			return nil, fmt.Errorf("graph %q: weight %q is not resident (still loading, or not in the model)", g.Name, n.Attr.Name)
		}
		wn, wk := w.Shape()
		if wn*wk != n.Shape.Size() {
			return nil, fmt.Errorf("%w: graph %q: weight %q holds [%d, %d] = %d elements, the graph reads it as %s", ErrShape, g.Name, n.Attr.Name, wn, wk, wn*wk, n.Shape)
		}
		out[n.Attr.Name] = w
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		for slot, in := range n.Inputs {
			if in == graph.None || g.Nodes[in].Op != graph.OpWeight {
				continue
			}
			wn := &g.Nodes[in]
			w := out[wn.Attr.Name]
			switch {
			case n.Op == graph.OpLinear && slot == 1:
				if rn, rk := w.Shape(); rn != wn.Shape[0] || rk != wn.Shape[1] {
					return nil, fmt.Errorf("%w: graph %q: %s %q reads weight %q as [N=%d, K=%d], it is held as [%d, %d]", ErrShape, g.Name, n.Op, n.Label, wn.Attr.Name, wn.Shape[0], wn.Shape[1], rn, rk)
				}
			case n.Op == graph.OpGather && slot == 0:
				// Quantized rows must be the table's rows; float data may be laid out in any [n, k].
				if rn, _ := w.Shape(); rn != wn.Shape[0] && w.Format().Quantized() {
					return nil, fmt.Errorf("%w: graph %q: gather %q reads weight %q as %d rows, it holds %d", ErrShape, g.Name, n.Label, wn.Attr.Name, wn.Shape[0], rn)
				}
			default:
				if f := w.Format(); f.Quantized() {
					return nil, fmt.Errorf("graph %q: %s %q reads weight %q held as %s: only gather and linear read quantized weights (keep it f32/f16 in the plan)", g.Name, n.Op, n.Label, wn.Attr.Name, f)
				}
			}
		}
	}
	return out, nil
}
