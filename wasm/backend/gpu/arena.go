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
}

// valueBytes is the storage of n elements: 4 bytes each, rounded to 16 so that kernels may bind
// it as vec4 arrays.
func valueBytes(n int) int64 { return alignUp(int64(n)*4, 16) }

// planGraph lays out g. paddedK(i) is, for a Linear node i, the row length its weight's kernels
// read x with (K, or K rounded up to whole device rows of the weight).
func planGraph(g *graph.Graph, paddedK func(node int) int, lim arenaLimits) (*graphPlan, error) {
	n := len(g.Nodes)
	p := &graphPlan{
		needed: make([]bool, n), root: make([]graph.Value, n), at: make([]place, n),
		dense: make([]bool, n), pad: make([]place, n), freq: make([]place, n),
	}
	for _, o := range g.Outputs {
		p.needed[o] = true
	}
	for i := n - 1; i >= 0; i-- {
		if p.needed[i] {
			for _, in := range g.Nodes[i].Inputs {
				if in != graph.None {
					p.needed[in] = true
				}
			}
		}
	}
	// Views resolve to their root; a root lives until the last needed read of any of its views.
	last := make([]int, n)
	for i := range last {
		last[i] = -1
	}
	for i := range g.Nodes {
		nd := &g.Nodes[i]
		p.root[i] = graph.Value(i)
		if nd.Op == graph.OpReshape {
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

	// Colours: WebGPU validates buffer usage per dispatch and per whole buffer, not per range, so
	// a buffer bound as read-only storage (an operand) and as writable storage (the result) in
	// one dispatch is an error even where the ranges are apart. Every arena value therefore gets
	// a colour (a family of buffers) different from the colours its dispatches read; in a chain
	// of ops they alternate between two.
	colour := make([]int, n)
	inArena := func(v graph.Value) bool {
		op := g.Nodes[p.root[v]].Op
		return op != graph.OpConst && op != graph.OpWeight && op != graph.OpState
	}
	colourOf := func(v graph.Value) int {
		if v == graph.None || !inArena(v) {
			return -1
		}
		return colour[p.root[v]]
	}
	free := func(taken ...int) int {
		c := 0
		for slices.Contains(taken, c) {
			c++
		}
		return c
	}
	var spans []span
	var colours []int
	var owner []func(place) // where each span's placement goes
	var constErr error
	addConst := func(bytes int64) place {
		if bytes > lim.maxBinding && constErr == nil {
			constErr = fmt.Errorf("graph %q: a constant of %d bytes is larger than one binding may be (%d)", g.Name, bytes, lim.maxBinding)
		}
		p.consts = alignUp(p.consts, lim.align)
		pl := place{slab: constSlab, off: p.consts, size: bytes}
		p.consts += bytes
		return pl
	}
	for i := range g.Nodes {
		nd := &g.Nodes[i]
		if !p.needed[i] || p.root[i] != graph.Value(i) {
			continue
		}
		bytes := valueBytes(nd.Shape.Size())
		switch nd.Op {
		case graph.OpConst:
			p.at[i] = addConst(bytes)
		case graph.OpWeight:
			if p.dense[i] {
				p.at[i] = addConst(bytes)
			}
		case graph.OpState:
			// A buffer of its own (state_js.go), shared with other programs.
		case graph.OpInput:
			// Written before the first dispatch; only read after.
			spans = append(spans, span{first: 0, last: max(last[i], i), size: bytes})
			colours = append(colours, 0)
			owner = append(owner, func(pl place) { p.at[i] = pl })
		case graph.OpLinear:
			// x → (zero-padded copy →) matmul → bias added in place: the result's colour
			// differs from the padded copy's (or x's) and the bias's; the copy's from x's.
			x := nd.Inputs[0]
			matmulIn := colourOf(x)
			K := g.Nodes[nd.Inputs[1]].Shape[1]
			if kp := paddedK(i); kp != K {
				matmulIn = free(colourOf(x))
				spans = append(spans, span{first: i, last: i, size: valueBytes(g.Nodes[x].Shape.Size() / K * kp)})
				colours = append(colours, matmulIn)
				owner = append(owner, func(pl place) { p.pad[i] = pl })
			}
			colour[i] = free(matmulIn, colourOf(nd.Inputs[2]))
			spans = append(spans, span{first: i, last: max(last[i], i), size: bytes})
			colours = append(colours, colour[i])
			owner = append(owner, func(pl place) { p.at[i] = pl })
		default:
			var taken []int
			for _, in := range nd.Inputs {
				taken = append(taken, colourOf(in))
			}
			colour[i] = free(taken...)
			spans = append(spans, span{first: i, last: max(last[i], i), size: bytes})
			colours = append(colours, colour[i])
			owner = append(owner, func(pl place) { p.at[i] = pl })
		}
		switch nd.Op {
		case graph.OpRoPE:
			p.freq[i] = addConst(int64(nd.Shape[3]/2) * 16)
		}
	}
	if constErr != nil {
		return nil, constErr
	}
	if p.consts > lim.maxSlab {
		return nil, fmt.Errorf("graph %q: constants and float weights read as values need %d bytes, more than the device's largest buffer (%d)", g.Name, p.consts, lim.maxSlab)
	}
	// Each colour is packed on its own; its slabs follow the previous colour's.
	p.spans, p.placed = spans, make([]place, len(spans))
	for c := 0; ; c++ {
		var idx []int
		var cs []span
		for j, sc := range colours {
			if sc == c {
				idx, cs = append(idx, j), append(cs, spans[j])
			}
		}
		if len(idx) == 0 {
			break
		}
		at, slabs, err := packArena(cs, lim)
		if err != nil {
			return nil, fmt.Errorf("graph %q: %w", g.Name, err)
		}
		for k, j := range idx {
			pl := at[k]
			pl.slab += len(p.slabs)
			p.placed[j] = pl
			owner[j](pl)
		}
		p.slabs = append(p.slabs, slabs...)
	}
	return p, nil
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

// softwareRowWG is rowWorkgroup's choice on software adapters (a variable: the benchmark's
// -nibble.rowwg sweeps it).
var softwareRowWG = 4
