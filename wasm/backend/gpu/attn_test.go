package gpu

import (
	"slices"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestFindAttentions: in a decode step of the decoder's graph every layer's attention is one
// dispatch at its p·v (q·kᵀ and its Scale fused, no storage; the query's rotation, the mask and
// both caches read in place among what it reads, all alive at p·v and in other buffers than its
// result), and none where the limits or the prefill's rows rule it out.
func TestFindAttentions(t *testing.T) {
	lim := testLimits
	lim.softmaxProducts, lim.attnKeys = true, 16
	c, g, p := decoderPlan(t, 1, lim)
	if len(p.attns) != c.Layers {
		t.Fatalf("%d attentions, want %d", len(p.attns), c.Layers)
	}
	last := p.lifetimes(g)
	nexts := map[graph.Value]bool{}
	for i, at := range p.attns {
		// The o projection reads the attention's output through views alone.
		if at.next == graph.None || g.Nodes[at.next].Op != graph.OpLinear {
			t.Fatalf("%%%d: next %d, want the Linear that reads it", i, at.next)
		}
		x := g.Nodes[at.next].Inputs[0]
		for n := &g.Nodes[x]; n.Op == graph.OpReshape || viewTranspose(g, n) || n.Op == graph.OpScale; n = &g.Nodes[x] {
			x = n.Inputs[0]
		}
		if nexts[at.next] = true; x != graph.Value(i) {
			t.Fatalf("%%%d: next %%%d reads %%%d", i, at.next, x)
		}
		if !p.fused[at.qk] || !p.fused[at.scores] || p.at[at.scores].size != 0 || g.Nodes[at.scores].Op != graph.OpScale {
			t.Fatalf("%%%d: q·kᵀ %%%d or its Scale %%%d still made", i, at.qk, at.scores)
		}
		rot, ok := p.rotatedReads[int(at.qk)]
		if !ok || !slices.Contains(at.reads, p.ropes[rot].x) || !slices.Contains(at.reads, p.softmaxes[i].mask) {
			t.Fatalf("%%%d reads %v: want the query's rotation and the mask among them", i, at.reads)
		}
		for _, mm := range []graph.Value{at.qk, graph.Value(i)} {
			if f, _ := p.bStorage(g, mm); f != graph.StateF16 {
				t.Fatalf("%%%d: product %%%d reads %v, want the f16 cache in place", i, mm, f)
			}
		}
		out := p.at[p.root[i]]
		for _, v := range p.reads(i) {
			if in := p.at[p.root[v]]; in.size > 0 && in.slab == out.slab {
				t.Fatalf("%%%d reads %%%d from its result's buffer (slab %d)", i, v, in.slab)
			}
			if last[p.root[v]] < i {
				t.Fatalf("%%%d reads %%%d after its last use %d", i, v, last[p.root[v]])
			}
		}
	}
	if len(nexts) != c.Layers {
		t.Fatalf("%d Linears after the attentions, want %d", len(nexts), c.Layers)
	}
	for _, c := range []struct {
		name       string
		rows, keys int
		softmax    bool
	}{{"prefill", 16, 16, true}, {"more keys than the limit", 1, 8, true}, {"off", 1, 0, true}, {"no softmax products", 1, 16, false}} {
		l := testLimits
		l.softmaxProducts, l.attnKeys = c.softmax, c.keys
		if _, _, p := decoderPlan(t, c.rows, l); len(p.attns) != 0 {
			t.Errorf("%s: %d attentions, want none", c.name, len(p.attns))
		}
	}
}

// TestFindAttentionsCases: which chains of q·kᵀ, softmax and p·v one dispatch takes.
func TestFindAttentionsCases(t *testing.T) {
	type opts struct {
		scale, scoresOut, reshaped bool
		dh                         int
		kStore, vStore             graph.StateFormat
	}
	for _, c := range []struct {
		name string
		o    opts
		want bool
	}{
		{"scaled", opts{scale: true, dh: 8, kStore: graph.StateF16, vStore: graph.StateF16}, true},
		{"unscaled, f32 states", opts{dh: 8}, true},
		{"int8 states", opts{scale: true, dh: 128, kStore: graph.StateInt8, vStore: graph.StateInt8}, true},
		{"scores an output too", opts{scale: true, scoresOut: true, dh: 8}, false},
		{"keys f16, values int8", opts{scale: true, dh: 8, kStore: graph.StateF16, vStore: graph.StateInt8}, false},
		{"Dh past 128", opts{dh: 136}, false},
		{"p·v's rows another shape", opts{reshaped: true, dh: 8}, false},
	} {
		const S, KV, G, keep = 20, 2, 3, 11
		o := c.o
		g := graph.New(c.name)
		pos := g.Input("pos", graph.Int32, 1)
		cache := func(name string, f graph.StateFormat) graph.Value {
			x := g.Input(name, graph.Float32, 1, KV, o.dh)
			w := g.StateWrite(name+" write", g.State(name, f, S, KV, o.dh), x, pos, keep)
			return g.Transpose(name+"t", w, 1, 0, 2) // [KV, keep, Dh]
		}
		kt, vt := cache("k", o.kStore), cache("v", o.vStore)
		s := g.MatMul("qk", g.Input("q", graph.Float32, KV, G, o.dh), kt, true)
		if o.scale {
			s = g.Scale("scale", s, 0.25)
		}
		sm := g.Softmax("p", g.Reshape("scores", s, KV, G, 1, keep), g.Input("mask", graph.Float32, 1, keep))
		a := g.Reshape("flat", sm, KV, G, keep)
		if o.reshaped {
			a = g.Reshape("rows", sm, KV*G, 1, keep)
			vt = g.Concat("vcat", 0, vt, vt, vt) // [KV·G, keep, Dh]
		}
		outs := []graph.Value{g.MatMul("pv", a, vt, false)}
		if o.scoresOut {
			outs = append(outs, s)
		}
		if err := g.Output(outs...); err != nil {
			t.Fatal(err)
		}
		lim := testLimits
		lim.softmaxProducts, lim.attnKeys = true, 16
		p, err := planGraph(g, func(int) int { return 0 }, lim)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(p.attns) == 1; got != c.want {
			t.Errorf("%s: %d attentions, want one: %v", c.name, len(p.attns), c.want)
		}
		for i, at := range p.attns {
			if at.next != graph.None {
				t.Errorf("%s: %%%d: next %%%d, but its output is the graph's", c.name, i, at.next)
			}
		}
	}
}
