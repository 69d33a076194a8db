package gpu

import (
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
)

// TestFindRoPETables finds both rotations (q and k) of every layer of the decoder's graph, and
// none where an inner op is read by something else too.
func TestFindRoPETables(t *testing.T) {
	for _, rows := range []int{1, 16} {
		c, g := decoderGraph(t, rows)
		needed := neededNodes(g)
		got := findRoPETables(g, needed)
		if len(got) != 2*c.Layers {
			t.Fatalf("rows %d: %d rotations found, want %d", rows, len(got), 2*c.Layers)
		}
		for i, m := range got {
			if g.Nodes[m.x].Shape[3] != 2 || len(m.inner) != 8 || g.Nodes[m.cos].Op != graph.OpInput || g.Nodes[m.sin].Op != graph.OpInput {
				t.Fatalf("rows %d: rotation at %%%d: %+v", rows, i, m)
			}
			uses := readers(g, needed)
			for _, v := range m.inner {
				uses[v]++ // one more reader
				if _, ok := matchRoPETable(g, i, uses); ok {
					t.Fatalf("rows %d: %%%d matched though %%%d has another reader", rows, i, v)
				}
				uses[v]--
			}
			if _, ok := matchRoPETable(g, i, uses); !ok {
				t.Fatalf("rows %d: %%%d no longer matches", rows, i)
			}
		}
		// The plan gives the one dispatch what the ten had: its reads in other buffers than its
		// result (WebGPU's usage rule), alive until it runs.
		p, err := planGraph(g, func(i int) int { return g.Nodes[g.Nodes[i].Inputs[1]].Shape[1] }, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.ropes) != 2*c.Layers {
			t.Fatalf("rows %d: the plan has %d rotations", rows, len(p.ropes))
		}
		// Keys and values are read in place, through strides, by q·kᵀ and p·v.
		if len(p.stridedB) != 2*c.Layers {
			t.Fatalf("rows %d: %d products read B in place, want %d", rows, len(p.stridedB), 2*c.Layers)
		}
		for i, src := range p.stridedB {
			n := &g.Nodes[i]
			sb, sj, sk := bStrides(g, n, src)
			want := [3]int{c.HeadDim, c.KVHeads * c.HeadDim, 1} // kᵀ: [KV, keep, Dh] of [keep, KV, Dh]
			if !n.Attr.TransB {
				want = [3]int{c.HeadDim, 1, c.KVHeads * c.HeadDim} // v: K is keep
			}
			if [3]int{sb, sj, sk} != want {
				t.Fatalf("rows %d: %%%d strides %v, want %v", rows, i, [3]int{sb, sj, sk}, want)
			}
			if !p.fused[n.Inputs[1]] || p.at[n.Inputs[1]].size != 0 {
				t.Fatalf("rows %d: the transpose %%%d is still made", rows, n.Inputs[1])
			}
		}
		for i := range p.ropes {
			if p.fused[graph.Value(i)] {
				continue // the keys': their cache write rotates them (TestFindRotatedWrites)
			}
			out := p.at[p.root[i]]
			for _, v := range p.reads(i) {
				in := p.at[p.root[v]]
				if in.slab == out.slab {
					t.Fatalf("rows %d: rotation %%%d reads %%%d from its result's buffer (slab %d)", rows, i, v, in.slab)
				}
			}
		}
	}
}

// TestViewTranspose: a transpose that moves only axes of size 1 keeps the element order.
func TestViewTranspose(t *testing.T) {
	for _, c := range []struct {
		shape []int
		perm  []int
		view  bool
	}{
		{[]int{1, 32, 1, 128}, []int{1, 2, 0, 3}, true}, // a decode step's query heads
		{[]int{32, 1, 1, 128}, []int{2, 0, 1, 3}, true},
		{[]int{16, 32, 1, 128}, []int{1, 2, 0, 3}, false},
		{[]int{128, 32, 128}, []int{1, 0, 2}, false}, // the cache's keys
		{[]int{5, 1, 7}, []int{0, 2, 1}, true},
		{[]int{5, 7}, []int{1, 0}, false},
	} {
		g := graph.New("t")
		x := g.Input("x", graph.Float32, c.shape...)
		tr := g.Transpose("t", x, c.perm...)
		if got := viewTranspose(g, &g.Nodes[tr]); got != c.view {
			t.Errorf("%v perm %v: view %v, want %v", c.shape, c.perm, got, c.view)
		}
	}
}

// TestFindFusions: in the decoder's graph every layer's q·kᵀ runs with its scale, its SiLU
// with the product after it, and (one row: the GEMV) both residual Adds with their Linears and
// both norms inside the Linears that read them;
// each fused dispatch reads nothing from its result's buffer and nothing it reads dies early.
func TestFindFusions(t *testing.T) {
	for _, rows := range []int{1, 16} {
		c, g := decoderGraph(t, rows)
		lim := testLimits
		lim.gemvNorm = true
		p, err := planGraph(g, func(i int) int { return g.Nodes[g.Nodes[i].Inputs[1]].Shape[1] }, lim)
		if err != nil {
			t.Fatal(err)
		}
		// One row runs GEMVs: both residual Adds, and q, k, v, gate, up and the head normalizing
		// their x. A GEMM has neither epilogue nor prologue; the head reads the last row alone.
		wantRes, wantNormed := 2*c.Layers, 5*c.Layers+1
		if rows > GEMVMaxM {
			wantRes, wantNormed = 0, 1
		}
		if len(p.scaled) != c.Layers || len(p.siluMuls) != c.Layers || len(p.residuals) != wantRes || len(p.normed) != wantNormed {
			t.Fatalf("rows %d: %d scaled products, %d SiLU products, %d residual Linears, %d normalizing; want %d, %d, %d, %d",
				rows, len(p.scaled), len(p.siluMuls), len(p.residuals), len(p.normed), c.Layers, c.Layers, wantRes, wantNormed)
		}
		var fusedAt []int
		for i, s := range p.scaled {
			if !p.fused[s.mm] || p.at[s.mm].size != 0 {
				t.Fatalf("rows %d: the product %%%d is still made", rows, s.mm)
			}
			fusedAt = append(fusedAt, i)
		}
		for i := range p.siluMuls {
			fusedAt = append(fusedAt, i)
		}
		for i, r := range p.residuals {
			if !p.fused[r.lin] || p.at[r.lin].size != 0 {
				t.Fatalf("rows %d: the Linear %%%d is still made", rows, r.lin)
			}
			fusedAt = append(fusedAt, i)
		}
		for i, n := range p.normed {
			if !p.fused[n.norm] || p.at[n.norm].size != 0 {
				t.Fatalf("rows %d: the norm %%%d is still made", rows, n.norm)
			}
			fusedAt = append(fusedAt, i)
		}
		last := p.lifetimes(g)
		for _, i := range fusedAt {
			out := p.at[p.root[i]]
			for _, v := range append(slices.Clone(g.Nodes[i].Inputs), p.reads(i)...) {
				if v == graph.None || p.fused[v] {
					continue
				}
				if in := p.at[p.root[v]]; in.size > 0 && in.slab == out.slab {
					t.Fatalf("rows %d: %%%d reads %%%d from its result's buffer (slab %d)", rows, i, v, in.slab)
				}
				if last[p.root[v]] < i {
					t.Fatalf("rows %d: %%%d reads %%%d after its last use %d", rows, i, v, last[p.root[v]])
				}
			}
		}
	}
}

// decoderGraph is a small decoder's graph of rows token rows.
func decoderGraph(t *testing.T, rows int) (llama.Config, *graph.Graph) {
	t.Helper()
	c := llama.Config{Layers: 3, Hidden: 64, FFN: 128, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 50, Context: 64, Eps: 1e-5, RopeBase: 10000, RopeScale: 1}
	g, err := c.Build(rows, 16, graph.StateF16, 64, false)
	if err != nil {
		t.Fatal(err)
	}
	return c, g
}

// TestFindStatesInPlace: every cache write of the decoder's graph leaves its kept rows to the
// products (no state read, no storage), and a write whose rows something else reads too (an
// output, an elementwise op, a view of them read by such an op) keeps its read.
func TestFindStatesInPlace(t *testing.T) {
	for _, rows := range []int{1, 16} {
		c, g, p := decoderPlan(t, rows, testLimits)
		if len(p.statesInPlace) != 2*c.Layers {
			t.Fatalf("rows %d: %d states read in place, want %d", rows, len(p.statesInPlace), 2*c.Layers)
		}
		for i := range p.statesInPlace {
			if g.Nodes[i].Op != graph.OpStateWrite || p.at[i].size != 0 {
				t.Fatalf("rows %d: %%%d %s in place with storage %+v", rows, i, g.Nodes[i].Op, p.at[i])
			}
		}
	}
	for _, c := range []struct {
		name  string
		build func(g *graph.Graph, kept, q graph.Value) []graph.Value
		want  bool
	}{
		{"strided", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{g.MatMul("qk", q, g.Transpose("kt", kept, 1, 0, 2), true)}
		}, true},
		{"view", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{g.MatMul("qk", g.Reshape("q1", q, 1, 2, 8), g.Reshape("k1", kept, 1, 12, 8), true)}
		}, true},
		{"output", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{kept, g.MatMul("qk", q, g.Transpose("kt", kept, 1, 0, 2), true)}
		}, false},
		{"elementwise", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{g.Scale("half", kept, 0.5), g.MatMul("qk", q, g.Transpose("kt", kept, 1, 0, 2), true)}
		}, false},
		{"view read elsewhere", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{g.Scale("half", g.Reshape("flat", kept, 96), 0.5)}
		}, false},
		{"a operand", func(g *graph.Graph, kept, q graph.Value) []graph.Value {
			return []graph.Value{g.MatMul("kq", g.Transpose("kt", kept, 1, 0, 2), g.Transpose("qt", q, 0, 2, 1), false)}
		}, false},
	} {
		g := graph.New(c.name)
		x := g.Input("x", graph.Float32, 1, 2, 8)
		pos := g.Input("pos", graph.Int32, 1)
		q := g.Input("q", graph.Float32, 2, 1, 8)
		kept := g.StateWrite("write", g.State("cache", graph.StateF16, 20, 2, 8), x, pos, 6)
		if err := g.Output(c.build(g, kept, q)...); err != nil {
			t.Fatal(err)
		}
		needed := neededNodes(g)
		got := findStatesInPlace(g, needed, findStridedB(g, needed, readers(g, needed)))
		if got[int(kept)] != c.want {
			t.Errorf("%s: in place %v, want %v", c.name, got[int(kept)], c.want)
		}
	}
}

// TestFindLinearGroups: in the decoder's one-row graph q, k and v are one group and gate and up
// another in every layer (pairs where a dispatch takes two weights), the other members' results
// live from the group's first Linear and the plan keeps them apart from what it reads; prefill's
// GEMMs, and an adapter without the kernel, have none.
func TestFindLinearGroups(t *testing.T) {
	for _, c := range []struct {
		rows, weights int
		sizes         []int // per layer
	}{{1, 3, []int{3, 2}}, {1, 2, []int{2, 2}}, {1, 0, nil}, {16, 3, nil}} {
		lim := testLimits
		lim.gemvNorm, lim.gemvWeights = true, c.weights
		cfg, g, p := decoderPlan(t, c.rows, lim)
		var sizes []int
		for _, lins := range p.groups {
			sizes = append(sizes, len(lins))
		}
		slices.Sort(sizes)
		var want []int
		for range cfg.Layers {
			want = append(want, c.sizes...)
		}
		slices.Sort(want)
		if !slices.Equal(sizes, want) {
			t.Fatalf("rows %d, %d weights: group sizes %v, want %v", c.rows, c.weights, sizes, want)
		}
		last := p.lifetimes(g)
		for lead, lins := range p.groups {
			x := g.Nodes[lead].Inputs[0]
			for j, v := range lins {
				if g.Nodes[v].Inputs[0] != x || (j > 0 && p.groupLead[int(v)] != lead) || (j > 0 && v <= lins[j-1]) {
					t.Fatalf("rows %d: group %v of %%%d", c.rows, lins, lead)
				}
				// Written at the lead: no value the dispatch reads shares its result's buffer,
				// and its span starts there.
				out := p.at[v]
				for _, r := range append([]graph.Value{x}, p.reads(lead)...) {
					if in := p.at[p.root[r]]; in.size > 0 && in.slab == out.slab {
						t.Fatalf("rows %d: group %v reads %%%d from %%%d's buffer", c.rows, lins, r, v)
					}
				}
				if n := sharers(p, out, lead, last[v]); n != 0 {
					t.Fatalf("rows %d: %%%d of group %%%d shares its bytes with %d other values from the lead on", c.rows, v, lead, n)
				}
				if last[p.root[x]] < int(v) {
					t.Fatalf("rows %d: x of %%%d dies at %d", c.rows, v, last[p.root[x]])
				}
			}
		}
	}
}

// TestGroupMemberLivesFromLead: a value made and dropped between a group's first Linear and
// another member (t, read by u alone) must not take the member's bytes, which the group's
// dispatch wrote before it.
func TestGroupMemberLivesFromLead(t *testing.T) {
	g := graph.New("group")
	x := g.Input("x", graph.Float32, 1, 64)
	yin := g.Input("y", graph.Float32, 1, 32)
	a := g.Linear("a", x, g.Weight("wa", 32, 64), graph.None)
	tv := g.Scale("t", yin, 2)
	u := g.Scale("u", tv, 3)
	c := g.Linear("c", x, g.Weight("wc", 32, 64), graph.None)
	if err := g.Output(a, u, c); err != nil {
		t.Fatal(err)
	}
	lim := testLimits
	lim.gemvWeights = 3
	p, err := planGraph(g, func(i int) int { return 64 }, lim)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.groups[int(a)], []graph.Value{a, c}) {
		t.Fatalf("groups %v, want [%d %d] at %d", p.groups, a, c, a)
	}
	if n := sharers(p, p.at[c], int(a), p.lifetimes(g)[c]); n != 0 {
		t.Fatalf("c shares its bytes with %d values from a on", n)
	}
}

// sharers counts the arena spans other than the value's own (at out, living until last) that
// share out's bytes at some node of [first, last].
func sharers(p *graphPlan, out place, first, last int) int {
	n := 0
	own := false
	for si, s := range p.spans {
		at := p.placed[si]
		if at == out && s.last == last && !own {
			own = true
			continue
		}
		if at.slab == out.slab && at.off < out.off+out.size && out.off < at.off+at.size && s.first <= last && first <= s.last {
			n++
		}
	}
	return n
}

// TestFindSoftmaxProducts: every layer's p·v of the decoder normalizes the scores itself (its
// softmax and the view after it have no storage, and the product reads the scores and the
// mask); a softmax something else reads too, or over another axis than K, stays.
func TestFindSoftmaxProducts(t *testing.T) {
	for _, rows := range []int{1, 16} {
		lim := testLimits
		lim.softmaxProducts = true
		c, g, p := decoderPlan(t, rows, lim)
		if len(p.softmaxes) != c.Layers {
			t.Fatalf("rows %d: %d softmax products, want %d", rows, len(p.softmaxes), c.Layers)
		}
		last := p.lifetimes(g)
		for i, sm := range p.softmaxes {
			if !p.fused[sm.softmax] || p.at[sm.softmax].size != 0 || sm.mask == graph.None || len(sm.views) != 1 {
				t.Fatalf("rows %d: %%%d: %+v", rows, i, sm)
			}
			for _, v := range []graph.Value{sm.x, sm.mask} {
				if last[p.root[v]] < i {
					t.Fatalf("rows %d: %%%d reads %%%d after its last use", rows, i, v)
				}
			}
		}
	}
	for _, c := range []struct {
		name string
		a    func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value)
		want bool
	}{
		{"masked", func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value) {
			return g.Softmax("p", s, m), nil
		}, true},
		{"plain through a view", func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value) {
			return g.Reshape("flat", g.Softmax("p", s, graph.None), 2, 3, 5), nil
		}, true},
		{"read twice", func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value) {
			p := g.Softmax("p", s, m)
			return p, []graph.Value{g.Scale("twice", p, 2)}
		}, false},
		{"an output", func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value) {
			p := g.Softmax("p", s, m)
			return p, []graph.Value{p}
		}, false},
		{"K is not the softmax's axis", func(g *graph.Graph, s, m graph.Value) (graph.Value, []graph.Value) {
			return g.Reshape("other", g.Softmax("p", s, m), 2, 5, 3), nil
		}, false},
	} {
		g := graph.New(c.name)
		s := g.Input("s", graph.Float32, 2, 3, 5)
		m := g.Input("m", graph.Float32, 3, 5)
		a, more := c.a(g, s, m)
		bs := g.Node(a).Shape
		b := g.Input("b", graph.Float32, 2, bs[2], 4)
		if err := g.Output(append(more, g.MatMul("pv", a, b, false))...); err != nil {
			t.Fatal(err)
		}
		needed := neededNodes(g)
		got := findSoftmaxProducts(g, needed, readers(g, needed))
		if (len(got) == 1) != c.want {
			t.Errorf("%s: %d softmax products, want one: %v", c.name, len(got), c.want)
		}
	}
}

// TestFindStateWritePairs: every layer's key and value writes pair up; writes at other
// positions, of other formats, or whose second x is made after the first write, do not.
func TestFindStateWritePairs(t *testing.T) {
	for _, rows := range []int{1, 16} {
		c, g := decoderGraph(t, rows)
		got := findStateWritePairs(g, neededNodes(g), nil)
		if len(got) != c.Layers {
			t.Fatalf("rows %d: %d pairs, want %d", rows, len(got), c.Layers)
		}
		for i, j := range got {
			if !strings.HasSuffix(g.Nodes[i].Label, "k_cache") || !strings.HasSuffix(g.Nodes[j].Label, "v_cache") {
				t.Fatalf("rows %d: %s with %s", rows, g.Nodes[i].Label, g.Nodes[j].Label)
			}
		}
	}
	for _, c := range []struct {
		name           string
		second         graph.StateFormat
		otherPos, late bool // the second at another position; its x made after the first write
		want           int
	}{
		{"pair", graph.StateF16, false, false, 1},
		{"other position", graph.StateF16, true, false, 0},
		{"other format", graph.StateInt8, false, false, 0},
		{"x made after the first", graph.StateF16, false, true, 0},
	} {
		g := graph.New(c.name)
		pos, pos2 := g.Input("pos", graph.Int32, 1), g.Input("pos2", graph.Int32, 1)
		x, y := g.Input("x", graph.Float32, 1, 2, 4), g.Input("y", graph.Float32, 1, 2, 4)
		a := g.StateWrite("a", g.State("a", graph.StateF16, 8, 2, 4), x, pos, 4)
		if c.otherPos {
			pos = pos2
		}
		if c.late {
			y = g.Scale("late", x, 2)
		}
		if err := g.Output(a, g.StateWrite("b", g.State("b", c.second, 8, 2, 4), y, pos, 4)); err != nil {
			t.Fatal(err)
		}
		if got := findStateWritePairs(g, neededNodes(g), nil); len(got) != c.want {
			t.Errorf("%s: %d pairs, want %d", c.name, len(got), c.want)
		}
	}
}

// TestFindRotatedReads: every layer's key rotation runs inside its cache write and, in a decode
// step (where the query's head transpose is a view), the query's inside q·kᵀ (no storage, no
// dispatch; the reader reads the rotation's x and tables, alive until then); a rotation
// something else reads too stays.
func TestFindRotatedReads(t *testing.T) {
	for _, rows := range []int{1, 16} {
		c, g, p := decoderPlan(t, rows, testLimits)
		want := c.Layers
		if rows == 1 {
			want *= 2
		}
		if len(p.rotatedReads) != want {
			t.Fatalf("rows %d: %d rotated reads, want %d", rows, len(p.rotatedReads), want)
		}
		last := p.lifetimes(g)
		for i, r := range p.rotatedReads {
			l := g.Nodes[i].Label
			if !(strings.HasSuffix(l, "k_cache") || strings.HasSuffix(l, "/qk")) || !p.fused[graph.Value(r)] || p.at[r].size != 0 {
				t.Fatalf("rows %d: %s rotates %%%d (%+v)", rows, g.Nodes[i].Label, r, p.at[r])
			}
			for _, v := range p.reads(i) {
				if last[p.root[v]] < i {
					t.Fatalf("rows %d: %s reads %%%d after its last use", rows, g.Nodes[i].Label, v)
				}
			}
		}
	}
	g := graph.New("read twice")
	x := g.Input("x", graph.Float32, 1, 2, 4)
	cos, sin := g.Input("cos", graph.Float32, 1, 1, 2, 1), g.Input("sin", graph.Float32, 1, 1, 2, 1)
	rot := tableRotate(g, x, cos, sin)
	w := g.StateWrite("w", g.State("s", graph.StateF16, 8, 2, 4), rot, g.Input("pos", graph.Int32, 1), 4)
	if err := g.Output(w, g.Scale("also", rot, 2)); err != nil {
		t.Fatal(err)
	}
	needed := neededNodes(g)
	uses := readers(g, needed)
	ropes := findRoPETables(g, needed)
	if len(ropes) != 1 {
		t.Fatalf("%d rotations, want 1", len(ropes))
	}
	if got := findRotatedReads(g, needed, uses, ropes, nil); len(got) != 0 {
		t.Errorf("a rotation read twice runs inside the write: %v", got)
	}
}

// tableRotate is a rotation of x [rows, heads, Dh]'s adjacent pairs by cos and sin
// [rows, 1, Dh/2, 1] in the ten graph ops wasm/model/llama writes (fuse.go's tableRotation).
func tableRotate(g *graph.Graph, x, cos, sin graph.Value) graph.Value {
	s := g.Node(x).Shape
	xp := g.Reshape("pairs", x, s[0], s[1], s[2]/2, 2)
	x0, x1 := g.Slice("x0", xp, 3, 0, 1), g.Slice("x1", xp, 3, 1, 2)
	y0 := g.Sub("y0", g.Mul("x0c", x0, cos), g.Mul("x1s", x1, sin))
	y1 := g.Add("y1", g.Mul("x0s", x0, sin), g.Mul("x1c", x1, cos))
	return g.Reshape("heads", g.Concat("join", 3, y0, y1), s...)
}

// decoderPlan is decoderGraph's plan under lim, with every Linear's x as it is.
func decoderPlan(t *testing.T, rows int, lim arenaLimits) (llama.Config, *graph.Graph, *graphPlan) {
	t.Helper()
	c, g := decoderGraph(t, rows)
	p, err := planGraph(g, func(i int) int { return g.Nodes[g.Nodes[i].Inputs[1]].Shape[1] }, lim)
	if err != nil {
		t.Fatal(err)
	}
	return c, g, p
}

// TestFindSiLULinears: in a decode step every layer's down GEMV forms SiLU(gate)·up as it loads
// x (the Mul has no storage; the GEMV reads gate and up, alive until then); prefill's GEMMs and
// adapters without gemv_hw.wgsl's SILU_X keep the dispatch.
func TestFindSiLULinears(t *testing.T) {
	for _, c := range []struct {
		rows int
		on   bool
		want int // per layer
	}{{1, true, 1}, {16, true, 0}, {1, false, 0}} {
		lim := testLimits
		lim.gemvSiLU = c.on
		cfg, g, p := decoderPlan(t, c.rows, lim)
		if len(p.siluLinears) != c.want*cfg.Layers {
			t.Fatalf("rows %d, on %v: %d SiLU Linears, want %d", c.rows, c.on, len(p.siluLinears), c.want*cfg.Layers)
		}
		last := p.lifetimes(g)
		for i, s := range p.siluLinears {
			x := g.Nodes[i].Inputs[0]
			if !strings.HasSuffix(g.Nodes[i].Label, "/down") || !p.fused[x] || p.at[x].size != 0 {
				t.Fatalf("rows %d: %s reads %%%d (%+v)", c.rows, g.Nodes[i].Label, x, p.at[x])
			}
			for _, v := range []graph.Value{s.a, s.b} {
				if last[p.root[v]] < i {
					t.Fatalf("rows %d: %s reads %%%d after its last use", c.rows, g.Nodes[i].Label, v)
				}
			}
		}
	}
}
