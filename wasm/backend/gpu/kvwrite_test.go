package gpu

import (
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
)

// TestFindKVWrites: in a decode step (f16 and f32 caches) every layer's q/k/v GEMV writes k,
// rotated, and v into their caches: k and v have no storage, their StateWrites make no write,
// the GEMV reads the position and the tables, alive until it and in other buffers than q's.
// Prefill (16 rows), an int8 cache, a device that says no, lim.kvWrite nil, and a layer whose
// k or v something else reads too keep the writes.
func TestFindKVWrites(t *testing.T) {
	yes := func([]graph.Value) bool { return true }
	for _, c := range []struct {
		rows    int
		storage graph.StateFormat
		fits    func([]graph.Value) bool
		want    int // per layer
	}{{1, graph.StateF16, yes, 1}, {1, graph.StateF32, yes, 1}, {16, graph.StateF16, yes, 0}, {1, graph.StateInt8, yes, 0},
		{1, graph.StateF16, func([]graph.Value) bool { return false }, 0}, {1, graph.StateF16, nil, 0}} {
		lim := testLimits
		lim.gemvNorm, lim.gemvWeights, lim.gemvSiLU, lim.kvWrite = true, 3, true, c.fits
		cfg, g, p := kvDecoderPlan(t, c.rows, c.storage, lim)
		if len(p.kvWrites) != c.want*cfg.Layers || len(p.kvWritten) != 2*c.want*cfg.Layers {
			t.Fatalf("rows %d, %s: %d GEMVs write %d caches, want %d, %d", c.rows, c.storage, len(p.kvWrites), len(p.kvWritten), c.want*cfg.Layers, 2*c.want*cfg.Layers)
		}
		last := p.lifetimes(g)
		for lead, w := range p.kvWrites {
			checkKVWrite(t, g, p, last, lead, w)
		}
	}
	// Another reader of one layer's k and another layer's v: those two layers keep their writes.
	lim := testLimits
	lim.gemvNorm, lim.gemvWeights, lim.gemvSiLU = true, 3, true
	cfg, g, p := kvDecoderPlan(t, 1, graph.StateF16, lim)
	uses := readers(g, p.needed)
	n := 0
	for _, lins := range p.groups {
		if len(lins) == 3 && n < 2 {
			uses[lins[1+n]]++
			n++
		}
	}
	got := findKVWrites(g, p.needed, uses, p.groups, p.ropes, p.rotatedReads, func([]graph.Value) bool { return true })
	if len(got) != cfg.Layers-2 {
		t.Fatalf("with k and v read by something else: %d GEMVs write caches, want %d", len(got), cfg.Layers-2)
	}
}

// kvDecoderPlan is decoderPlan's graph with caches of the given storage.
func kvDecoderPlan(t *testing.T, rows int, storage graph.StateFormat, lim arenaLimits) (llama.Config, *graph.Graph, *graphPlan) {
	t.Helper()
	c, _ := decoderGraph(t, rows)
	g, err := c.Build(rows, 16, storage, 64, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planGraph(g, func(i int) int { return g.Nodes[g.Nodes[i].Inputs[1]].Shape[1] }, lim)
	if err != nil {
		t.Fatal(err)
	}
	return c, g, p
}

// checkKVWrite checks one cache-writing GEMV of TestFindKVWrites' plan.
func checkKVWrite(t *testing.T, g *graph.Graph, p *graphPlan, last []int, lead int, w kvWrite) {
	t.Helper()
	lins := p.groups[lead]
	labels := []string{g.Nodes[lins[0]].Label, g.Nodes[w.k].Label, g.Nodes[w.v].Label, g.Nodes[w.kw].Label, g.Nodes[w.vw].Label}
	for j, suffix := range []string{"/q", "/k", "/v", "/k_cache", "/v_cache"} {
		if !strings.HasSuffix(labels[j], suffix) {
			t.Fatalf("%%%d: %v, want q, k, v and their caches", lead, labels)
		}
	}
	if lins[1] != w.k || lins[2] != w.v || p.rotatedReads[w.kw] != w.rope {
		t.Fatalf("%%%d: group %v, k %%%d, v %%%d, rotation %%%d", lead, lins, w.k, w.v, w.rope)
	}
	for _, v := range []graph.Value{w.k, w.v} {
		if !p.fused[v] || p.at[v].size != 0 {
			t.Fatalf("%%%d: Linear %%%d has storage %+v", lead, v, p.at[v])
		}
	}
	if !p.kvWritten[w.kw] || !p.kvWritten[w.vw] || p.at[lead].size == 0 {
		t.Fatalf("%%%d: writes %%%d %v, %%%d %v; q's storage %+v", lead, w.kw, p.kvWritten[w.kw], w.vw, p.kvWritten[w.vw], p.at[lead])
	}
	reads := p.reads(lead)
	if len(reads) != 5 || reads[2] != w.pos || reads[3] != w.cos || reads[4] != w.sin {
		t.Fatalf("%%%d reads %v, want the norm's input and gain, the position and the tables", lead, reads)
	}
	out := p.at[lead]
	for _, r := range reads {
		if last[p.root[r]] < lead {
			t.Fatalf("%%%d reads %%%d after its last use", lead, r)
		}
		if in := p.at[p.root[r]]; in.size > 0 && in.slab == out.slab {
			t.Fatalf("%%%d reads %%%d from its result's buffer", lead, r)
		}
	}
}
