package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// attention is one token's attention as one dispatch (ops_attn.wgsl, shaders.OpAttention): a
// softmax product p·v (findSoftmaxProducts) whose softmax reads, through views, q·kᵀ (or a
// Scale of it, findScaledProducts) and nothing else does. A workgroup per query row computes
// the scores into workgroup memory, their (masked) softmax and the product, reading the keys
// and the values where p·v and q·kᵀ would (a KV cache in place, statesInPlace; through strides,
// stridedB) and rotating the query as q·kᵀ would (rotatedReads): neither the scores nor q·kᵀ's
// dispatch are made. Keyed by the p·v MatMul, whose place the dispatch takes.
type attention struct {
	qk     graph.Value   // the q·kᵀ MatMul
	scores graph.Value   // what the softmax reads through views: qk, or its Scale
	alpha  float32       // that Scale's factor (1 without)
	reads  []graph.Value // the values the dispatch reads (graphPlan.reads)
	// next is the Linear that reads the attention's output through views alone (warmLinear),
	// or None: the GEMV whose weights the dispatch's spare workgroups can read into the L2.
	next graph.Value
}

// attnMaxDh bounds a query's, a key's and a value's elements: ops_attn.wgsl's 8 lanes of a key
// hold 16 each, and its 32 lanes of the outputs 4 each.
const attnMaxDh = 128

// attnMaxRows bounds the query rows a batch (q·kᵀ's m): a decode step's, one token's query
// heads that share a KV head. A prefill's rows (heads × tokens) keep the products, whose
// workgroups a long prompt spreads over the GPU anyway.
const attnMaxRows = 8

// findAttentions returns the attentions keyed by their p·v MatMul: q·kᵀ without a rotation of
// its b, over at most maxKeys keys, K and the outputs at most attnMaxDh, at most attnMaxRows
// rows a batch, p·v's a of q·kᵀ's shape (so a row of one is a row of the other), and keys and
// values read alike: f16 or int8 states of one shape, read in place, or f32 (values, or f32
// states). maxKeys 0: none.
func (p *graphPlan) findAttentions(g *graph.Graph, uses []int, maxKeys int) map[int]attention {
	out := map[int]attention{}
	if maxKeys <= 0 {
		return out
	}
	readBy := readersOf(g, p.needed)
	for i, sm := range p.softmaxes {
		at, ok := p.attentionScores(g, uses, sm.x)
		if !ok {
			continue
		}
		qk, pv := &g.Nodes[at.qk], &g.Nodes[i]
		r := len(qk.Shape)
		qs := g.Nodes[qk.Inputs[0]].Shape
		if !slices.Equal(g.Nodes[pv.Inputs[0]].Shape, qk.Shape) || qk.Shape[r-1] > maxKeys || qs[r-1] > attnMaxDh ||
			pv.Shape[r-1] > attnMaxDh || qs[r-2] > attnMaxRows {
			continue
		}
		kf, ks := p.bStorage(g, at.qk)
		vf, vs := p.bStorage(g, graph.Value(i))
		if kf != vf || kf != graph.StateF32 && !slices.Equal(ks, vs) {
			continue
		}
		q := []graph.Value{qk.Inputs[0]}
		if rot, ok := p.rotatedReads[int(at.qk)]; ok {
			m := p.ropes[rot]
			q = []graph.Value{m.x, m.cos, m.sin}
		}
		at.reads = append(q, p.bOperand(g, at.qk), p.bOperand(g, graph.Value(i)))
		if sm.mask != graph.None {
			at.reads = append(at.reads, sm.mask)
		}
		at.next = p.warmLinear(g, uses, readBy, i)
		out[i] = at
	}
	return out
}

// attentionScores matches a softmax's input x: views (Reshapes) of a Scale of q·kᵀ, or of q·kᵀ,
// each read by the next alone.
func (p *graphPlan) attentionScores(g *graph.Graph, uses []int, x graph.Value) (attention, bool) {
	for uses[x] == 1 && g.Nodes[x].Op == graph.OpReshape {
		x = g.Nodes[x].Inputs[0]
	}
	at := attention{scores: x, qk: x, alpha: 1}
	if s, ok := p.scaled[int(x)]; ok {
		at.qk, at.alpha = s.mm, g.Nodes[x].Attr.Scale
	}
	n := &g.Nodes[at.qk]
	ok := uses[x] == 1 && n.Op == graph.OpMatMul && n.Attr.TransB && n.Inputs[0] != n.Inputs[1]
	return at, ok
}

// warmLinear is the Linear that reads p·v node i's output (i, or the Scale of it that the
// dispatch writes) through views alone (Reshapes, transposes that move only axes of size 1),
// each read by the next alone (readBy: readersOf's); None where there is none.
func (p *graphPlan) warmLinear(g *graph.Graph, uses []int, readBy [][]int, i int) graph.Value {
	v := graph.Value(i)
	for s, sc := range p.scaled {
		if sc.mm == v {
			v = graph.Value(s)
		}
	}
	for uses[v] == 1 && len(readBy[v]) == 1 {
		r := graph.Value(readBy[v][0])
		n := &g.Nodes[r]
		switch {
		case n.Op == graph.OpLinear && n.Inputs[0] == v:
			return r
		case n.Op == graph.OpReshape || viewTranspose(g, n):
			v = r
		default:
			return graph.None
		}
	}
	return graph.None
}

// bOperand is the value product mm reads as b: b, or the source of the Transpose it reads in
// place (stridedB).
func (p *graphPlan) bOperand(g *graph.Graph, mm graph.Value) graph.Value {
	if src, ok := p.stridedB[int(mm)]; ok {
		return src
	}
	return g.Nodes[mm].Inputs[1]
}

// bStorage is how product mm reads b: from a state read in place, its storage and shape; else
// as f32 (graph.StateF32, no shape).
func (p *graphPlan) bStorage(g *graph.Graph, mm graph.Value) (graph.StateFormat, graph.Shape) {
	v := p.bOperand(g, mm)
	for n := &g.Nodes[v]; n.Op == graph.OpReshape || viewTranspose(g, n); n = &g.Nodes[v] {
		v = n.Inputs[0]
	}
	if !p.statesInPlace[int(v)] {
		return graph.StateF32, nil
	}
	st := &g.Nodes[g.Nodes[v].Inputs[0]]
	return st.Attr.Storage, st.Shape
}

// fuseAttentions finds the attentions (after the softmax products and the rotated reads): their
// q·kᵀ and its Scale are fused, made by p·v's dispatch.
func (p *graphPlan) fuseAttentions(g *graph.Graph, uses []int, lim arenaLimits) {
	p.attns = p.findAttentions(g, uses, lim.attnKeys)
	for _, at := range p.attns {
		p.fused[at.qk], p.fused[at.scores] = true, true
	}
}
