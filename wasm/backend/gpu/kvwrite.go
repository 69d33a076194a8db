package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// kvWrite is a decoder's key and value cache writes made by its q/k/v GEMV as it stores them
// (gemv_hw.wgsl and gemv_a8.wgsl MULTI with KV_WRITE, shaders.Key.KVWrite): the group's second
// Linear (k) is rotated by a table rotation and written at row pos of one state, its third (v)
// at row pos of another, so neither Linear's result is made, nor the rotation, and the
// StateWrites dispatch no write (their reads, if any, stay). Keyed by the group's first Linear.
type kvWrite struct {
	k, v          graph.Value // the Linears
	kw, vw        int         // their StateWrites
	rope          int         // k's rotation (its Concat in ropes)
	pos, cos, sin graph.Value // what the GEMV reads beside x: the row, the rotation's tables
}

// findKVWrites returns the Linear groups (findLinearGroups, keyed by their first) of three
// whose second is read only by a table rotation (through views) that only a StateWrite reads
// (findRotatedReads: rotated) and whose third is read only by another StateWrite (through
// views), where the GEMV can write both: one activation row, caches of one shape in f32 or f16
// (an int8 cache's row scale spans workgroups), of rows of the Linears' N (even: a rotated
// pair, an f16 word, is one workgroup's), one position, the rotation's tables of one row, and
// the position and the tables made before the group's dispatch; fits(lins) says the device
// runs the group so (lim.kvWrite). Nil fits: none.
func findKVWrites(g *graph.Graph, needed []bool, uses []int, groups map[int][]graph.Value, ropes map[int]tableRotation, rotated map[int]int, fits func(lins []graph.Value) bool) map[int]kvWrite {
	out := map[int]kvWrite{}
	if fits == nil {
		return out
	}
	// The Linear each StateWrite writes (k: through its rotation), with nothing else reading it.
	writer := map[graph.Value]int{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpStateWrite {
			continue
		}
		x, want := n.Inputs[1], 1
		if r, ok := rotated[i]; ok {
			x, want = ropes[r].x, 2 // the rotation's two Slices read it
		}
		if lin, ok := viewSource(g, uses, x, want); ok {
			writer[lin] = i
		}
	}
	for lead, lins := range groups {
		if len(lins) != 3 {
			continue
		}
		kw, okK := writer[lins[1]]
		vw, okV := writer[lins[2]]
		if !okK || !okV {
			continue
		}
		r, rot := rotated[kw]
		_, vrot := rotated[vw]
		if !rot || vrot {
			continue
		}
		w := kvWrite{k: lins[1], v: lins[2], kw: kw, vw: vw, rope: r, pos: g.Nodes[kw].Inputs[2], cos: ropes[r].cos, sin: ropes[r].sin}
		if kvWriteShapes(g, w, ropes[r]) && w.pos == g.Nodes[vw].Inputs[2] &&
			int(w.pos) < lead && int(w.cos) < lead && int(w.sin) < lead && fits(lins) {
			out[lead] = w
		}
	}
	return out
}

// viewSource is the Linear that v is, or is a view of (Reshapes and transposes of axes of size
// 1, each read by the next alone), where v has want readers.
func viewSource(g *graph.Graph, uses []int, v graph.Value, want int) (graph.Value, bool) {
	if uses[v] != want {
		return graph.None, false
	}
	for n := &g.Nodes[v]; n.Op == graph.OpReshape || viewTranspose(g, n); n = &g.Nodes[v] {
		v = n.Inputs[0]
		if uses[v] != 1 {
			return graph.None, false
		}
	}
	return v, g.Nodes[v].Op == graph.OpLinear
}

// kvWriteShapes checks what the GEMV's store assumes of w: one row, k and v of one even N that
// is a cache row, caches of one shape in f32 or f16, tables of one row.
func kvWriteShapes(g *graph.Graph, w kvWrite, m tableRotation) bool {
	kn, vn := &g.Nodes[w.k], &g.Nodes[w.v]
	N := g.Nodes[kn.Inputs[1]].Shape[0]
	ks, vs := &g.Nodes[g.Nodes[w.kw].Inputs[0]], &g.Nodes[g.Nodes[w.vw].Inputs[0]]
	st := ks.Attr.Storage
	return kn.Shape.Size() == N && vn.Shape.Size() == N && N%2 == 0 &&
		(st == graph.StateF32 || st == graph.StateF16) && vs.Attr.Storage == st && slices.Equal(ks.Shape, vs.Shape) &&
		ks.Shape[1:].Size() == N && g.Nodes[m.cos].Shape[0] == 1
}

// fuseKVWrites finds the q/k/v GEMVs that write the caches (after the Linear groups): k and v
// have no storage, and their StateWrites make no write of their own.
func (p *graphPlan) fuseKVWrites(g *graph.Graph, uses []int, lim arenaLimits) {
	p.kvWrites, p.kvWritten = findKVWrites(g, p.needed, uses, p.groups, p.ropes, p.rotatedReads, lim.kvWrite), map[int]bool{}
	for _, w := range p.kvWrites {
		p.fused[w.k], p.fused[w.v] = true, true
		p.kvWritten[w.kw], p.kvWritten[w.vw] = true, true
	}
}
