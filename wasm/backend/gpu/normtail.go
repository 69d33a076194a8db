package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// normTail is an RMSNorm whose input is a residual Linear's sum (residualLinear, keyed by its
// Add): the GEMV's last workgroup to finish writes the norm too (shaders.Key.NormTail,
// gemv_reduce.wgsl NORM_TAIL), so the norm after a decoder's o and down projections is no
// dispatch of its own. The sum is still stored, for the next residual.
type normTail struct {
	norm, gain graph.Value
	eps        float32
}

// findNormTails returns the norm tails keyed by the residual Add whose dispatch writes them:
// RMSNorms of a residual Linear's sum of its shape, with a gain of N elements (N the weight's
// rows, the norm's axis), not run inside the GEMVs that read them (fused), where lim.normTail
// takes the Linear. One norm a sum: a second norm of it stays a dispatch.
func findNormTails(g *graph.Graph, needed []bool, residuals map[int]residualLinear, fused map[graph.Value]bool, lim arenaLimits) map[int]normTail {
	out := map[int]normTail{}
	if lim.normTail == nil {
		return out
	}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpRMSNorm || fused[graph.Value(i)] || n.Inputs[1] == graph.None {
			continue
		}
		a := n.Inputs[0]
		r, ok := residuals[int(a)]
		if _, taken := out[int(a)]; !ok || taken {
			continue
		}
		N := g.Nodes[g.Nodes[r.lin].Inputs[1]].Shape[0]
		s := n.Shape
		if slices.Equal(s, g.Nodes[a].Shape) && s[len(s)-1] == N && g.Nodes[n.Inputs[1]].Shape.Size() == N && lim.normTail(int(r.lin)) {
			out[int(a)] = normTail{norm: graph.Value(i), gain: n.Inputs[1], eps: n.Attr.Eps}
		}
	}
	return out
}

// tailBytes is the handoff a NormTail GEMV of m activation rows and n outputs a row binds: four
// counters, then m·n words.
func tailBytes(m, n int) int64 { return int64(4+m*n) * 4 }
