package gpu

import (
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestFindSwiGLUs: in a decode step every layer's gate and up Linears and their SiLU product
// are one SwiGLU GEMV (with the norm, grouped and SiLU·mul-in-down fusions on, as on a GPU):
// the Linears and the SiLU have no storage and join no group, the Mul is no SiLU·mul dispatch
// nor the down GEMV's x (the down GEMV reads the Mul's value), and the dispatch reads the
// norm's input and gain, which live until it and lie in other buffers than its result. Prefill
// (16 rows), a device that says no, and lim.swiGLU nil keep the Linears.
func TestFindSwiGLUs(t *testing.T) {
	yes := func(int, int) bool { return true }
	for _, c := range []struct {
		rows int
		fits func(int, int) bool
		want int // per layer
	}{{1, yes, 1}, {16, yes, 0}, {1, func(int, int) bool { return false }, 0}, {1, nil, 0}} {
		lim := testLimits
		lim.gemvNorm, lim.gemvWeights, lim.gemvSiLU, lim.swiGLU = true, 3, true, c.fits
		cfg, g, p := decoderPlan(t, c.rows, lim)
		if len(p.swiglus) != c.want*cfg.Layers {
			t.Fatalf("rows %d: %d SwiGLU GEMVs, want %d", c.rows, len(p.swiglus), c.want*cfg.Layers)
		}
		// Each layer: q/k/v as one group; gate and up grouped only where no SwiGLU took them.
		if want := cfg.Layers * (2 - c.want); c.rows == 1 && len(p.groups) != want {
			t.Fatalf("rows %d: %d groups, want %d", c.rows, len(p.groups), want)
		}
		if want := cfg.Layers * (1 - c.want); c.rows == 1 && len(p.siluLinears) != want {
			t.Fatalf("rows %d: %d down GEMVs form SiLU·mul, want %d", c.rows, len(p.siluLinears), want)
		}
		last := p.lifetimes(g)
		for mul, s := range p.swiglus {
			checkSwiGLU(t, g, p, last, mul, s)
		}
	}
}

// checkSwiGLU checks one SwiGLU GEMV of TestFindSwiGLUs' plan.
func checkSwiGLU(t *testing.T, g *graph.Graph, p *graphPlan, last []int, mul int, s swiGLU) {
	t.Helper()
	gl, ul := g.Nodes[s.gate].Label, g.Nodes[s.up].Label
	if !strings.HasSuffix(gl, "/gate") || !strings.HasSuffix(ul, "/up") {
		t.Fatalf("%%%d: gate %q, up %q", mul, gl, ul)
	}
	for _, v := range []graph.Value{s.gate, s.up} {
		if !p.fused[v] || p.at[v].size != 0 {
			t.Fatalf("%%%d: Linear %%%d not fused (%+v)", mul, v, p.at[v])
		}
		if _, grouped := p.groupLead[int(v)]; grouped || p.groups[int(v)] != nil {
			t.Fatalf("%%%d: Linear %%%d also in a group", mul, v)
		}
	}
	if _, ok := p.siluMuls[mul]; ok || p.fused[graph.Value(mul)] || p.at[mul].size == 0 {
		t.Fatalf("%%%d: the Mul is a SiLU·mul dispatch or has no storage (%+v)", mul, p.at[mul])
	}
	reads := p.reads(mul)
	n, normed := p.normed[int(s.gate)]
	if !normed || len(reads) != 2 || reads[0] != n.x || reads[1] != n.gain {
		t.Fatalf("%%%d reads %v, want the norm's input and gain (normed %v)", mul, reads, normed)
	}
	out := p.at[mul]
	for _, r := range reads {
		if last[p.root[r]] < mul {
			t.Fatalf("%%%d reads %%%d after its last use", mul, r)
		}
		if in := p.at[p.root[r]]; in.size > 0 && in.slab == out.slab {
			t.Fatalf("%%%d reads %%%d from its result's buffer", mul, r)
		}
	}
	for i, sl := range p.siluLinears {
		if sl.a == s.gate || int(g.Nodes[i].Inputs[0]) == mul {
			t.Fatalf("down GEMV %%%d forms SiLU·mul of SwiGLU %%%d", i, mul)
		}
	}
}
