package gpu

import (
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// tableRotation is a rotation of adjacent pairs by cos and sin tables, written in the graph as ten
// ops (the way wasm/model/llama writes RoPE, since a file may scale its frequencies):
//
//	x0, x1 = Slice(x, 3, 0, 1), Slice(x, 3, 1, 2)        x [R, H, P, 2]
//	y0 = Sub(Mul(x0, cos), Mul(x1, sin))                   cos, sin [R, 1, P, 1]
//	y1 = Add(Mul(x0, sin), Mul(x1, cos))
//	out = Concat(3, y0, y1)
//
// The backend runs it as one dispatch (ops_rope.wgsl TABLE) instead of ten: on a GPU each of
// those small dispatches costs a few microseconds however little it computes.
type tableRotation struct {
	x, cos, sin graph.Value
	inner       []graph.Value // the ops the one dispatch replaces (the Concat aside)
}

// findRoPETables returns the rotations whose Concat is node i, keyed by i. Every inner op must
// be read by the rotation alone (not by another op, not an output), so skipping it loses
// nothing.
func findRoPETables(g *graph.Graph, needed []bool) map[int]tableRotation {
	uses := readers(g, needed)
	out := map[int]tableRotation{}
	for i := range g.Nodes {
		if !needed[i] {
			continue
		}
		if m, ok := matchRoPETable(g, i, uses); ok {
			out[i] = m
		}
	}
	return out
}

// readers counts, per node, the needed nodes that read it (an output counts as one more).
func readers(g *graph.Graph, needed []bool) []int {
	uses := make([]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if needed[i] {
			for _, in := range n.Inputs {
				if in != graph.None {
					uses[in]++
				}
			}
		}
	}
	for _, o := range g.Outputs {
		uses[o]++
	}
	return uses
}

// matchRoPETable matches the pattern of tableRotation at Concat node i.
func matchRoPETable(g *graph.Graph, i int, uses []int) (tableRotation, bool) {
	n := &g.Nodes[i]
	if n.Op != graph.OpConcat || len(n.Inputs) != 2 || len(n.Shape) != 4 || n.Attr.Axis != 3 || n.Shape[3] != 2 {
		return tableRotation{}, false
	}
	node := func(v graph.Value, op graph.Op) *graph.Node {
		if v == graph.None || g.Nodes[v].Op != op {
			return nil
		}
		return &g.Nodes[v]
	}
	y0, y1 := node(n.Inputs[0], graph.OpSub), node(n.Inputs[1], graph.OpAdd)
	if y0 == nil || y1 == nil {
		return tableRotation{}, false
	}
	// y0 = x0·cos − x1·sin, in that order; y1's terms in either order.
	a, b := node(y0.Inputs[0], graph.OpMul), node(y0.Inputs[1], graph.OpMul)
	c, d := node(y1.Inputs[0], graph.OpMul), node(y1.Inputs[1], graph.OpMul)
	if a == nil || b == nil || c == nil || d == nil {
		return tableRotation{}, false
	}
	x0, cos, ok1 := sliceTimes(g, a, 0)
	x1, sin, ok2 := sliceTimes(g, b, 1)
	if !ok1 || !ok2 || g.Nodes[x0].Inputs[0] != g.Nodes[x1].Inputs[0] {
		return tableRotation{}, false
	}
	c0, cs, ok3 := sliceTimes(g, c, 0)
	d1, dc, ok4 := sliceTimes(g, d, 1)
	if !ok3 || !ok4 {
		c0, cs, ok3 = sliceTimes(g, d, 0)
		d1, dc, ok4 = sliceTimes(g, c, 1)
	}
	if !ok3 || !ok4 || c0 != x0 || d1 != x1 || cs != sin || dc != cos {
		return tableRotation{}, false
	}
	x := g.Nodes[x0].Inputs[0]
	R, H, P := n.Shape[0], n.Shape[1], n.Shape[2]
	if !slices.Equal(g.Nodes[x].Shape, n.Shape) ||
		!slices.Equal(g.Nodes[cos].Shape, graph.Shape{R, 1, P, 1}) || !slices.Equal(g.Nodes[sin].Shape, graph.Shape{R, 1, P, 1}) || H < 1 {
		return tableRotation{}, false
	}
	inner := []graph.Value{x0, x1, y0.Inputs[0], y0.Inputs[1], y1.Inputs[0], y1.Inputs[1], n.Inputs[0], n.Inputs[1]}
	want := map[graph.Value]int{x0: 2, x1: 2}
	for _, v := range inner {
		w, ok := want[v]
		if !ok {
			w = 1
		}
		if uses[v] != w {
			return tableRotation{}, false
		}
	}
	return tableRotation{x: x, cos: cos, sin: sin, inner: inner}, true
}

// sliceTimes matches m = Mul(s, t) in either order, s = Slice(x, 3, half, half+1) of a rank-4
// x ending in pairs: it returns s and t.
func sliceTimes(g *graph.Graph, m *graph.Node, half int) (s, t graph.Value, ok bool) {
	for _, order := range [2][2]int{{0, 1}, {1, 0}} {
		s, t = m.Inputs[order[0]], m.Inputs[order[1]]
		sn := &g.Nodes[s]
		if sn.Op == graph.OpSlice && sn.Attr.Axis == 3 && sn.Attr.Start == half && sn.Attr.End == half+1 &&
			len(g.Nodes[sn.Inputs[0]].Shape) == 4 && g.Nodes[sn.Inputs[0]].Shape[3] == 2 {
			return s, t, true
		}
	}
	return graph.None, graph.None, false
}

// findStridedB returns, keyed by MatMul node, the source of a B operand that is a real
// Transpose (not a view) of rank 3 read by that MatMul alone: the product reads the source in
// place through strides (ops_matmul.wgsl's sb, sj, sk) and the copy is not made. Attention's
// keys and values over a long cache are the case: [keep, KV, Dh] read as [KV, keep, Dh].
func findStridedB(g *graph.Graph, needed []bool, uses []int) map[int]graph.Value {
	out := map[int]graph.Value{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpMatMul {
			continue
		}
		bv := n.Inputs[1]
		bn := &g.Nodes[bv]
		if bn.Op == graph.OpTranspose && len(bn.Shape) == 3 && uses[bv] == 1 && !viewTranspose(g, bn) {
			out[i] = bn.Inputs[0]
		}
	}
	return out
}

// bStrides are the element strides of a MatMul's B along its batch, output (j) and K axes: of
// the contiguous operand, or of the source of a Transpose read in place (src != graph.None).
func bStrides(g *graph.Graph, n *graph.Node, src graph.Value) (sb, sj, sk int) {
	b := &g.Nodes[n.Inputs[1]]
	r := len(b.Shape)
	st := b.Shape.Strides()
	if src != graph.None {
		ss := g.Nodes[src].Shape.Strides()
		for d, a := range b.Attr.Perm {
			st[d] = ss[a]
		}
	}
	sb = b.Shape[r-1] * b.Shape[r-2] // contiguous batches (several batch axes flatten)
	if src != graph.None {
		sb = st[0]
	}
	if n.Attr.TransB {
		return sb, st[r-2], st[r-1]
	}
	return sb, st[r-1], st[r-2]
}

// findScaledProducts returns, keyed by Scale node, the MatMul it scales where the product is
// read by that Scale alone: the product's kernel multiplies its sums by the factor
// (ops_matmul.wgsl's alpha), so attention's q·kᵀ and its 1/√Dh are one dispatch.
func findScaledProducts(g *graph.Graph, needed []bool, uses []int) map[int]scaledProduct {
	out := map[int]scaledProduct{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpScale {
			continue
		}
		if mm := n.Inputs[0]; g.Nodes[mm].Op == graph.OpMatMul && uses[mm] == 1 {
			out[i] = scaledProduct{mm: mm, a: g.Nodes[mm].Inputs[0], b: g.Nodes[mm].Inputs[1]}
		}
	}
	return out
}

// scaledProduct is a MatMul of a and b run with a Scale's factor.
type scaledProduct struct{ mm, a, b graph.Value }

// siluProduct is Mul(SiLU(a), b) in either order, the SiLU read by the Mul alone: one
// dispatch (ops_binary.wgsl SILU_MUL) instead of two.
type siluProduct struct {
	silu, a, b graph.Value // the SiLU node, its input, the Mul's other operand
}

// findSiLUProducts returns the SiLU products keyed by their Mul node.
func findSiLUProducts(g *graph.Graph, needed []bool, uses []int) map[int]siluProduct {
	out := map[int]siluProduct{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpMul {
			continue
		}
		for j, s := range n.Inputs {
			if g.Nodes[s].Op == graph.OpSiLU && uses[s] == 1 && n.Inputs[1-j] != s {
				out[i] = siluProduct{silu: s, a: g.Nodes[s].Inputs[0], b: n.Inputs[1-j]}
				break
			}
		}
	}
	return out
}

// residualLinear is Add(res, Linear(x, w)) in either order, the Linear without bias and read by
// the Add alone: the GEMV kernel adds res as it stores its sums (shaders.Key.Residual), so a
// Linear and the residual connection after it are one dispatch.
type residualLinear struct {
	lin, x, res graph.Value // the Linear, its input, the value added
}

// findResidualLinears returns the residual Linears keyed by their Add node. The Linear must run
// a GEMV (at most GEMVMaxM activation rows: the GEMM kernels have no residual) and read x as it
// is (paddedK(lin) == K: no zero-padded copy), and res must have the Add's shape.
func findResidualLinears(g *graph.Graph, needed []bool, uses []int, paddedK func(node int) int) map[int]residualLinear {
	out := map[int]residualLinear{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpAdd {
			continue
		}
		for j, lin := range n.Inputs {
			ln, res := &g.Nodes[lin], n.Inputs[1-j]
			if ln.Op != graph.OpLinear || uses[lin] != 1 || ln.Inputs[2] != graph.None || res == lin ||
				!slices.Equal(ln.Shape, n.Shape) || !slices.Equal(g.Nodes[res].Shape, n.Shape) {
				continue
			}
			N, K := g.Nodes[ln.Inputs[1]].Shape[0], g.Nodes[ln.Inputs[1]].Shape[1]
			if n.Shape.Size()/N <= GEMVMaxM && paddedK(int(lin)) == K {
				out[i] = residualLinear{lin: lin, x: ln.Inputs[0], res: res}
				break
			}
		}
	}
	return out
}

// normedLinear is a Linear whose x is an RMSNorm's result: the GEMV normalizes as it reads
// (shaders.Key.Norm: Σx² beside the product, the gain on x's loads, the scale at the store).
type normedLinear struct {
	norm, x, gain graph.Value // the RMSNorm, its input, its gain
	eps           float32
	// part: the GEMV before wrote the norm (normtail.go): x is the norm's own value, x·gain,
	// written with its sums of squares, which the GEMV reads for the norm's scale
	// (shaders.Key.NormPart); or, in the a8 form, x is the norm's input still and the GEMV reads
	// the norm's activation blocks.
	part bool
}

// findNormedLinears returns, keyed by Linear node, the Linears that read an RMSNorm which
// nothing else reads (not even an output), where every such Linear runs a GEMV (at most
// GEMVMaxM rows) on x as it is (paddedK == K). Only gemv_hw.wgsl (and gemv_a8.wgsl) has the
// prologue; lim's gemvNorm says whether the adapter's GEMV kernel is that one and the fusion pays
// there (compile: with int8 activations, or with gemvNormF32).
func findNormedLinears(g *graph.Graph, needed []bool, uses []int, paddedK func(node int) int, lim arenaLimits) map[int]normedLinear {
	out := map[int]normedLinear{}
	if !lim.gemvNorm {
		return out
	}
	readers := map[graph.Value][]int{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpLinear {
			continue
		}
		nrm := &g.Nodes[n.Inputs[0]]
		N, K := g.Nodes[n.Inputs[1]].Shape[0], g.Nodes[n.Inputs[1]].Shape[1]
		if nrm.Op == graph.OpRMSNorm && nrm.Inputs[1] != graph.None && n.Shape.Size()/N <= GEMVMaxM && paddedK(i) == K &&
			slices.Equal(g.Nodes[nrm.Inputs[0]].Shape, nrm.Shape) && g.Nodes[nrm.Inputs[1]].Shape.Size() == K {
			readers[n.Inputs[0]] = append(readers[n.Inputs[0]], i)
		}
	}
	for v, lins := range readers {
		if uses[v] != len(lins) {
			continue
		}
		nrm := &g.Nodes[v]
		for _, i := range lins {
			out[i] = normedLinear{norm: v, x: nrm.Inputs[0], gain: nrm.Inputs[1], eps: nrm.Attr.Eps}
		}
	}
	return out
}

// readersOf lists, per node, the needed nodes that read it (each once, in node order).
func readersOf(g *graph.Graph, needed []bool) [][]int {
	readBy := make([][]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if needed[i] {
			for _, in := range n.Inputs {
				if in != graph.None && !slices.Contains(readBy[in], i) {
					readBy[in] = append(readBy[in], i)
				}
			}
		}
	}
	return readBy
}

// findStatesInPlace returns the StateWrite nodes whose kept rows only products read, each as its
// B operand (through views, or through a Transpose the product reads in place: stridedB): the
// products then read the state's own buffer (f32, packed f16 halves or int8 rows with scales,
// ops_state_load.wgsl), so the dispatch that converts the kept rows to an f32 value every run
// is not made, nor its arena storage. A decoder's KV cache is the case: at 2048 cached rows the
// conversion was most of a step's non-matmul time (NOTES.md).
func findStatesInPlace(g *graph.Graph, needed []bool, stridedB map[int]graph.Value) map[int]bool {
	outputs := map[graph.Value]bool{}
	for _, o := range g.Outputs {
		outputs[o] = true
	}
	inPlaceT := map[graph.Value]bool{} // Transposes a product reads through strides
	for m := range stridedB {
		inPlaceT[g.Nodes[m].Inputs[1]] = true
	}
	readBy := readersOf(g, needed)
	var onlyProducts func(v graph.Value) bool
	onlyProducts = func(v graph.Value) bool {
		if outputs[v] {
			return false
		}
		for _, r := range readBy[v] {
			rn := &g.Nodes[r]
			switch {
			case rn.Op == graph.OpMatMul && rn.Inputs[1] == v && rn.Inputs[0] != v:
			case inPlaceT[graph.Value(r)]:
			case rn.Op == graph.OpReshape || viewTranspose(g, rn):
				if !onlyProducts(graph.Value(r)) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	out := map[int]bool{}
	for i, n := range g.Nodes {
		if needed[i] && n.Op == graph.OpStateWrite && onlyProducts(graph.Value(i)) {
			out[i] = true
		}
	}
	return out
}

// findLinearGroups returns, keyed by the first in node order, the Linears that one GEMV
// dispatch can compute together (gemv_hw.wgsl MULTI, shaders.Key.Weights): up to
// lim.gemvWeights Linears without bias of the same x value (a decoder's q, k and v; gate and
// up), at most GEMVMaxM rows, x read as it is (paddedK == K), none of them run by a residual
// Add (fused). Whether their weights share a layout is the compiler's to check (it runs a
// group whose weights differ as separate dispatches, in the first one's place); the plan makes
// every member's result live from the first one's node, where the dispatch writes them all.
func findLinearGroups(g *graph.Graph, needed []bool, fused map[graph.Value]bool, paddedK func(node int) int, lim arenaLimits) map[int][]graph.Value {
	out := map[int][]graph.Value{}
	if lim.gemvWeights < 2 {
		return out
	}
	byX := map[graph.Value][]graph.Value{}
	var xs []graph.Value
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpLinear || n.Inputs[2] != graph.None || fused[graph.Value(i)] {
			continue
		}
		N, K := g.Nodes[n.Inputs[1]].Shape[0], g.Nodes[n.Inputs[1]].Shape[1]
		if n.Shape.Size()/N > GEMVMaxM || paddedK(i) != K {
			continue
		}
		x := n.Inputs[0]
		if byX[x] == nil {
			xs = append(xs, x)
		}
		byX[x] = append(byX[x], graph.Value(i))
	}
	for _, x := range xs {
		lins := byX[x]
		for len(lins) >= 2 {
			k := min(len(lins), lim.gemvWeights)
			out[int(lins[0])] = lins[:k:k]
			lins = lins[k:]
		}
	}
	return out
}

// softmaxProduct is a·b whose a is (a view of) a softmax over K read by that product alone:
// the product normalizes the softmax's input as it reads it (ops_matmul.wgsl SOFTMAX), so the
// softmax is not a dispatch of its own (attention's p·v after its masked softmax).
type softmaxProduct struct {
	softmax, x, mask graph.Value // the Softmax, its input, its mask (graph.None: none)
	views            []graph.Value
}

// findSoftmaxProducts returns the softmax products keyed by their MatMul node: a MatMul without
// TransB whose a is the Softmax or Reshapes of it (each read by the next alone) and whose rows
// are the softmax's (its last axis is K).
func findSoftmaxProducts(g *graph.Graph, needed []bool, uses []int) map[int]softmaxProduct {
	out := map[int]softmaxProduct{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpMatMul || n.Attr.TransB {
			continue
		}
		var views []graph.Value
		a := n.Inputs[0]
		for g.Nodes[a].Op == graph.OpReshape && uses[a] == 1 {
			views = append(views, a)
			a = g.Nodes[a].Inputs[0]
		}
		sn := &g.Nodes[a]
		as := g.Nodes[n.Inputs[0]].Shape
		if sn.Op != graph.OpSoftmax || uses[a] != 1 || a == n.Inputs[1] ||
			sn.Shape[len(sn.Shape)-1] != as[len(as)-1] {
			continue
		}
		out[i] = softmaxProduct{softmax: a, x: sn.Inputs[0], mask: sn.Inputs[1], views: views}
	}
	return out
}

// findStateWritePairs pairs StateWrites whose writes one dispatch can make (ops_state_write.wgsl
// PAIR): the same position value, states of one shape and storage format (two states: a graph
// writes each once), x of one shape, and the second's x made before the first runs (its write
// moves there; its read, if any, stays where it was), and the second's x not rotated as it is
// read (rotated: findRotatedWrites; the kernel rotates the first's only). A decoder's keys and
// values are the case. The result maps the first to the second.
func findStateWritePairs(g *graph.Graph, needed []bool, rotated map[int]int) map[int]int {
	out := map[int]int{}
	taken := map[int]bool{}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpStateWrite || taken[i] {
			continue
		}
		si := &g.Nodes[n.Inputs[0]]
		for j := i + 1; j < len(g.Nodes); j++ {
			m := &g.Nodes[j]
			if _, rot := rotated[j]; !needed[j] || m.Op != graph.OpStateWrite || taken[j] || rot {
				continue
			}
			sj := &g.Nodes[m.Inputs[0]]
			if m.Inputs[2] == n.Inputs[2] && sj.Attr.Storage == si.Attr.Storage && slices.Equal(sj.Shape, si.Shape) &&
				slices.Equal(g.Nodes[m.Inputs[1]].Shape, g.Nodes[n.Inputs[1]].Shape) && int(m.Inputs[1]) < i {
				out[i] = j
				taken[i], taken[j] = true, true
				break
			}
		}
	}
	return out
}

// findRotatedReads returns, keyed by reader, the table rotations (tableRotation, keyed by its
// Concat in ropes) whose result one reader alone reads, through views (Reshapes and transposes
// of axes of size 1, each read by the next alone), and rotates as it reads it
// (ops_state_rope.wgsl), so the rotation is not a dispatch of its own: a StateWrite's x (a
// decoder's keys, ops_state_write.wgsl ROPE) and a product's a (a decode step's query,
// ops_matmul.wgsl ROPE). A view keeps the elements' order, so the reader's element e is the
// rotation's. Products that normalize a softmax (softmaxes) read no rotation.
func findRotatedReads(g *graph.Graph, needed []bool, uses []int, ropes map[int]tableRotation, softmaxes map[int]softmaxProduct) map[int]int {
	out := map[int]int{}
	for i, n := range g.Nodes {
		var x graph.Value
		switch {
		case !needed[i]:
			continue
		case n.Op == graph.OpStateWrite:
			x = n.Inputs[1]
		case n.Op == graph.OpMatMul && n.Inputs[0] != n.Inputs[1]:
			if _, ok := softmaxes[i]; ok {
				continue
			}
			x = n.Inputs[0]
		default:
			continue
		}
		for xn := &g.Nodes[x]; (xn.Op == graph.OpReshape || viewTranspose(g, xn)) && uses[x] == 1; xn = &g.Nodes[x] {
			x = xn.Inputs[0]
		}
		if _, ok := ropes[int(x)]; ok && uses[x] == 1 {
			out[i] = int(x)
		}
	}
	return out
}

// findSiLULinears returns, keyed by Linear node, the SiLU products (findSiLUProducts, keyed by
// their Mul) that are a Linear's x and read by it alone, where the Linear runs gemv_hw.wgsl or
// gemv_a8.wgsl (lim.gemvSiLU, at most GEMVMaxM rows) on x as it is (paddedK == K) and both
// factors have x's shape: the GEMV forms SiLU(a)·b as it loads x (shaders.Key.SiLUX), so a
// feed-forward's SiLU·mul is no dispatch of its own.
func findSiLULinears(g *graph.Graph, needed []bool, uses []int, silus map[int]siluProduct, paddedK func(node int) int, lim arenaLimits) map[int]siluProduct {
	out := map[int]siluProduct{}
	if !lim.gemvSiLU {
		return out
	}
	for i, n := range g.Nodes {
		if !needed[i] || n.Op != graph.OpLinear {
			continue
		}
		x := n.Inputs[0]
		s, ok := silus[int(x)]
		N, K := g.Nodes[n.Inputs[1]].Shape[0], g.Nodes[n.Inputs[1]].Shape[1]
		xs := g.Nodes[x].Shape
		if ok && uses[x] == 1 && n.Shape.Size()/N <= GEMVMaxM && paddedK(i) == K &&
			slices.Equal(g.Nodes[s.a].Shape, xs) && slices.Equal(g.Nodes[s.b].Shape, xs) {
			out[i] = s
		}
	}
	return out
}
