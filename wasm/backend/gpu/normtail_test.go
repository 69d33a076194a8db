package gpu

import (
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestFindNormTails: the RMSNorm of a residual Linear's sum that only GEMVs read is written by
// that GEMV (one norm a sum; none without lim.normTail, of a value no GEMV sums, or of one an
// output or a non-Linear reads), its readers normalize with its sums (p.normed, part), and it
// lives from the Add's dispatch on without sharing bytes there, in another buffer than what that
// dispatch reads. In the decoder every norm but the first layer's and the head's (of the last
// row, a slice) is such a norm, unless the GEMVs normalize their x.
func TestFindNormTails(t *testing.T) {
	g := graph.New("tails")
	x := g.Input("x", graph.Float32, 1, 64)
	r := g.Input("r", graph.Float32, 1, 32)
	gain := g.Input("gain", graph.Float32, 32)
	h := g.Add("h", r, g.Linear("fc", x, g.Weight("w", 32, 64), graph.None))
	n := g.RMSNorm("n", h, gain, 1e-5)
	n2 := g.RMSNorm("n2", h, gain, 1e-6)
	m := g.RMSNorm("m", r, gain, 1e-5)
	o := g.Linear("o", n, g.Weight("w2", 32, 32), graph.None)
	o2 := g.Linear("o2", n, g.Weight("w2", 32, 32), graph.None)
	// A sum whose norm a non-Linear reads too.
	h3 := g.Add("h3", r, g.Linear("fc3", x, g.Weight("w", 32, 64), graph.None))
	n3 := g.RMSNorm("n3", h3, gain, 1e-5)
	if err := g.Output(h, n2, m, o, o2, g.Scale("s3", n3, 2), g.Linear("o3", n3, g.Weight("w2", 32, 32), graph.None)); err != nil {
		t.Fatal(err)
	}
	padded := func(i int) int { return g.Nodes[g.Nodes[i].Inputs[1]].Shape[1] }
	p, err := planGraph(g, padded, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.normTails) != 0 {
		t.Fatalf("%d norm tails without lim.normTail", len(p.normTails))
	}
	lim := testLimits
	lim.normTail = func(int, bool) (tailForm, bool) { return tailForm{}, true }
	if p, err = planGraph(g, padded, lim); err != nil {
		t.Fatal(err)
	}
	if len(p.normTails) != 1 || p.normTails[int(h)].norm != n || p.tailOf[int(n)] != int(h) || p.normTails[int(h)].eps != 1e-5 {
		t.Fatalf("norm tails %+v (of %v), want n (%d) at h (%d)", p.normTails, p.tailOf, n, h)
	}
	for _, l := range []graph.Value{o, o2} {
		if nl, ok := p.normed[int(l)]; !ok || !nl.part || nl.x != n || nl.gain != gain || p.fused[n] {
			t.Fatalf("%%%d reads n as %+v (%v; n fused %v), want its sums", l, nl, ok, p.fused[n])
		}
	}
	if c := sharers(p, p.at[n], int(h), p.lifetimes(g)[n]); c != 0 {
		t.Fatalf("n shares its bytes with %d values from h on", c)
	}
	for _, v := range []graph.Value{x, r, h} {
		if p.at[v].slab == p.at[n].slab {
			t.Fatalf("n in slab %d with %%%d, which h's dispatch binds", p.at[n].slab, v)
		}
	}
	for _, reader := range []bool{false, true} {
		lim.normTail = func(_ int, r bool) (tailForm, bool) { return tailForm{}, r != reader }
		if p, err = planGraph(g, padded, lim); err != nil || len(p.normTails) != 0 || len(p.normed) != 0 {
			t.Fatalf("%v, %d norm tails, %d normalizing GEMVs where the device takes no %v", err, len(p.normTails), len(p.normed), map[bool]string{false: "writer", true: "reader"}[reader])
		}
	}

	c, dg := decoderGraph(t, 1)
	lim.normTail = func(int, bool) (tailForm, bool) { return tailForm{}, true }
	dpad := func(i int) int { return dg.Nodes[dg.Nodes[i].Inputs[1]].Shape[1] }
	if p, err = planGraph(dg, dpad, lim); err != nil || len(p.normTails) != 2*c.Layers-1 {
		t.Fatalf("decoder: %v, %d norm tails, want %d", err, len(p.normTails), 2*c.Layers-1)
	}
	lim.gemvNorm = true
	if p, err = planGraph(dg, dpad, lim); err != nil || len(p.normTails) != 0 {
		t.Fatalf("decoder, norms inside the GEMVs: %v, %d norm tails, want 0", err, len(p.normTails))
	}
}

// TestFindNormTailsA8: with int8 activations the norms stay inside the GEMVs that read them, and
// the residual GEMV before writes their activation blocks: in the decoder every norm after a
// residual Linear whose readers take blocks for one kind of codes; the readers marked (part, x
// the norm's input), the norm given no value; none where the readers' codes differ, where the
// writer is not a8, or where the norms are dispatches.
func TestFindNormTailsA8(t *testing.T) {
	c, dg := decoderGraph(t, 1)
	dpad := func(i int) int { return dg.Nodes[dg.Nodes[i].Inputs[1]].Shape[1] }
	lim := testLimits
	lim.gemvNorm = true
	q8 := tailForm{a8: true, bits: 8}
	lim.normTail = func(_ int, reader bool) (tailForm, bool) {
		if reader {
			return q8, true
		}
		return tailForm{a8: true}, true
	}
	p, err := planGraph(dg, dpad, lim)
	if err != nil || len(p.normTails) != 2*c.Layers-1 || len(p.tailOf) != 0 {
		t.Fatalf("decoder: %v, %d norm tails (%d with values), want %d (0)", err, len(p.normTails), len(p.tailOf), 2*c.Layers-1)
	}
	for _, nt := range p.normTails {
		if nt.form != q8 || !p.fused[nt.norm] {
			t.Fatalf("tail %+v: form %+v, norm fused %v", nt, nt.form, p.fused[nt.norm])
		}
		for _, r := range nt.readers {
			nl := p.normed[r]
			if !nl.part || nl.norm != nt.norm || nl.x != dg.Nodes[nt.norm].Inputs[0] {
				t.Fatalf("reader %%%d of %%%d: %+v", r, nt.norm, nl)
			}
		}
	}
	// Readers whose codes differ (the first Linear of each group another width).
	first := map[int]bool{}
	for _, nt := range p.normTails {
		first[nt.readers[0]] = true
	}
	lim.normTail = func(l int, reader bool) (tailForm, bool) {
		if reader && first[l] {
			return tailForm{a8: true, bits: 4}, true
		}
		if reader {
			return q8, true
		}
		return tailForm{a8: true}, true
	}
	if p, err = planGraph(dg, dpad, lim); err != nil || len(p.normTails) != 0 {
		t.Fatalf("decoder, readers of two widths: %v, %d norm tails, want 0", err, len(p.normTails))
	}
	lim.normTail = func(_ int, reader bool) (tailForm, bool) { return tailForm{a8: reader}, true }
	if p, err = planGraph(dg, dpad, lim); err != nil || len(p.normTails) != 0 {
		t.Fatalf("decoder, an f32 writer and a8 readers: %v, %d norm tails, want 0", err, len(p.normTails))
	}
	lim.gemvNorm = false
	lim.normTail = func(int, bool) (tailForm, bool) { return tailForm{a8: true}, true }
	if p, err = planGraph(dg, dpad, lim); err != nil || len(p.normTails) != 0 {
		t.Fatalf("decoder, norms as dispatches: %v, %d a8 norm tails, want 0", err, len(p.normTails))
	}
}
