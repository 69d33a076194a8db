package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// normTail is an RMSNorm whose input is a residual Linear's sum (residualLinear, keyed by its
// Add) and whose readers are all GEMVs: the residual Linear's GEMV writes the norm's x·gain and
// the Σx² of each 8 elements as it stores its sum (shaders.Key.NormTail), and each reader scales
// its sums by the norm from those (Key.NormPart; p.normed with part). So the norm after a
// decoder's o and down projections is no dispatch of its own, and the GEMVs after it load x
// alone, not x and the gain. The sum is still stored, for the next residual.
//
// With int8 activations (form.a8) the GEMV writes the norm's x·gain as the readers' activation
// blocks instead (gemv_a8.wgsl QTAIL), which they read as they read the norm's pre-pass: the
// norm stays fused into its readers (p.normed) and has no value of its own.
type normTail struct {
	norm, gain graph.Value
	eps        float32
	readers    []int // the Linears that read the norm
	form       tailForm
}

// tailForm is how a norm tail passes the norm to its readers: x·gain and sums (gemv_hw.wgsl),
// or with a8 activation blocks for codes of bits and asym (gemv_a8.wgsl; the writer's form has
// a8 alone, each reader's its codes).
type tailForm struct {
	a8   bool
	bits int
	asym bool
}

// findNormTails returns the norm tails keyed by the residual Add whose dispatch writes them:
// RMSNorms of a residual Linear's sum of its shape, with a gain of N elements (N the weight's
// rows, the norm's axis), read by Linears alone (not an output), each a GEMV (at most GEMVMaxM
// rows) of x as it is (paddedK == K), where lim.normTail takes the residual Linear and each
// reader in one form: the writer's kind (a8 or not) and the readers' codes alike. A norm run
// inside the GEMVs that read it (fused) takes the a8 form only, any other the other. One norm a
// sum: a second norm of it stays as it was.
func findNormTails(g *graph.Graph, needed []bool, residuals map[int]residualLinear, fused map[graph.Value]bool, paddedK func(node int) int, lim arenaLimits) map[int]normTail {
	out := map[int]normTail{}
	if lim.normTail == nil {
		return out
	}
	readBy := readersOf(g, needed)
	for i, n := range g.Nodes {
		v := graph.Value(i)
		if !needed[i] || n.Op != graph.OpRMSNorm || n.Inputs[1] == graph.None || slices.Contains(g.Outputs, v) {
			continue
		}
		a := n.Inputs[0]
		r, ok := residuals[int(a)]
		if _, taken := out[int(a)]; !ok || taken {
			continue
		}
		N := g.Nodes[g.Nodes[r.lin].Inputs[1]].Shape[0]
		s := n.Shape
		wf, ok := lim.normTail(int(r.lin), false)
		if !ok || wf.a8 != fused[v] || !slices.Equal(s, g.Nodes[a].Shape) || s[len(s)-1] != N || g.Nodes[n.Inputs[1]].Shape.Size() != N {
			continue
		}
		readers := readBy[v]
		gemvs := len(readers) > 0
		var form tailForm
		for j, l := range readers {
			ln := &g.Nodes[l]
			gemvs = gemvs && ln.Op == graph.OpLinear && ln.Inputs[0] == v && ln.Inputs[1] != v &&
				ln.Shape.Size()/g.Nodes[ln.Inputs[1]].Shape[0] <= GEMVMaxM && paddedK(l) == N
			rf, ok := lim.normTail(l, true)
			gemvs = gemvs && ok && rf.a8 == wf.a8 && (j == 0 || rf == form)
			form = rf
		}
		if gemvs {
			out[int(a)] = normTail{norm: v, gain: n.Inputs[1], eps: n.Attr.Eps, readers: readers, form: form}
		}
	}
	return out
}

// tailParts is how many sums of squares a norm tail of n elements a row writes a row: one for
// each 8 (a workgroup of the GEMV's rows).
func tailParts(n int) int { return (n + 7) / 8 }
