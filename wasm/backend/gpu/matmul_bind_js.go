//go:build js && wasm

package gpu

import (
	"fmt"
	"math"
	"strings"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// boundMatMul is x·wᵀ bound to buffer ranges its caller owns, built once and recorded into any
// number of compute passes. MatMul owns its x, y and params buffers and submits alone; a graph
// program records many matmuls into one pass over its own arena, so it needs the dispatches
// without the buffers.
type boundMatMul struct {
	key    shaders.Key
	pl     *webgpu.ComputePipeline
	groups []*webgpu.BindGroup
	rows   []int // weight rows of each chunk
	m      int   // activation rows: with rows, the grid
	// K split across workgroups (key.KSlices > 1): the sum of the slices' partial products
	// after each chunk's dispatch (gemm_reduce.wgsl), one bind group per chunk.
	reduce  *webgpu.ComputePipeline
	rgroups []*webgpu.BindGroup
}

// matmulParams is the uniform block (decode.wgsl's Params) of each chunk of w for m rows, for the
// caller to write where bindMatMul's params ranges point.
func (w *weight) matmulParams(m int) []paramBlock {
	out := make([]paramBlock, len(w.chunks))
	for i, c := range w.chunks {
		out[i] = params(w.l, c.chunk, m)
	}
	return out
}

// paddedK is the row length x must have: K padded with zeros to whole device rows of w.
func (w *weight) paddedK() int { return w.l.kp }

// bindMatMul builds the pipeline of variant key and one bind group per chunk of w for m
// activation rows. x holds m rows of w.paddedK() floats (zero past K), y receives m rows of N,
// and params[i] is a paramBytes uniform range holding w.matmulParams(m)[i]; extra bindings (a
// Residual key's res at 6) go into every chunk's group. A key split along K (KSlices > 1)
// writes its partial products to part, which must hold partBytes(key, m, w.l.n) (a chunk at a
// time: the dispatches of a pass run in order), and adds them into y in a second dispatch per
// chunk; part is unused otherwise. The caller holds b.mu (the pipeline cache).
func (b *Backend) bindMatMul(label string, w *weight, key shaders.Key, m int, x, y webgpu.BufferBinding, part *webgpu.Buffer, params []webgpu.BufferBinding, extra ...webgpu.BufferBinding) (*boundMatMul, error) {
	if len(params) != len(w.chunks) {
		return nil, fmt.Errorf("gpu: bind matmul %q: %d params ranges for %d chunks", w.name, len(params), len(w.chunks))
	}
	pl, err := b.pipeline(key)
	if err != nil {
		return nil, err
	}
	bm := &boundMatMul{key: key, pl: pl, m: m}
	x.Binding, y.Binding = 2, 3
	ty := y // where the tile kernel stores
	if need := partBytes(key, m, w.l.n); need > 0 {
		if part == nil || part.Size() < need {
			return nil, fmt.Errorf("gpu: bind matmul %q: %s needs a scratch of %d bytes for its partial products", w.name, key.Name(), need)
		}
		if bm.reduce, err = b.pipeline(reduceKey(key)); err != nil {
			return nil, err
		}
		ty = webgpu.BufferBinding{Binding: 3, Buffer: part}
	}
	for i, c := range w.chunks {
		p := params[i]
		p.Binding = 0
		if bm.reduce != nil {
			g, err := b.dev.CreateBindGroup(fmt.Sprintf("%s %s rows %d-%d sum of K slices", label, w.name, c.r0, c.r1), bm.reduce.BindGroupLayout(0),
				p, webgpu.BufferBinding{Binding: 2, Buffer: part}, y)
			if err != nil {
				return nil, err
			}
			bm.rgroups = append(bm.rgroups, g)
		}
		es := []webgpu.BufferBinding{p, {Binding: 1, Buffer: c.data}, x, ty}
		if c.scales != nil {
			es = append(es, webgpu.BufferBinding{Binding: 4, Buffer: c.scales})
		}
		if c.zeros != nil {
			es = append(es, webgpu.BufferBinding{Binding: 5, Buffer: c.zeros})
		}
		es = append(es, extra...)
		g, err := b.dev.CreateBindGroup(fmt.Sprintf("%s %s rows %d-%d", label, w.name, c.r0, c.r1), pl.BindGroupLayout(0), es...)
		if err != nil {
			return nil, err
		}
		bm.groups = append(bm.groups, g)
		bm.rows = append(bm.rows, c.r1-c.r0)
	}
	return bm, nil
}

// record appends the matmul's dispatches to pass (MatMul, the benchmarks' timed passes).
func (bm *boundMatMul) record(pass *webgpu.ComputePass) {
	var pl *webgpu.ComputePipeline
	for _, d := range bm.dispatches() {
		if d.Pipeline != pl {
			pl = d.Pipeline
			pass.SetPipeline(pl)
		}
		pass.SetBindGroup(0, d.Group)
		pass.Dispatch(d.X, d.Y, 1)
	}
}

// dispatches are the matmul's dispatches, one per chunk (two with K split across workgroups:
// the partial products, then their sum): what record records, and what a graph program's
// prepared list holds for its Linear.
func (bm *boundMatMul) dispatches() []webgpu.Dispatch {
	out := make([]webgpu.Dispatch, 0, len(bm.groups)+len(bm.rgroups))
	for i, g := range bm.groups {
		gx, gy := grid(bm.key, bm.rows[i], bm.m)
		out = append(out, webgpu.Dispatch{Pipeline: bm.pl, Group: g, X: gx, Y: gy})
		if bm.reduce != nil {
			rx, ry := grid(reduceKey(bm.key), bm.rows[i], bm.m)
			out = append(out, webgpu.Dispatch{Pipeline: bm.reduce, Group: bm.rgroups[i], X: rx, Y: ry})
		}
	}
	return out
}

// linearGroup queues the Linears of one x (fuse.go's findLinearGroups) as GEMV dispatches of
// several weights each (gemv_hw.wgsl MULTI): as many at a time as the device's storage bindings
// allow, where their weights share a layout but for N (one chunk each, every weight's rows but
// the last's a whole number of workgroups) and their results lie in one arena slab, which y
// spans; anything else runs as a Linear of its own, in the group's place.
func (c *compiler) linearGroup(lins []graph.Value) error {
	p := c.p
	for len(lins) > 0 {
		k := c.groupable(lins)
		if k < 2 {
			n := &p.g.Nodes[lins[0]]
			if err := c.linearTo(fmt.Sprintf("%%%d %s %s", lins[0], n.Op, n.Label), int(lins[0]), lins[0], graph.None); err != nil {
				return err
			}
			lins = lins[1:]
			continue
		}
		if err := c.multiLinear(lins[:k]); err != nil {
			return err
		}
		lins = lins[k:]
	}
	return nil
}

// groupable is how many of lins, from the first, one dispatch can compute (below 2: none).
func (c *compiler) groupable(lins []graph.Value) int {
	p := c.p
	w0 := c.linearWeight(lins[0])
	m := p.g.Nodes[lins[0]].Shape.Size() / w0.l.n
	key := keyFor(w0.l.format, w0.l.n, m, p.b.feat, p.b.tune)
	if key.Kernel != shaders.GEMVHW && key.Kernel != shaders.GEMVA8 {
		return 0
	}
	// Storage bindings: x, y, the norm's gain, and each weight's codes, scales and zero points.
	per := weightBuffers(key)
	fixed := 2
	if _, normed := p.plan.normed[int(lins[0])]; normed {
		fixed++
	}
	most := min(len(lins), 3, (p.b.dev.Limits().MaxStorageBuffersPerShaderStage-fixed)/per)
	at0 := p.plan.at[lins[0]]
	lo, hi, rows := at0.off, at0.off+at0.size, 0
	k := 0
	for ; k < most; k++ {
		w := c.linearWeight(lins[k])
		at := p.plan.at[lins[k]]
		l := w.l
		l.n = w0.l.n
		lo2, hi2 := min(lo, at.off), max(hi, at.off+at.size)
		if at.size == 0 && p.plan.fused[lins[k]] {
			lo2, hi2 = lo, hi // written into a cache, not y (kvwrite.go)
		} else if at.slab != at0.slab || at.slab == constSlab || hi2-lo2 > p.b.maxBind {
			break
		}
		if l != w0.l || len(w.chunks) != 1 || rows+w.l.n > p.b.maxRows {
			break
		}
		lo, hi, rows = lo2, hi2, rows+w.l.n
		if w.l.n%key.Rows != 0 {
			k++ // its rows end a group: the next weight would start mid-workgroup
			break
		}
	}
	return k
}

// linearWeight is the weight Linear node v reads.
func (c *compiler) linearWeight(v graph.Value) *weight {
	g := c.p.g
	return c.weights[g.Nodes[g.Nodes[v].Inputs[1]].Attr.Name]
}

// multiLinear queues lins (groupable) as one GEMV dispatch: the first weight at the usual
// bindings, the others' at 8-13, each weight's first row, rows and place in y at 14.
func (c *compiler) multiLinear(lins []graph.Value) error {
	p := c.p
	n0 := &p.g.Nodes[lins[0]]
	w0 := c.linearWeight(lins[0])
	K := w0.l.k
	m := n0.Shape.Size() / w0.l.n
	x := p.bind(2, n0.Inputs[0])
	nl, normed := p.plan.normed[int(lins[0])]
	if normed {
		x = p.bind(2, nl.x)
	}
	x.Size = int64(m*K) * 4
	key := keyFor(w0.l.format, w0.l.n, m, p.b.feat, p.b.tune)
	key.Weights, key.Norm = len(lins), normed
	lo, hi := p.plan.at[lins[0]].off, int64(0)
	for _, v := range lins {
		if at := p.plan.at[v]; at.size > 0 { // none: written into a cache (kvwrite.go)
			lo, hi = min(lo, at.off), max(hi, at.off+at.size)
		}
	}
	at0 := p.plan.at[lins[0]]
	y := webgpu.BufferBinding{Binding: 3, Buffer: p.buf(at0), Offset: lo, Size: hi - lo}
	// Multi's start, n and ybase, a vec4 each; start past the last weight is every row.
	multi := make([]uint32, 12)
	var extra []webgpu.BufferBinding
	rows := 0
	for j, v := range lins {
		w := c.linearWeight(v)
		multi[j], multi[4+j], multi[8+j] = uint32(rows), uint32(w.l.n), uint32(max(p.plan.at[v].off-lo, 0)/4)
		rows += w.l.n
		if j == 0 {
			continue
		}
		ch := w.chunks[0]
		extra = append(extra, webgpu.BufferBinding{Binding: 7 + j, Buffer: ch.data})
		if ch.scales != nil {
			extra = append(extra, webgpu.BufferBinding{Binding: 9 + j, Buffer: ch.scales})
		}
		if ch.zeros != nil {
			extra = append(extra, webgpu.BufferBinding{Binding: 11 + j, Buffer: ch.zeros})
		}
	}
	for j := len(lins); j < 4; j++ {
		multi[j] = uint32(rows)
	}
	what := "one GEMV"
	if kw, ok := p.plan.kvWrites[int(lins[0])]; ok {
		words, binds, err := c.kvWriteBindings(kw, &key) // kvwrite_js.go
		if err != nil {
			return err
		}
		multi, extra, what = append(multi, words...), append(extra, binds...), "one GEMV writing k and v into their caches"
	}
	extra = append(extra, c.block(14, multi))
	words := w0.matmulParams(m)[0]
	if normed {
		var err error
		if x, extra, err = c.normInput(w0, &key, m, words, x, nl, extra, c.label(fmt.Sprintf("%%%d Linear group", lins[0]))); err != nil {
			return err
		}
	}
	if normed {
		words[11] = math.Float32bits(nl.eps) // decode.wgsl's params.eps
	}
	pars := []webgpu.BufferBinding{c.block(0, words[:])}
	var names []string
	for _, v := range lins {
		names = append(names, p.g.Nodes[v].Label)
	}
	p.steps = append(p.steps, step{})
	si := len(p.steps) - 1
	label := c.label(fmt.Sprintf("%%%d Linear %s (%s)", lins[0], strings.Join(names, ", "), what))
	c.later = append(c.later, func() error {
		bm, err := p.b.bindMatMul(label, w0, key, m, x, y, nil, c.withParams(pars), c.withParams(extra)...)
		if err == nil {
			bm.rows[0] = rows
		}
		p.steps[si].mm = bm
		return err
	})
	return nil
}
