package gpu

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
)

var testLimits = arenaLimits{align: 256, maxBinding: 1 << 30, maxSlab: 1 << 30}

// checkDisjoint fails if two spans live at the same time share a byte, or an offset is unaligned.
func checkDisjoint(t *testing.T, spans []span, at []place, lim arenaLimits, slabs []int64) {
	t.Helper()
	for i, a := range at {
		if a.off%lim.align != 0 {
			t.Errorf("span %d at offset %d, not a multiple of %d", i, a.off, lim.align)
		}
		if a.off+a.size > slabs[a.slab] || a.size != spans[i].size {
			t.Errorf("span %d (%d bytes) placed at %+v, slab of %d", i, spans[i].size, a, slabs[a.slab])
		}
		for j := i + 1; j < len(at); j++ {
			b := at[j]
			live := spans[i].first <= spans[j].last && spans[j].first <= spans[i].last
			if live && a.slab == b.slab && a.off < b.off+b.size && b.off < a.off+a.size {
				t.Errorf("spans %d %+v and %d %+v are live together and overlap: %+v, %+v", i, spans[i], j, spans[j], a, b)
			}
		}
	}
}

func TestPackArenaRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 1 + rng.IntN(40)
		spans := make([]span, n)
		var sum int64
		for i := range spans {
			first := rng.IntN(50)
			spans[i] = span{first: first, last: first + rng.IntN(10), size: 16 * int64(1+rng.IntN(100))}
			sum += alignUp(spans[i].size, 256)
		}
		lim := testLimits
		if trial%2 == 1 {
			lim.maxSlab = 4096 // forces several slabs
		}
		at, slabs, err := packArena(spans, lim)
		if err != nil {
			t.Fatal(err)
		}
		checkDisjoint(t, spans, at, lim, slabs)
		var total int64
		for _, s := range slabs {
			if s > lim.maxSlab {
				t.Fatalf("slab of %d bytes, limit %d", s, lim.maxSlab)
			}
			total += s
		}
		if total > sum {
			t.Fatalf("arena %d bytes, more than every span apart (%d)", total, sum)
		}
	}
}

func TestPackArenaReuses(t *testing.T) {
	// A chain a → b → c → d: each buffer dies when the next is made, so two slots suffice.
	spans := []span{{0, 1, 1000}, {1, 2, 1000}, {2, 3, 1000}, {3, 4, 1000}}
	at, slabs, err := packArena(spans, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(slabs) != 1 || slabs[0] != 1024+1000 {
		t.Fatalf("slabs %v (places %v), want one of 2024 bytes", slabs, at)
	}
}

func TestPackArenaLimits(t *testing.T) {
	lim := arenaLimits{align: 256, maxBinding: 4096, maxSlab: 8192}
	if _, _, err := packArena([]span{{0, 0, 4112}}, lim); err == nil || !strings.Contains(err.Error(), "binding") {
		t.Fatalf("a span over maxBinding: got %v", err)
	}
	// Three live 4 KiB buffers cannot share one 8 KiB slab.
	at, slabs, err := packArena([]span{{0, 2, 4096}, {0, 2, 4096}, {0, 2, 4096}}, lim)
	if err != nil {
		t.Fatal(err)
	}
	if len(slabs) != 2 {
		t.Fatalf("slabs %v, places %v: want 2", slabs, at)
	}
}

// paddedTo16 pads K as a q4 weight's device rows do (16 bytes = 32 codes).
func paddedTo16(g *graph.Graph) func(int) int {
	return func(i int) int {
		K := g.Nodes[g.Nodes[i].Inputs[1]].Shape[1]
		return (K + 31) / 32 * 32
	}
}

// TestPlanGraphCases plans every graph of the conformance suite and checks the invariants the
// js side relies on.
func TestPlanGraphCases(t *testing.T) {
	for _, c := range backendtest.GraphCases(rand.New(rand.NewPCG(3, 4)), nil) {
		g := c.Graph
		p, err := planGraph(g, paddedTo16(g), testLimits)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		checkDisjoint(t, p.spans, p.placed, testLimits, p.slabs)
		for i, n := range g.Nodes {
			if !p.needed[i] || p.fused[graph.Value(i)] {
				continue // a fused op has no storage and no dispatch of its own
			}
			r := p.root[i]
			if n.Op == graph.OpReshape && r != p.root[n.Inputs[0]] {
				t.Errorf("%s: reshape %%%d is not a view of %%%d", c.Name, i, n.Inputs[0])
			}
			stored := p.at[r].size > 0
			switch {
			case g.Nodes[r].Op == graph.OpWeight:
				if stored != p.dense[r] {
					t.Errorf("%s: weight %%%d stored %v, dense %v", c.Name, r, stored, p.dense[r])
				}
			case !stored || p.at[r].size < int64(4*n.Shape.Size()):
				t.Errorf("%s: %%%d (%s %s) has %d bytes", c.Name, i, n.Op, n.Shape, p.at[r].size)
			}
			for slot, in := range n.Inputs {
				if in == graph.None || g.Nodes[in].Op != graph.OpWeight {
					continue
				}
				direct := (n.Op == graph.OpLinear && slot == 1) || (n.Op == graph.OpGather && slot == 0)
				if !direct && !p.dense[in] {
					t.Errorf("%s: %s reads weight %%%d as a value, but it is not dense", c.Name, n.Op, in)
				}
			}
			if n.Op == graph.OpLinear {
				K := g.Nodes[n.Inputs[1]].Shape[1]
				if (K%32 != 0) != (p.pad[i].size > 0) {
					t.Errorf("%s: linear K=%d: pad %+v", c.Name, K, p.pad[i])
				}
			}
			checkUsage(t, c.Name, g, p, i)
		}
	}
}

// checkUsage fails if a dispatch of node i would bind one arena buffer both as an operand and
// as its result (WebGPU rejects that whatever the ranges).
func checkUsage(t *testing.T, name string, g *graph.Graph, p *graphPlan, i int) {
	t.Helper()
	n := &g.Nodes[i]
	if p.root[i] != graph.Value(i) || n.Op == graph.OpInput || n.Op == graph.OpConst || n.Op == graph.OpWeight {
		return
	}
	slabOf := func(v graph.Value) int {
		if v == graph.None || p.at[p.root[v]].size == 0 {
			return constSlab // absent, or a weight read from its own buffers
		}
		return p.at[p.root[v]].slab
	}
	type use struct {
		what   string
		reads  []int
		writes int
	}
	var uses []use
	switch {
	case n.Op == graph.OpLinear && p.pad[i].size > 0:
		uses = []use{
			{"pad", []int{slabOf(n.Inputs[0])}, p.pad[i].slab},
			{"matmul", []int{p.pad[i].slab}, p.at[i].slab},
			{"bias", []int{slabOf(n.Inputs[2])}, p.at[i].slab},
		}
	case n.Op == graph.OpLinear:
		uses = []use{{"matmul", []int{slabOf(n.Inputs[0])}, p.at[i].slab}, {"bias", []int{slabOf(n.Inputs[2])}, p.at[i].slab}}
	default:
		u := use{what: n.Op.String(), writes: p.at[i].slab}
		for _, in := range append(slices.Clone(n.Inputs), p.reads(i)...) {
			u.reads = append(u.reads, slabOf(in))
		}
		uses = []use{u}
	}
	for _, u := range uses {
		if u.writes != constSlab && slices.Contains(u.reads, u.writes) {
			t.Errorf("%s: %%%d %s: its %s dispatch reads and writes slab %d", name, i, n.Op, u.what, u.writes)
		}
	}
}

func TestPlanGraphLiveness(t *testing.T) {
	g := graph.New("chain")
	x := g.Input("x", graph.Float32, 64)
	a := g.ReLU("a", x)
	b := g.Tanh("b", a)
	c := g.SiLU("c", b)
	dead := g.GELU("dead", c)
	_ = g.Scale("dead2", dead, 2)
	d := g.Reshape("d", g.Scale("s", c, 2), 8, 8)
	e := g.Tanh("e", d)
	if err := g.Output(e, x); err != nil {
		t.Fatal(err)
	}
	p, err := planGraph(g, nil, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if p.needed[dead] || p.at[dead].size != 0 {
		t.Fatalf("dead node: needed %v, place %+v", p.needed[dead], p.at[dead])
	}
	// x is an output: it lives to the end, so nothing may reuse its bytes.
	for i := range g.Nodes {
		if i != int(x) && p.at[i].size > 0 && p.at[i].slab == p.at[x].slab && p.at[i].off == p.at[x].off {
			t.Fatalf("%%%d reuses the bytes of output x", i)
		}
	}
	// a, b, c, s, e: a chain of 256-byte values alternating between two colours; with x,
	// three slots suffice.
	var total int64
	for _, s := range p.slabs {
		total += s
	}
	if len(p.slabs) != 2 || total > 3*256 {
		t.Fatalf("arena %v, want two slabs, ≤ 3 slots of 256 bytes in all: %+v", p.slabs, p.at)
	}
}

func TestPlanGraphTooLarge(t *testing.T) {
	g := graph.New("big")
	x := g.Input("x", graph.Float32, 4096)
	if err := g.Output(g.ReLU("y", x)); err != nil {
		t.Fatal(err)
	}
	_, err := planGraph(g, nil, arenaLimits{align: 256, maxBinding: 8192, maxSlab: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "binding") || !strings.Contains(err.Error(), `"big"`) {
		t.Fatalf("got %v, want a binding-size error naming the graph", err)
	}
}

func TestMergeDims(t *testing.T) {
	for _, c := range []struct {
		dims, a, b []int
		wd, wa, wb []int
	}{
		// Dense on both sides: one dimension.
		{[]int{2, 3, 4}, []int{12, 4, 1}, []int{12, 4, 1}, []int{24}, []int{1}, []int{1}},
		// b broadcasts along the middle: nothing merges across it.
		{[]int{2, 3, 4}, []int{12, 4, 1}, []int{4, 0, 1}, []int{2, 3, 4}, []int{12, 4, 1}, []int{4, 0, 1}},
		// Size-1 dimensions vanish; a scalar keeps one.
		{[]int{1, 5, 1}, []int{5, 1, 1}, []int{0, 0, 0}, []int{5}, []int{1}, []int{0}},
		{[]int{1, 1}, []int{1, 1}, []int{1, 1}, []int{1}, []int{0}, []int{0}},
		// A transpose [2,3,4] → perm (0,2,1): the leading 2 stays apart.
		{[]int{2, 4, 3}, []int{12, 1, 4}, []int{12, 3, 1}, []int{2, 4, 3}, []int{12, 1, 4}, []int{12, 3, 1}},
	} {
		d, s := mergeDims(c.dims, c.a, c.b)
		if !slices.Equal(d, c.wd) || !slices.Equal(s[0], c.wa) || !slices.Equal(s[1], c.wb) {
			t.Errorf("mergeDims(%v, %v, %v) = %v %v, want %v %v %v", c.dims, c.a, c.b, d, s, c.wd, c.wa, c.wb)
		}
	}
}

func TestNormWorkgroup(t *testing.T) {
	defer func(wg int) { softwareRowWG = wg }(softwareRowWG)
	softwareRowWG = 4
	for _, c := range []struct{ d, limit, want int }{
		{4096, 1024, 1024}, // a decode step's norm: 4 elements a thread, one round
		{4096, 256, 256},   // WebGPU's default limit
		{4096, 768, 512},   // a limit that is not a power of two
		{768, 1024, 256},
		{5, 1024, 32},
		{1 << 20, 4096, 1024},
	} {
		if got := normWorkgroup(c.d, false, c.limit); got != c.want {
			t.Errorf("normWorkgroup(%d, hardware, limit %d) = %d, want %d", c.d, c.limit, got, c.want)
		}
	}
	if got := normWorkgroup(4096, true, 1024); got != 4 {
		t.Errorf("normWorkgroup on a software adapter = %d, want softwareRowWG's 4", got)
	}
}
