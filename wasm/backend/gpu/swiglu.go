package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// swiGLU is a feed-forward's SiLU(x·gateᵀ)·(x·upᵀ) as one GEMV dispatch (the "SwiGLU GEMV":
// gemv_hw.wgsl and gemv_a8.wgsl SWIGLU, shaders.Key.SwiGLU): a workgroup sums the same rows of
// the gate and of up and stores SiLU(g)·u, so neither Linear's result is made, nor the SiLU's,
// and the down GEMV reads plain x. Keyed by the SiLU product's Mul, whose value the dispatch
// writes.
type swiGLU struct {
	gate, up graph.Value // the Linears: SiLU's input and the Mul's other operand
	x        graph.Value // their x (an RMSNorm's result where the GEMV normalizes: p.normed)
	// down: the Linear that alone reads the Mul, where the GEMV also writes the Mul as that
	// GEMV's activation blocks (gemv_a8.wgsl XTAIL; tail names their codes); else graph.None.
	down graph.Value
	tail tailForm
}

// findSwiGLUs returns the SiLU products (findSiLUProducts, keyed by their Mul) of two Linears
// without bias of the same x, each read by the product alone, with weights of one shape [N, K],
// at most GEMVMaxM rows, x read as it is (paddedK == K), where fits(gate, up) says the device
// runs them so (lim.swiGLU: one layout, one chunk each, a GEMV kernel with SWIGLU and an even
// row count, enough storage buffers). Nil lim.swiGLU: none.
func findSwiGLUs(g *graph.Graph, needed []bool, uses []int, silus map[int]siluProduct, paddedK func(node int) int, lim arenaLimits) map[int]swiGLU {
	out := map[int]swiGLU{}
	if lim.swiGLU == nil {
		return out
	}
	for mul, s := range silus {
		gn, un := &g.Nodes[s.a], &g.Nodes[s.b]
		if !needed[mul] || gn.Op != graph.OpLinear || un.Op != graph.OpLinear || s.a == s.b ||
			gn.Inputs[2] != graph.None || un.Inputs[2] != graph.None || gn.Inputs[0] != un.Inputs[0] ||
			uses[s.a] != 1 || uses[s.b] != 1 {
			continue
		}
		ws := g.Nodes[gn.Inputs[1]].Shape
		N, K := ws[0], ws[1]
		if !slices.Equal(g.Nodes[un.Inputs[1]].Shape, ws) || !slices.Equal(gn.Shape, g.Nodes[mul].Shape) ||
			gn.Shape.Size()/N > GEMVMaxM || paddedK(int(s.a)) != K || paddedK(int(s.b)) != K || !lim.swiGLU(int(s.a), int(s.b)) {
			continue
		}
		out[mul] = swiGLU{gate: s.a, up: s.b, x: gn.Inputs[0], down: graph.None}
	}
	return out
}

// fuseSwiGLUs finds the SwiGLU GEMVs (after the SiLU products and the normed Linears, before
// the Linear groups and SiLU·mul in the down GEMV): their Linears are fused, and their Mul is
// no longer a SiLU·mul dispatch nor a down GEMV's SiLU x (its SiLU stays fused).
func (p *graphPlan) fuseSwiGLUs(g *graph.Graph, uses []int, paddedK func(node int) int, lim arenaLimits) {
	p.swiglus, p.xTailOf = findSwiGLUs(g, p.needed, uses, p.siluMuls, paddedK, lim), map[int]int{}
	var readBy [][]int
	if lim.xTail != nil {
		readBy = readersOf(g, p.needed)
	}
	for mul, s := range p.swiglus {
		p.fused[s.gate], p.fused[s.up] = true, true
		delete(p.siluMuls, mul)
		if lim.xTail == nil {
			continue
		}
		if d, form, ok := findXTail(g, readBy[mul], graph.Value(mul), s, paddedK, lim); ok {
			s.down, s.tail = d, form
			p.swiglus[mul], p.xTailOf[int(d)] = s, mul
		}
	}
}

// findXTail says whether SwiGLU GEMV s of Mul mul (read by readers alone) also writes its output
// as the activation blocks of the one Linear that reads it (x as it is: paddedK == N, a GEMV of
// at most GEMVMaxM rows), where lim.xTail (not nil) takes the pair; the Linear and the blocks'
// form.
func findXTail(g *graph.Graph, readers []int, mul graph.Value, s swiGLU, paddedK func(node int) int, lim arenaLimits) (graph.Value, tailForm, bool) {
	if len(readers) != 1 || slices.Contains(g.Outputs, mul) {
		return graph.None, tailForm{}, false
	}
	d := readers[0]
	dn := &g.Nodes[d]
	N := g.Nodes[mul].Shape[len(g.Nodes[mul].Shape)-1]
	if dn.Op != graph.OpLinear || dn.Inputs[0] != mul || dn.Inputs[1] == mul || paddedK(d) != N ||
		dn.Shape.Size()/g.Nodes[dn.Inputs[1]].Shape[0] > GEMVMaxM {
		return graph.None, tailForm{}, false
	}
	form, ok := lim.xTail(int(s.gate), d)
	return graph.Value(d), form, ok
}

// swiGLUReads are the values a SwiGLU GEMV reads: its x, or the norm's input and gain where
// the GEMV normalizes.
func (p *graphPlan) swiGLUReads(s swiGLU) []graph.Value {
	if n, ok := p.normed[int(s.gate)]; ok {
		return []graph.Value{n.x, n.gain}
	}
	return []graph.Value{s.x}
}
