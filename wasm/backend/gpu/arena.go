package gpu

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// This file is the pure-Go half of whole-graph execution: where every value of a graph lives on
// the device, decided once at Compile from the graph's liveness, so it tests natively. graph_js.go
// turns the plan into buffers, bind groups and dispatches.

// place is a byte range of an arena slab (slab ≥ 0) or of the program's constant buffer (slab
// constSlab). size 0: the value has no storage of its own.
type place struct {
	slab      int
	off, size int64
}

const constSlab = -1

// span is one buffer the arena must hold: size bytes, live from node first to node last
// (inclusive; an op reads its operands and writes its output in one dispatch, so the three must
// not share bytes).
type span struct {
	first, last int
	size        int64
}

// arenaLimits are the device limits a plan respects.
type arenaLimits struct {
	align      int64 // minStorageBufferOffsetAlignment: every binding's offset is a multiple
	maxBinding int64 // maxStorageBufferBindingSize: no value may be larger
	maxSlab    int64 // maxBufferSize: a slab is one buffer
	// gemvNorm: the adapter's GEMV kernel (gemv_hw.wgsl) can normalize its x, so an RMSNorm
	// read only by GEMVs runs inside them (fuse.go's normedLinear).
	gemvNorm bool
	// gemvWeights: the most Linears of one x one GEMV dispatch may compute (fuse.go's
	// findLinearGroups; below 2, none).
	gemvWeights int
	// gemvSiLU: a SiLU product read only by a GEMV is formed as the GEMV loads its x (fuse.go's
	// findSiLULinears): gemv_hw.wgsl, and gemv_a8.wgsl with int8 activations.
	gemvSiLU bool
	// softmaxProducts: a softmax read only by a·b runs inside it (fuse.go's
	// findSoftmaxProducts): GPUs, where a dispatch costs microseconds whatever it computes.
	softmaxProducts bool
	// attnKeys: the most keys of an attention run as one dispatch (attn.go); 0: none.
	attnKeys int
	// swiGLU says whether the device runs a feed-forward's gate and up Linears (nodes) as one
	// SwiGLU GEMV (swiglu.go); nil: never.
	swiGLU func(gate, up int) bool
	// xTail says whether the SwiGLU GEMV of gate (a Linear node) writes its output as the
	// activation blocks of Linear down, which alone reads it, and for which codes (swiglu.go's
	// findXTail); nil: never.
	xTail func(gate, down int) (tailForm, bool)
	// kvWrite says whether the device runs a group of q, k and v Linears as one GEMV that writes
	// k and v into their caches (kvwrite.go); nil: never.
	kvWrite func(lins []graph.Value) bool
	// normTail says whether the device runs Linear lin (a node) as a GEMV that writes an RMS
	// norm after its residual sum (reader false), or one that reads it so (reader true), and in
	// which form (normtail.go); nil: never.
	normTail func(lin int, reader bool) (tailForm, bool)
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// packArena places spans in slabs so that no two spans with overlapping lifetimes share a byte,
// every offset is aligned and no slab passes maxSlab. Largest spans first, each at the lowest
// offset that fits (the "greedy by size" plan of TFLite's arena, near-optimal for the chain-like
// lifetimes of a network): a layer's big FFN buffer is placed before the small ones fill gaps.
func packArena(spans []span, lim arenaLimits) (at []place, slabs []int64, err error) {
	at = make([]place, len(spans))
	order := make([]int, len(spans))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if c := cmp.Compare(spans[b].size, spans[a].size); c != 0 {
			return c
		}
		return cmp.Compare(spans[a].first, spans[b].first)
	})
	var placed []int
	for _, i := range order {
		s := spans[i]
		if s.size > lim.maxBinding {
			return nil, nil, fmt.Errorf("a buffer of %d bytes is larger than one binding may be (%d): use a smaller shape bucket", s.size, lim.maxBinding)
		}
		if s.size > lim.maxSlab {
			return nil, nil, fmt.Errorf("a buffer of %d bytes is larger than the device's largest buffer (%d)", s.size, lim.maxSlab)
		}
		for slab := 0; ; slab++ {
			var conflicts []place
			for _, j := range placed {
				if at[j].slab == slab && spans[j].first <= s.last && s.first <= spans[j].last {
					conflicts = append(conflicts, at[j])
				}
			}
			slices.SortFunc(conflicts, func(a, b place) int { return cmp.Compare(a.off, b.off) })
			off := int64(0)
			for _, c := range conflicts {
				if off+s.size <= c.off {
					break
				}
				off = max(off, alignUp(c.off+c.size, lim.align))
			}
			if off+s.size > lim.maxSlab {
				continue
			}
			at[i] = place{slab: slab, off: off, size: s.size}
			if slab == len(slabs) {
				slabs = append(slabs, 0)
			}
			slabs[slab] = max(slabs[slab], off+s.size)
			break
		}
		placed = append(placed, i)
	}
	return at, slabs, nil
}

// graphPlan is the device layout of one graph.
type graphPlan struct {
	needed []bool        // computed: an output, or read by a node that is needed
	root   []graph.Value // the node whose storage a value is (itself; what a Reshape views)
	at     []place       // storage of each root (size 0: none, e.g. a weight only Linear reads)
	dense  []bool        // Weight nodes copied as f32 into the constant buffer
	pad    []place       // Linear nodes: scratch for x in zero-padded rows (size 0: x as it is)
	freq   []place       // RoPE nodes: the frequency table (constant buffer)
	slabs  []int64       // arena slab sizes
	consts int64         // constant buffer size
	spans  []span        // every arena buffer (roots and pads) with its lifetime, for tests
	placed []place       // where each of spans went
	// ropes are the table rotations run as one dispatch, keyed by their Concat node (fuse.go):
	// that dispatch reads x, cos and sin, which must live until it and differ in colour from it.
	ropes map[int]tableRotation
	// stridedB: MatMul nodes that read their B operand's Transpose source in place (fuse.go).
	stridedB map[int]graph.Value
	// scaled: Scale nodes computed by the MatMul they scale (fuse.go), keyed by the Scale.
	scaled map[int]scaledProduct
	// siluMuls: Mul nodes of a SiLU and another value, as one dispatch (fuse.go).
	siluMuls map[int]siluProduct
	// residuals: Add nodes computed by the Linear they add to (fuse.go), keyed by the Add.
	residuals map[int]residualLinear
	// normed: Linear nodes that normalize their x themselves (fuse.go), keyed by the Linear.
	normed map[int]normedLinear
	// fused are the ops another node's dispatch computes: they are not dispatched alone.
	fused map[graph.Value]bool
	// statesInPlace: StateWrite nodes whose kept rows products read from the state's buffer
	// (fuse.go): only the write is dispatched, and the value has no storage.
	statesInPlace map[int]bool
	// groups: Linears of one x computed by one dispatch (fuse.go), keyed by the first, which
	// leads the list; groupLead: each other member's first, from whose node its result lives.
	groups    map[int][]graph.Value
	groupLead map[int]int
	// softmaxes: products that normalize their a as they read it (fuse.go), keyed by MatMul.
	softmaxes map[int]softmaxProduct
	// siluLinears: Linears whose x is a SiLU product they form as they load it (fuse.go), keyed
	// by the Linear.
	siluLinears map[int]siluProduct
	// rotatedReads: StateWrites and products that rotate their x or a as they read it, to the
	// rotation's Concat in ropes (fuse.go).
	rotatedReads map[int]int
	// attns: p·v products that compute their q·kᵀ and softmax too (attn.go), keyed by MatMul.
	attns map[int]attention
	// swiglus: SiLU products of a gate and an up Linear computed by one GEMV (swiglu.go), keyed
	// by the Mul.
	swiglus map[int]swiGLU
	// kvWrites: q/k/v GEMVs that write k and v into their caches (kvwrite.go), keyed by the
	// group's first Linear; kvWritten: the StateWrites they write, which dispatch no write.
	kvWrites  map[int]kvWrite
	kvWritten map[int]bool
	// normTails: RMSNorms whose x·gain and sums the residual Linear's GEMV before them writes
	// (normtail.go), keyed by the Add; tailOf: the Add of each such RMSNorm.
	normTails map[int]normTail
	tailOf    map[int]int
	// xTailOf: the Linears that read their x as activation blocks a SwiGLU GEMV writes, to that
	// GEMV's Mul (swiglu.go).
	xTailOf map[int]int
}

// reads are the values node i's dispatch reads beyond its inputs (a fused op's).
func (p *graphPlan) reads(i int) []graph.Value {
	if w, ok := p.kvWrites[i]; ok {
		return append(p.opReads(i), w.pos, w.cos, w.sin)
	}
	return p.opReads(i)
}

// opReads are reads' values but for a q/k/v GEMV's cache writes.
func (p *graphPlan) opReads(i int) []graph.Value {
	if at, ok := p.attns[i]; ok {
		return at.reads
	}
	if m, ok := p.ropes[i]; ok {
		return []graph.Value{m.x, m.cos, m.sin}
	}
	// A rotation's or a softmax's operands (read in place of a), and B's source.
	var out []graph.Value
	if r, ok := p.rotatedReads[i]; ok {
		m := p.ropes[r]
		out = append(out, m.x, m.cos, m.sin)
	}
	if sm, ok := p.softmaxes[i]; ok {
		out = append(out, sm.x)
		if sm.mask != graph.None {
			out = append(out, sm.mask)
		}
	}
	if src, ok := p.stridedB[i]; ok {
		out = append(out, src)
	}
	if out != nil {
		return out
	}
	if s, ok := p.scaled[i]; ok {
		return append([]graph.Value{s.a, s.b}, p.reads(int(s.mm))...)
	}
	if s, ok := p.swiglus[i]; ok {
		return p.swiGLUReads(s)
	}
	if s, ok := p.siluMuls[i]; ok {
		return []graph.Value{s.a}
	}
	if r, ok := p.residuals[i]; ok {
		out := append([]graph.Value{r.x}, p.reads(int(r.lin))...)
		if t, ok := p.normTails[i]; ok {
			out = append(out, t.gain)
		}
		return out
	}
	if n, ok := p.normed[i]; ok {
		return []graph.Value{n.x, n.gain}
	}
	if s, ok := p.siluLinears[i]; ok {
		return []graph.Value{s.a, s.b}
	}
	return nil
}

// fuse finds the ops that run inside another's dispatch (fuse.go).
func (p *graphPlan) fuse(g *graph.Graph, paddedK func(node int) int, lim arenaLimits) {
	uses := readers(g, p.needed)
	p.ropes, p.stridedB, p.fused = findRoPETables(g, p.needed), findStridedB(g, p.needed, uses), map[graph.Value]bool{}
	for _, m := range p.ropes {
		for _, v := range m.inner {
			p.fused[v] = true
		}
	}
	for i := range p.stridedB {
		p.fused[g.Nodes[i].Inputs[1]] = true
	}
	p.scaled, p.siluMuls = findScaledProducts(g, p.needed, uses), findSiLUProducts(g, p.needed, uses)
	for _, s := range p.scaled {
		p.fused[s.mm] = true
	}
	for _, s := range p.siluMuls {
		p.fused[s.silu] = true
	}
	p.residuals = findResidualLinears(g, p.needed, uses, paddedK)
	for _, r := range p.residuals {
		p.fused[r.lin] = true
	}
	p.normed = findNormedLinears(g, p.needed, uses, paddedK, lim)
	for _, n := range p.normed {
		p.fused[n.norm] = true
	}
	p.normTails, p.tailOf = findNormTails(g, p.needed, p.residuals, p.fused, paddedK, lim), map[int]int{}
	for a, t := range p.normTails {
		if t.form.a8 {
			// The norm stays fused into its readers, which read its blocks (no value of its own).
			for _, r := range t.readers {
				nl := p.normed[r]
				nl.part = true
				p.normed[r] = nl
			}
			continue
		}
		p.tailOf[int(t.norm)] = a
		for _, r := range t.readers {
			p.normed[r] = normedLinear{norm: t.norm, x: t.norm, gain: t.gain, eps: t.eps, part: true}
		}
	}
	p.statesInPlace = findStatesInPlace(g, p.needed, p.stridedB)
	p.fuseSwiGLUs(g, uses, paddedK, lim)
	p.siluLinears = findSiLULinears(g, p.needed, uses, p.siluMuls, paddedK, lim)
	for i := range p.siluLinears {
		p.fused[g.Nodes[i].Inputs[0]] = true // the Mul (its SiLU is fused already)
	}
	p.softmaxes = map[int]softmaxProduct{}
	if lim.softmaxProducts {
		p.softmaxes = findSoftmaxProducts(g, p.needed, uses)
	}
	p.rotatedReads = findRotatedReads(g, p.needed, uses, p.ropes, p.softmaxes)
	for _, r := range p.rotatedReads {
		p.fused[graph.Value(r)] = true
	}
	for _, sm := range p.softmaxes {
		p.fused[sm.softmax] = true
		for _, v := range sm.views {
			p.fused[v] = true
		}
	}
	p.fuseAttentions(g, uses, lim)
	p.groups, p.groupLead = findLinearGroups(g, p.needed, p.fused, paddedK, lim), map[int]int{}
	for lead, lins := range p.groups {
		for _, v := range lins[1:] {
			p.groupLead[int(v)] = lead
		}
	}
	p.fuseKVWrites(g, uses, lim) // kvwrite.go
}

// valueBytes is the storage of n elements: 4 bytes each, rounded to 16 so that kernels may bind
// it as vec4 arrays.
func valueBytes(n int) int64 { return alignUp(int64(n)*4, 16) }

// planGraph lays out g. paddedK(i) is, for a Linear node i, the row length its weight's kernels
// read x with (K, or K rounded up to whole device rows of the weight).
func planGraph(g *graph.Graph, paddedK func(node int) int, lim arenaLimits) (*graphPlan, error) {
	n := len(g.Nodes)
	p := &graphPlan{
		needed: neededNodes(g), root: make([]graph.Value, n), at: make([]place, n),
		dense: make([]bool, n), pad: make([]place, n), freq: make([]place, n),
	}
	p.fuse(g, paddedK, lim)
	pb := &planBuilder{g: g, p: p, lim: lim, paddedK: paddedK, last: p.lifetimes(g), colour: make([]int, n)}
	for i := range g.Nodes {
		if p.needed[i] && p.root[i] == graph.Value(i) && !p.fused[graph.Value(i)] && !p.statesInPlace[i] {
			pb.node(i) // a fused op has no storage: its value is never made
		}
	}
	if pb.constErr != nil {
		return nil, pb.constErr
	}
	if p.consts > lim.maxSlab {
		return nil, fmt.Errorf("graph %q: constants and float weights read as values need %d bytes, more than the device's largest buffer (%d)", g.Name, p.consts, lim.maxSlab)
	}
	if err := pb.pack(); err != nil {
		return nil, err
	}
	return p, nil
}

// neededNodes marks the nodes a run computes: the outputs and, transitively, what they read.
func neededNodes(g *graph.Graph) []bool {
	needed := make([]bool, len(g.Nodes))
	for _, o := range g.Outputs {
		needed[o] = true
	}
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		if needed[i] {
			for _, in := range g.Nodes[i].Inputs {
				if in != graph.None {
					needed[in] = true
				}
			}
		}
	}
	return needed
}

// lifetimes resolves views to their root (p.root), marks the weights read as values (p.dense:
// anything but a Linear's weight or a Gather's table) and returns the last node that reads
// each root (len(g.Nodes) for an output, -1 for none): a root lives until the last needed read
// of any of its views.
func (p *graphPlan) lifetimes(g *graph.Graph) []int {
	n := len(g.Nodes)
	last := make([]int, n)
	for i := range last {
		last[i] = -1
	}
	for i := range g.Nodes {
		nd := &g.Nodes[i]
		p.root[i] = graph.Value(i)
		if nd.Op == graph.OpReshape || viewTranspose(g, nd) {
			p.root[i] = p.root[nd.Inputs[0]]
		}
		if !p.needed[i] {
			continue
		}
		for slot, in := range nd.Inputs {
			if in == graph.None {
				continue
			}
			r := p.root[in]
			last[r] = max(last[r], i)
			w := &g.Nodes[r]
			direct := in == r && ((nd.Op == graph.OpLinear && slot == 1) || (nd.Op == graph.OpGather && slot == 0))
			if w.Op == graph.OpWeight && !direct {
				p.dense[r] = true
			}
		}
	}
	for _, o := range g.Outputs {
		r := p.root[o]
		last[r] = n
		if g.Nodes[r].Op == graph.OpWeight {
			p.dense[r] = true
		}
	}
	for i := range g.Nodes {
		for _, v := range p.reads(i) {
			last[p.root[v]] = max(last[p.root[v]], i)
		}
	}
	return last
}

// viewTranspose reports whether n is a Transpose that moves only axes of size 1: its elements
// stay in the same order, so like a Reshape it is a view of its input, not a copy (attention's
// head transposes of a one-token decode step).
func viewTranspose(g *graph.Graph, n *graph.Node) bool {
	if n.Op != graph.OpTranspose {
		return false
	}
	in, last := g.Nodes[n.Inputs[0]].Shape, -1
	for _, a := range n.Attr.Perm {
		if in[a] == 1 {
			continue
		}
		if a < last {
			return false
		}
		last = a
	}
	return true
}

// planBuilder collects the arena spans of a plan with their colours, then packs them.
//
// Colours: WebGPU validates buffer usage per dispatch and per whole buffer, not per range, so
// a buffer bound as read-only storage (an operand) and as writable storage (the result) in
// one dispatch is an error even where the ranges are apart. Every arena value therefore gets
// a colour (a family of buffers) different from the colours its dispatches read; in a chain
// of ops they alternate between two.
type planBuilder struct {
	g        *graph.Graph
	p        *graphPlan
	lim      arenaLimits
	paddedK  func(node int) int
	last     []int // per root: the last node that reads it
	colour   []int // per arena root
	spans    []span
	colours  []int         // per span
	owner    []func(place) // per span: where its placement goes
	constErr error
}

// inArena reports whether v's storage is an arena buffer (not a constant, weight or state).
func (pb *planBuilder) inArena(v graph.Value) bool {
	r := pb.p.root[v]
	op := pb.g.Nodes[r].Op
	return op != graph.OpConst && op != graph.OpWeight && op != graph.OpState && !pb.p.statesInPlace[int(r)]
}

// colourOf is v's colour, -1 for no value or one outside the arena.
func (pb *planBuilder) colourOf(v graph.Value) int {
	if v == graph.None || !pb.inArena(v) {
		return -1
	}
	return pb.colour[pb.p.root[v]]
}

// freeColour is the smallest colour not taken.
func freeColour(taken ...int) int {
	c := 0
	for slices.Contains(taken, c) {
		c++
	}
	return c
}

// addConst reserves bytes in the constant buffer.
func (pb *planBuilder) addConst(bytes int64) place {
	p, lim := pb.p, pb.lim
	if bytes > lim.maxBinding && pb.constErr == nil {
		pb.constErr = fmt.Errorf("graph %q: a constant of %d bytes is larger than one binding may be (%d)", pb.g.Name, bytes, lim.maxBinding)
	}
	p.consts = alignUp(p.consts, lim.align)
	pl := place{slab: constSlab, off: p.consts, size: bytes}
	p.consts += bytes
	return pl
}

// addSpan adds an arena buffer of colour c whose placement set receives.
func (pb *planBuilder) addSpan(s span, c int, set func(place)) {
	pb.spans = append(pb.spans, s)
	pb.colours = append(pb.colours, c)
	pb.owner = append(pb.owner, set)
}

// node places root i: in the constant buffer, in a buffer of its own, or as arena spans.
func (pb *planBuilder) node(i int) {
	p, g := pb.p, pb.g
	nd := &g.Nodes[i]
	bytes := valueBytes(nd.Shape.Size())
	first := i
	if lead, ok := p.groupLead[i]; ok {
		first = lead // written by the group's dispatch, at its first Linear
	}
	var tailTaken []int // a norm tail's: the colours its GEMV reads
	if a, ok := p.tailOf[i]; ok {
		first = a // written by the residual Linear's GEMV, at its Add
		for _, v := range append(slices.Clone(g.Nodes[a].Inputs), p.reads(a)...) {
			tailTaken = append(tailTaken, pb.colourOf(v))
		}
	}
	result := func(c int) {
		pb.colour[i] = c
		pb.addSpan(span{first: first, last: max(pb.last[i], i), size: bytes}, c, func(pl place) { p.at[i] = pl })
	}
	switch nd.Op {
	case graph.OpConst:
		p.at[i] = pb.addConst(bytes)
	case graph.OpWeight:
		if p.dense[i] {
			p.at[i] = pb.addConst(bytes)
		}
	case graph.OpState:
		// A buffer of its own (state_js.go), shared with other programs.
	case graph.OpInput:
		// Written before the first dispatch; only read after.
		pb.addSpan(span{first: 0, last: max(pb.last[i], i), size: bytes}, 0, func(pl place) { p.at[i] = pl })
	case graph.OpLinear:
		// x → (zero-padded copy →) matmul → bias added in place: the result's colour
		// differs from the padded copy's (or x's) and the bias's; the copy's from x's.
		x := nd.Inputs[0]
		matmulIn := pb.colourOf(x)
		K := g.Nodes[nd.Inputs[1]].Shape[1]
		if kp := pb.paddedK(i); kp != K {
			matmulIn = freeColour(pb.colourOf(x))
			pb.addSpan(span{first: i, last: i, size: valueBytes(g.Nodes[x].Shape.Size() / K * kp)}, matmulIn, func(pl place) { p.pad[i] = pl })
		}
		taken := []int{matmulIn, pb.colourOf(nd.Inputs[2])}
		for _, v := range p.reads(i) { // a normalizing GEMV's x and gain
			taken = append(taken, pb.colourOf(v))
		}
		result(freeColour(taken...))
	default:
		taken := tailTaken
		for _, in := range append(slices.Clone(nd.Inputs), p.reads(i)...) {
			taken = append(taken, pb.colourOf(in))
		}
		result(freeColour(taken...))
	}
	if nd.Op == graph.OpRoPE {
		p.freq[i] = pb.addConst(int64(nd.Shape[3]/2) * 16)
	}
}

// pack places each colour's spans on their own; a colour's slabs follow the previous colour's.
func (pb *planBuilder) pack() error {
	p := pb.p
	p.spans, p.placed = pb.spans, make([]place, len(pb.spans))
	for c := 0; ; c++ {
		var idx []int
		var cs []span
		for j, sc := range pb.colours {
			if sc == c {
				idx, cs = append(idx, j), append(cs, pb.spans[j])
			}
		}
		if len(idx) == 0 {
			return nil
		}
		at, slabs, err := packArena(cs, pb.lim)
		if err != nil {
			return fmt.Errorf("graph %q: %w", pb.g.Name, err)
		}
		for k, j := range idx {
			pl := at[k]
			pl.slab += len(p.slabs)
			p.placed[j] = pl
			pb.owner[j](pl)
		}
		p.slabs = append(p.slabs, slabs...)
	}
}

// mergeDims drops dimensions of size 1 and merges neighbours that are contiguous under every
// stride list (st[d] = st[d+1]·dims[d+1] in each), so strided kernels loop over fewer
// dimensions. A scalar becomes [1].
func mergeDims(dims []int, strides ...[]int) ([]int, [][]int) {
	var od []int
	os := make([][]int, len(strides))
	for d := range dims {
		if dims[d] == 1 {
			continue
		}
		if k := len(od) - 1; k >= 0 {
			ok := true
			for s := range strides {
				if os[s][k] != strides[s][d]*dims[d] {
					ok = false
					break
				}
			}
			if ok {
				od[k] *= dims[d]
				for s := range strides {
					os[s][k] = strides[s][d]
				}
				continue
			}
		}
		od = append(od, dims[d])
		for s := range strides {
			os[s] = append(os[s], strides[s][d])
		}
	}
	if len(od) == 0 {
		od = []int{1}
		for s := range os {
			os[s] = []int{0}
		}
	}
	return od, os
}

// rowWorkgroup is the workgroup of the row reductions (norms, softmax) over rows of d elements.
// A GPU wants about four elements a thread, within 32..256 threads. A software adapter wants
// few threads: SwiftShader runs a workgroup as 4-lane SIMD groups and switches between them at
// every barrier, and a reduction is all barriers (encoder block at B=30, T=16: a masked
// softmax over 1920 rows of 16 took ~200 ms with 64 threads a row; see BenchmarkGraphEncoder).
func rowWorkgroup(d int, software bool) int {
	if software {
		return softwareRowWG
	}
	wg := 32
	for wg < 256 && 4*wg < d {
		wg *= 2
	}
	return wg
}

// normWorkgroup is a norm's workgroup (ops_norm.wgsl): rowWorkgroup's on software adapters; on
// hardware the fewest threads, at most limit (the device's) and 1024, that take a row of d in one
// round of 4 elements a thread (a decode step's d = 4096: 1024 threads, one trip to memory).
func normWorkgroup(d int, software bool, limit int) int {
	if software {
		return softwareRowWG
	}
	wg := 32
	for 2*wg <= min(limit, 1024) && 4*wg < d {
		wg *= 2
	}
	return wg
}

// softwareRowWG is rowWorkgroup's choice on software adapters (a variable: the benchmark's
// -nibble.rowwg sweeps it).
var softwareRowWG = 4
