//go:build js && wasm

package gpu

import (
	"fmt"
	"slices"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// fuseKVWrite lets a decoder's q/k/v GEMV write k (rotated) and v into their caches as it
// stores them, on hardware adapters (kvwrite.go; gemv_hw.wgsl and gemv_a8.wgsl with
// gemv_reduce.wgsl KV_WRITE): the cache write is no dispatch of its own. BenchmarkDecode's
// -nibble.kvwrite=false times a step without, to weigh it. forceKVWrite runs it on software
// adapters too: the tests set it, so that SwiftShader checks it.
var fuseKVWrite, forceKVWrite = true, false

// kvWriteFits is arenaLimits.kvWrite: whether Linear nodes lins (q, k, v) can be one GEMV that
// writes k and v into their caches on this device, nil where never (off, or a software
// adapter's GEMV kernel). Their weights must share a layout but for N and be one chunk each,
// q's and k's rows whole workgroups (multiLinear's groups), the GEMV key a hardware GEMV with
// an even row count (a rotated pair in one workgroup), and x, y, the norm's gain, each weight's
// codes, scales and zero points, the position and tables' range and both caches fit the
// stage's storage buffers.
func (c *compiler) kvWriteFits() func(lins []graph.Value) bool {
	b := c.p.b
	if !fuseKVWrite || b.tune.GEMVKernel != shaders.GEMVHW && !forceKVWrite {
		return nil
	}
	return func(lins []graph.Value) bool {
		w0 := c.linearWeight(lins[0])
		m := c.p.g.Nodes[lins[0]].Shape.Size() / w0.l.n
		key := keyFor(w0.l.format, w0.l.n, m, b.feat, b.tune)
		if key.Kernel != shaders.GEMVHW && key.Kernel != shaders.GEMVA8 || key.Rows%2 != 0 {
			return false
		}
		rows := 0
		for j, v := range lins {
			w := c.linearWeight(v)
			l := w.l
			l.n = w0.l.n
			if l != w0.l || len(w.chunks) != 1 || j < len(lins)-1 && w.l.n%key.Rows != 0 {
				return false
			}
			rows += w.l.n
		}
		return 6+len(lins)*weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage && rows <= b.maxRows
	}
}

// plan lays out the graph (planGraph), again without cache-writing GEMVs where the position
// and tables of one do not lie in one range of the arena (kvInputsFit).
func (c *compiler) plan(lim arenaLimits) (*graphPlan, error) {
	g := c.p.g
	paddedK := func(i int) int { return c.weights[g.Nodes[g.Nodes[i].Inputs[1]].Attr.Name].paddedK() }
	pl, err := planGraph(g, paddedK, lim)
	if err != nil || lim.kvWrite == nil {
		return pl, err
	}
	c.p.plan = pl
	if c.kvInputsFit() {
		return pl, nil
	}
	lim.kvWrite = nil
	return planGraph(g, paddedK, lim)
}

// kvInputs are the arena places of what a cache-writing GEMV reads beside x: the position and
// the tables.
func (c *compiler) kvInputs(w kvWrite) []place {
	pl := c.p.plan
	return []place{pl.at[pl.root[w.pos]], pl.at[pl.root[w.cos]], pl.at[pl.root[w.sin]]}
}

// kvInputsFit reports whether every cache-writing GEMV's position and tables lie in one arena
// slab within one binding (its binding 16); they are inputs, so they nearly always do.
func (c *compiler) kvInputsFit() bool {
	for _, w := range c.p.plan.kvWrites {
		ats := c.kvInputs(w)
		lo, hi := ats[0].off, int64(0)
		for _, at := range ats {
			if at.size == 0 || at.slab == constSlab || at.slab != ats[0].slab {
				return false
			}
			lo, hi = min(lo, at.off), max(hi, at.off+at.size)
		}
		if hi-lo > c.p.b.maxBind {
			return false
		}
	}
	return true
}

// pairable is the plan's needed nodes but for the StateWrites a q/k/v GEMV writes: those pair
// with no other write (fuse.go's findStateWritePairs).
func (c *compiler) pairable() []bool {
	out := slices.Clone(c.p.plan.needed)
	for i := range c.p.plan.kvWritten {
		out[i] = false
	}
	return out
}

// kvWriteBindings sets key's cache write for w (multiLinear's dispatch) and returns the words
// decode.wgsl's Multi takes after ybase (the caches' rows, the pairs a head, the words of the
// position and the tables in binding 16) and the bindings: the range of the position and the
// tables at 16, the caches at 17 and 18.
func (c *compiler) kvWriteBindings(w kvWrite, key *shaders.Key) ([]uint32, []webgpu.BufferBinding, error) {
	p, g := c.p, c.p.g
	var sts [2]*state
	for j, sw := range []int{w.kw, w.vw} {
		name := g.Nodes[g.Nodes[sw].Inputs[0]].Attr.Name
		if sts[j] = c.states[name]; sts[j] == nil {
			return nil, nil, fmt.Errorf("state %q not bound", name)
		}
	}
	ats := c.kvInputs(w)
	lo, hi := ats[0].off, int64(0)
	for _, at := range ats {
		lo, hi = min(lo, at.off), max(hi, at.off+at.size)
	}
	in := webgpu.BufferBinding{Binding: 16, Buffer: p.buf(ats[0]), Offset: lo, Size: hi - lo}
	key.KVWrite, key.KVF16 = true, sts[0].spec.Storage == graph.StateF16
	words := []uint32{uint32(sts[0].spec.Shape[0]), uint32(g.Nodes[w.rope].Shape[2]),
		uint32((ats[0].off - lo) / 4), uint32((ats[1].off - lo) / 4), uint32((ats[2].off - lo) / 4)}
	return words, []webgpu.BufferBinding{in, sts[0].whole(17), sts[1].whole(18)}, nil
}
