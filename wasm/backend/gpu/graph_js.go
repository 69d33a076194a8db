//go:build js && wasm

package gpu

import (
	"errors"
	"fmt"
	"math"
	"syscall/js"
	"unsafe"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// poisonArena makes Compile fill the arena with NaN, so an output that no dispatch writes reads
// as NaN instead of as the zeros a fresh buffer holds. The package's tests set it; it is not an
// Option because no caller outside them wants it.
var poisonArena bool

// elemWG is the workgroup of the one-invocation-per-element kernels (no barriers, so the size
// matters little); the row reductions take rowWorkgroup's.
const elemWG = 64

// maxGroups is WebGPU's default maxComputeWorkgroupsPerDimension; grids fold into a second
// dimension beyond it.
const maxGroups = 65535

var _ backend.Compiler = (*Backend)(nil)

// Compile binds g's weights and builds everything a forward needs: the liveness-planned arena,
// the constants (Const data, float weights read as values, RoPE tables), every op's parameters
// in one uniform buffer, pipelines and bind groups. A Run then only writes the inputs, submits
// the prebuilt dispatches as one command buffer (recorded while the GPU ran the previous Run)
// and maps one readback buffer.
func (b *Backend) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	bound, err := backend.BindWeights(g, ws)
	if err != nil {
		return nil, fmt.Errorf("gpu compile: %w", err)
	}
	weights := map[string]*weight{}
	for name, bw := range bound {
		w, ok := bw.(*weight)
		if !ok || w.b != b {
			return nil, fmt.Errorf("gpu compile %q: weight %q was not uploaded to this backend", g.Name, name)
		}
		if w.chunks == nil {
			return nil, fmt.Errorf("gpu compile %q: weight %q was released", g.Name, name)
		}
		weights[name] = w
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("gpu compile: backend closed")
	}
	if err := b.dev.Err(); err != nil {
		return nil, fmt.Errorf("gpu compile %q: %w", g.Name, err)
	}
	p := &program{b: b, g: g}
	c := &compiler{p: p, weights: weights}
	if err := c.bindStates(ws); err != nil {
		return nil, fmt.Errorf("gpu compile %q: %w", g.Name, err)
	}
	if err := b.dev.PushErrorScope("validation"); err != nil {
		return nil, err
	}
	err = c.compile()
	if perr := b.dev.PopErrorScope("compile " + g.Name); err == nil {
		err = perr
	}
	if err != nil {
		p.destroy()
		return nil, fmt.Errorf("gpu compile %q: %w", g.Name, err)
	}
	return p, nil
}

// program is a compiled graph. Its buffers are its own; the weights stay the caller's.
type program struct {
	b        *Backend
	g        *graph.Graph
	plan     *graphPlan
	slabs    []*webgpu.Buffer
	consts   *webgpu.Buffer
	zeroIDs  *webgpu.Buffer // one int32 0: the ids of the gathers that densify weights
	params   *webgpu.Buffer
	readback *webgpu.Buffer
	scratch  *webgpu.Buffer   // split products' partials (scratchBuffer), or nil
	tails    []*webgpu.Buffer // norm tails' sums (tailBuffers)
	steps    []step
	forward  *webgpu.Dispatches // steps as one prepared list: a forward's pass is one call
	inputs   []ioRange          // per g.Inputs (size 0: an input nothing reads)
	outputs  []ioRange          // per g.Outputs, at their offsets in readback
	stage    js.Value           // staging Uint8Array for the inputs, as large as the largest
	host     []byte             // the mapped readback, copied in one call
	released bool
	// stateChecks: one per StateWrite, checked before a run is submitted.
	stateChecks []stateCheck
	// next holds the commands of the next Run, recorded while the GPU ran the last one: a
	// forward's commands are the same every run (its inputs go through the queue before the
	// submit), so recording them, thousands of calls into the browser for a large model, need
	// not wait for the GPU or make it wait.
	next  *webgpu.CommandBuffer
	runs  uint64 // runs submitted, queued ones included: a Feed names the last (run_js.go)
	chain chain  // Queue's readback buffers and commands (run_js.go)
}

// step is one dispatch, or a Linear's matmul (its own pipeline and one dispatch per chunk, two
// with K split across workgroups).
type step struct {
	pl     *webgpu.ComputePipeline
	group  *webgpu.BindGroup
	gx, gy int
	mm     *boundMatMul
}

// ioRange is where an input is written or an output read.
type ioRange struct {
	buf       *webgpu.Buffer
	off, size int64 // in buf
	at        int64 // outputs: offset in the readback buffer
}

// opPipeline returns the cached pipeline of an op kernel, building it on first use. The caller
// holds b.mu.
func (b *Backend) opPipeline(k shaders.OpKey) (*webgpu.ComputePipeline, error) {
	k = k.Normalize()
	if p := b.ops[k]; p != nil {
		return p, nil
	}
	src, err := k.Source()
	if err != nil {
		return nil, err
	}
	src.Variant = b.label + " " + src.Variant
	p, err := b.dev.CreateComputePipeline(src, "main", nil)
	if err != nil {
		return nil, err
	}
	if b.ops == nil {
		b.ops = map[shaders.OpKey]*webgpu.ComputePipeline{}
	}
	b.ops[k] = p
	return p, nil
}

// compiler builds one program. Bind groups need the params buffer, whose size is known only
// once every op has added its blocks, so ops queue their bind groups in later.
type compiler struct {
	p         *program
	weights   map[string]*weight
	params    []byte // the uniform image, one slot per block
	slot      int64  // bytes per slot: minUniformBufferOffsetAlignment, at least 256
	later     []func() error
	densify   []step  // compile-time dispatches: float weights read as values, made dense
	constData []byte  // the constant buffer's image
	stepsOut  *[]step // where the current op's steps go
	states    map[string]*state
	// statePairs: StateWrites whose dispatch writes another's rows too (fuse.go), to that one;
	// pairedWith: the other way.
	statePairs, pairedWith map[int]int
	// tailAt: each norm tail's buffer of sums or activation blocks, keyed by the RMSNorm;
	// tailHand: the a8 tails' counts and handoff (normtail_js.go).
	tailAt   map[int]webgpu.BufferBinding
	tailHand webgpu.BufferBinding
	// attnHand: the split attentions' counts and handoff (attn_js.go).
	attnHand webgpu.BufferBinding
	// warmSink: the attentions' warm-up store that never happens (attn_js.go warmOperands).
	warmSink *webgpu.Buffer
}

func (c *compiler) compile() error {
	p, b, g := c.p, c.p.b, c.p.g
	dl := b.dev.Limits()
	c.slot = max(256, int64(dl.MinUniformBufferOffsetAlignment))
	lim := arenaLimits{
		align:      max(16, int64(dl.MinStorageBufferOffsetAlignment)),
		maxBinding: b.maxBind,
		maxSlab:    dl.MaxBufferSize,
		gemvNorm:   fuseGEMVNorm && b.tune.GEMVKernel == shaders.GEMVHW && (b.tune.GEMVInt8 || gemvNormF32),
		// gemv_hw.wgsl and gemv_a8.wgsl (int8 activations) both form SiLU·mul on their x.
		gemvSiLU: fuseGEMVSiLU && b.tune.GEMVKernel == shaders.GEMVHW,
	}
	// Software adapters run products one invocation per output (splitMatMul): there each would
	// recompute its row's softmax, where the softmax's own dispatch costs them nothing much.
	lim.softmaxProducts = !b.caps.Software || forceSplitMatMul || forceSoftmaxProducts || forceAttn
	lim.attnKeys = c.attnKeys() // attn_js.go
	if fuseGEMVGroups && b.tune.GEMVKernel == shaders.GEMVHW {
		lim.gemvWeights = 3 // linearGroup runs fewer where the bindings do not fit
	}
	lim.swiGLU, lim.xTail = c.swiGLUFits(), c.xTailFits() // swiglu_js.go
	lim.kvWrite = c.kvWriteFits()                         // kvwrite_js.go
	lim.normTail = c.normTailFits()                       // normtail_js.go
	var err error
	if p.plan, err = c.plan(lim); err != nil {
		return err
	}
	if err := c.buffers(); err != nil {
		return err
	}
	if err := c.scratchBuffer(); err != nil {
		return err
	}
	if err := c.tailBuffers(); err != nil {
		return err
	}
	c.statePairs, c.pairedWith = findStateWritePairs(g, c.pairable(), p.plan.rotatedReads), map[int]int{}
	for i, j := range c.statePairs {
		c.pairedWith[j] = i
	}
	c.stepsOut = &p.steps
	for i := range g.Nodes {
		if _, member := p.plan.groupLead[i]; !p.plan.needed[i] || p.plan.fused[graph.Value(i)] || member {
			continue // a group's other Linears run in its first one's place (linearGroup)
		}
		if err := c.op(i); err != nil {
			n := &g.Nodes[i]
			return fmt.Errorf("%%%d %s %q: %w", i, n.Op, n.Label, err)
		}
	}
	c.stepsOut = &c.densify
	for i, n := range g.Nodes {
		if p.plan.dense[i] {
			if err := c.densifyWeight(i, c.weights[n.Attr.Name]); err != nil {
				return fmt.Errorf("weight %q: %w", n.Attr.Name, err)
			}
		}
	}
	if p.params, err = b.dev.CreateBuffer(c.label("params"), max(int64(len(c.params)), 16), webgpu.BufferUniform|webgpu.BufferCopyDst); err != nil {
		return err
	}
	for _, f := range c.later {
		if err := f(); err != nil {
			return err
		}
	}
	p.forward = webgpu.NewDispatches(dispatchList(p.steps))
	q := b.dev.Queue()
	if len(c.params) > 0 {
		if err := q.WriteBuffer(p.params, 0, jsutil.BytesToJS(c.params), 0, int64(len(c.params))); err != nil {
			return err
		}
	}
	if len(c.constData) > 0 {
		if err := q.WriteBuffer(p.consts, 0, jsutil.BytesToJS(c.constData), 0, int64(len(c.constData))); err != nil {
			return err
		}
	}
	if poisonArena {
		if err := p.poison(); err != nil {
			return err
		}
	}
	if len(c.densify) > 0 {
		enc, err := b.dev.CreateCommandEncoder(c.label("densify"))
		if err != nil {
			return err
		}
		if err := p.record(enc, c.densify, "densify"); err != nil {
			return err
		}
		cb, err := enc.Finish()
		if err != nil {
			return err
		}
		if err := q.Submit(cb); err != nil {
			return err
		}
	}
	return nil
}

func (c *compiler) label(what string) string {
	return fmt.Sprintf("%s graph %s %s", c.p.b.label, c.p.g.Name, what)
}

// buffers creates the arena slabs, the constant and readback buffers, and lays out the
// inputs, outputs and constants.
func (c *compiler) buffers() error {
	p, b, g, pl := c.p, c.p.b, c.p.g, c.p.plan
	for s, size := range pl.slabs {
		buf, err := b.dev.CreateBuffer(c.label(fmt.Sprintf("arena %d", s)), size, webgpu.BufferStorage|webgpu.BufferCopyDst|webgpu.BufferCopySrc)
		if err != nil {
			return err
		}
		p.slabs = append(p.slabs, buf)
	}
	var err error
	if p.consts, err = b.dev.CreateBuffer(c.label("constants"), max(pl.consts, 16), webgpu.BufferStorage|webgpu.BufferCopyDst|webgpu.BufferCopySrc); err != nil {
		return err
	}
	c.constData = make([]byte, pl.consts)
	for i, n := range g.Nodes {
		switch {
		case n.Op == graph.OpConst && pl.needed[i]:
			copy(c.constData[pl.at[i].off:], f32bytes(n.Attr.Data))
		case n.Op == graph.OpRoPE && pl.needed[i]:
			putFloats(c.constData[pl.freq[i].off:], ropeTable(n.Attr.Base, n.Shape[3]))
		}
	}
	maxIn := int64(0)
	for _, v := range g.Inputs {
		r := ioRange{}
		if pl.needed[v] {
			at := pl.at[v]
			r = ioRange{buf: p.buf(at), off: at.off, size: int64(g.Nodes[v].Shape.Size()) * 4}
		}
		maxIn = max(maxIn, r.size)
		p.inputs = append(p.inputs, r)
	}
	p.stage = js.Global().Get("Uint8Array").New(max(maxIn, 4))
	var read int64
	for _, v := range g.Outputs {
		at := pl.at[pl.root[v]]
		r := ioRange{buf: p.buf(at), off: at.off, size: int64(g.Nodes[v].Shape.Size()) * 4, at: read}
		read += r.size
		p.outputs = append(p.outputs, r)
	}
	p.host = make([]byte, read)
	p.readback, err = b.dev.CreateBuffer(c.label("readback"), max(read, 4), webgpu.BufferMapRead|webgpu.BufferCopyDst)
	return err
}

// buf is the buffer a place is in.
func (p *program) buf(at place) *webgpu.Buffer {
	if at.slab == constSlab {
		return p.consts
	}
	return p.slabs[at.slab]
}

// bind is binding i over the storage of value v.
func (p *program) bind(i int, v graph.Value) webgpu.BufferBinding {
	return p.bindPlace(i, p.plan.at[p.plan.root[v]])
}

func (p *program) bindPlace(i int, at place) webgpu.BufferBinding {
	return webgpu.BufferBinding{Binding: i, Buffer: p.buf(at), Offset: at.off, Size: at.size}
}

// block adds a uniform block to the params image and returns its binding, with a nil Buffer
// that withParams replaces once the params buffer exists. The binding spans the whole slot: a
// kernel's struct may be longer than the words an op sets (the rest is zero).
func (c *compiler) block(binding int, words []uint32) webgpu.BufferBinding {
	off := int64(len(c.params))
	c.params = append(c.params, make([]byte, c.slot)...)
	copy(c.params[off:], unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 4*len(words)))
	return webgpu.BufferBinding{Binding: binding, Offset: off, Size: c.slot}
}

// withParams is bs with the params buffer in the bindings block made.
func (c *compiler) withParams(bs []webgpu.BufferBinding) []webgpu.BufferBinding {
	out := make([]webgpu.BufferBinding, len(bs))
	for i, e := range bs {
		if e.Buffer == nil {
			e.Buffer = c.p.params
		}
		out[i] = e
	}
	return out
}

// dispatch queues one dispatch of kernel k: its uniform words at binding 0, the operands, and a
// grid covering groups workgroups.
func (c *compiler) dispatch(what string, k shaders.OpKey, words []uint32, groups int, operands ...webgpu.BufferBinding) error {
	return c.dispatchWith(what, k, groups, append([]webgpu.BufferBinding{c.block(0, words)}, operands...))
}

// dispatchWith queues one dispatch whose bindings (uniform blocks included) the caller made.
func (c *compiler) dispatchWith(what string, k shaders.OpKey, groups int, bindings []webgpu.BufferBinding) error {
	gx := min(groups, maxGroups)
	return c.dispatchGrid(what, k, gx, (groups+gx-1)/gx, bindings)
}

// dispatchGrid queues one dispatch of kernel k over a gx × gy grid (each within the device's
// workgroups a dimension), its bindings made by the caller.
func (c *compiler) dispatchGrid(what string, k shaders.OpKey, gx, gy int, bindings []webgpu.BufferBinding) error {
	if gx > maxGroups || gy > maxGroups {
		return fmt.Errorf("%s: a grid of %d × %d workgroups, over the %d a dimension", what, gx, gy, maxGroups)
	}
	pl, err := c.p.b.opPipeline(k)
	if err != nil {
		return err
	}
	c.queue(c.label(what), pl, gx, gy, bindings)
	return nil
}

// queue appends a step of pipeline pl over a gx × gy grid to the current op's steps; its bind
// group (label, bindings with the params buffer) is made once the params buffer exists.
func (c *compiler) queue(label string, pl *webgpu.ComputePipeline, gx, gy int, bindings []webgpu.BufferBinding) {
	out := c.stepsOut
	*out = append(*out, step{pl: pl, gx: gx, gy: gy})
	i := len(*out) - 1
	c.later = append(c.later, func() error {
		g, err := c.p.b.dev.CreateBindGroup(label, pl.BindGroupLayout(0), c.withParams(bindings)...)
		(*out)[i].group = g
		return err
	})
}

func groupsFor(n, wg int) int { return (n + wg - 1) / wg }

// copyVec is ops_copy.wgsl's VEC: elements one invocation copies along the last dimension.
const copyVec = 4

// op lowers node i into steps.
func (c *compiler) op(i int) error {
	n := &c.p.g.Nodes[i]
	what := fmt.Sprintf("%%%d %s %s", i, n.Op, n.Label)
	switch n.Op {
	case graph.OpInput, graph.OpConst, graph.OpWeight, graph.OpReshape, graph.OpState:
		return nil // written before the run, at Compile, a view, or a buffer of its own
	case graph.OpStateWrite:
		return c.stateWrite(what, i, n)
	case graph.OpScale, graph.OpReLU, graph.OpGELU, graph.OpSiLU, graph.OpTanh:
		if s, ok := c.p.plan.scaled[i]; ok {
			return c.product(what+" (product scaled)", int(s.mm), graph.Value(i), n.Attr.Scale)
		}
		return c.unary(what, i, n)
	case graph.OpAdd, graph.OpSub, graph.OpMul, graph.OpDiv:
		if s, ok := c.p.plan.swiglus[i]; ok {
			return c.swiGLU(what, i, s) // swiglu_js.go
		}
		if s, ok := c.p.plan.siluMuls[i]; ok {
			return c.broadcast(what+" (SiLU·mul)", "silu_mul", graph.Value(i), s.a, s.b)
		}
		if r, ok := c.p.plan.residuals[i]; ok {
			return c.linearTo(what+" (Linear + residual)", int(r.lin), graph.Value(i), r.res)
		}
		return c.binary(what, i, n)
	case graph.OpLayerNorm, graph.OpRMSNorm, graph.OpL2Normalize:
		if _, ok := c.p.plan.tailOf[i]; ok {
			return nil // x·gain and sums written by the residual Linear's GEMV (normtail.go)
		}
		return c.norm(what, i, n)
	case graph.OpSoftmax:
		return c.softmax(what, i, n)
	case graph.OpMatMul:
		return c.product(what, i, graph.Value(i), 1)
	case graph.OpTranspose, graph.OpSlice, graph.OpConcat:
		if viewTranspose(c.p.g, n) {
			return nil // a view, as a Reshape is (arena.go)
		}
		if m, ok := c.p.plan.ropes[i]; ok {
			return c.rotateByTables(what, i, n, m)
		}
		return c.rearrange(what, i, n)
	case graph.OpMeanPool:
		xs := c.shape(n, 0)
		k := shaders.OpKey{Family: shaders.OpPool, Variant: "mean", WG: elemWG}
		return c.dispatch(what, k, []uint32{uint32(xs[0]), uint32(xs[1]), uint32(xs[2]), 0}, groupsFor(n.Shape.Size(), elemWG),
			c.p.bind(1, n.Inputs[0]), c.p.bind(2, n.Inputs[1]), c.p.bind(3, graph.Value(i)))
	case graph.OpRoPE:
		return c.rope(what, i, n)
	case graph.OpGather:
		return c.gather(what, n, graph.Value(i))
	case graph.OpLinear:
		if lins, ok := c.p.plan.groups[i]; ok {
			return c.linearGroup(lins)
		}
		return c.linearTo(what, i, graph.Value(i), graph.None)
	case graph.OpArgMax:
		return c.argMax(what, i, n) // argmax_js.go
	}
	return fmt.Errorf("op %s has no WebGPU kernel", n.Op)
}

// shape is the shape of operand j of n.
func (c *compiler) shape(n *graph.Node, j int) graph.Shape { return c.p.g.Nodes[n.Inputs[j]].Shape }

// unary queues an elementwise op of one operand (Scale's factor in the uniform block).
func (c *compiler) unary(what string, i int, n *graph.Node) error {
	size := n.Shape.Size()
	k := shaders.OpKey{Family: shaders.OpUnary, Variant: n.Op.String(), WG: elemWG}
	return c.dispatch(what, k, []uint32{uint32(size), math.Float32bits(n.Attr.Scale), 0, 0}, groupsFor(size, elemWG),
		c.p.bind(1, n.Inputs[0]), c.p.bind(2, graph.Value(i)))
}

// binary queues an elementwise op of two broadcast operands.
func (c *compiler) binary(what string, i int, n *graph.Node) error {
	return c.broadcast(what, n.Op.String(), graph.Value(i), n.Inputs[0], n.Inputs[1])
}

// broadcast queues ops_binary.wgsl's variant over a and b broadcast to y's shape.
func (c *compiler) broadcast(what, variant string, y, a, b graph.Value) error {
	g := c.p.g
	ys := g.Nodes[y].Shape
	size := ys.Size()
	dims, st := mergeDims(ys, graph.BroadcastStrides(g.Nodes[a].Shape, ys), graph.BroadcastStrides(g.Nodes[b].Shape, ys))
	if len(dims) > 8 {
		return fmt.Errorf("broadcast over %d dimensions that do not merge; the kernel takes 8", len(dims))
	}
	words := append([]uint32{uint32(size), uint32(len(dims)), 0, 0}, pack8(dims, st[0], st[1])...)
	k := shaders.OpKey{Family: shaders.OpBinary, Variant: variant, WG: elemWG}
	return c.dispatch(what, k, words, groupsFor(size, elemWG), c.p.bind(1, a), c.p.bind(2, b), c.p.bind(3, y))
}

// norm queues a row normalization over the last dimension (with gain, and bias for LayerNorm).
func (c *compiler) norm(what string, i int, n *graph.Node) error {
	p := c.p
	size := n.Shape.Size()
	D := n.Shape[len(n.Shape)-1]
	words := []uint32{uint32(size / D), uint32(D), math.Float32bits(n.Attr.Eps), 0}
	ops := []webgpu.BufferBinding{p.bind(1, n.Inputs[0]), p.bind(2, graph.Value(i))}
	variant := map[graph.Op]string{graph.OpLayerNorm: "layernorm", graph.OpRMSNorm: "rmsnorm", graph.OpL2Normalize: "l2"}[n.Op]
	if n.Op != graph.OpL2Normalize {
		ops = append(ops, p.bind(3, n.Inputs[1]))
	}
	if n.Op == graph.OpLayerNorm {
		ops = append(ops, p.bind(4, n.Inputs[2]))
	}
	dl := p.b.dev.Limits()
	wg := normWorkgroup(D, p.b.caps.Software, min(dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX))
	return c.dispatch(what, shaders.OpKey{Family: shaders.OpNorm, Variant: variant, WG: wg}, words, size/D, ops...)
}

// softmax queues a softmax over the last dimension, masked where n has a second operand.
func (c *compiler) softmax(what string, i int, n *graph.Node) error {
	p := c.p
	size := n.Shape.Size()
	r := len(n.Shape)
	D := n.Shape[r-1]
	ops := []webgpu.BufferBinding{p.bind(1, n.Inputs[0]), p.bind(2, graph.Value(i))}
	words := []uint32{uint32(size / D), uint32(D), 0, 0}
	variant := "plain"
	if mask := n.Inputs[1]; mask != graph.None {
		variant = "masked"
		mw, err := c.maskWords(n)
		if err != nil {
			return err
		}
		words = append(words[:2], mw[0], mw[1]) // rank, mlast, then dims and ms
		words = append(words, mw[4:]...)
		ops = append(ops, p.bind(3, mask))
	}
	wg := rowWorkgroup(D, p.b.caps.Software)
	return c.dispatch(what, shaders.OpKey{Family: shaders.OpSoftmax, Variant: variant, WG: wg}, words, size/D, ops...)
}

// maskWords are how softmax node n's kernel finds a row's mask entries (ops_softmax.wgsl's
// rank, mlast, two words unused, dims and ms; ops_matmul.wgsl's SMASK fields): the mask's
// broadcast strides over the rows' dimensions, merged, and along the last.
func (c *compiler) maskWords(n *graph.Node) ([]uint32, error) {
	r := len(n.Shape)
	mst := graph.BroadcastStrides(c.shape(n, 1), n.Shape)
	dims, st := mergeDims(n.Shape[:r-1], mst[:r-1])
	if len(dims) > 8 {
		return nil, fmt.Errorf("mask over %d dimensions that do not merge; the kernel takes 8", len(dims))
	}
	return append([]uint32{uint32(len(dims)), uint32(mst[r-1]), 0, 0}, pack8(dims, st[0])...), nil
}

// product queues the batched product of two values of MatMul node i (attention's scores and
// mix), its sums times alpha, into out's storage: i itself, or a Scale of it (fuse.go).
func (c *compiler) product(what string, i int, out graph.Value, alpha float32) error {
	if at, ok := c.p.plan.attns[i]; ok {
		return c.attention(what, i, out, alpha, at) // attn_js.go: q·kᵀ, softmax and p·v
	}
	n := &c.p.g.Nodes[i]
	size := n.Shape.Size()
	as, r := c.shape(n, 0), len(n.Shape)
	M, K, N := as[r-2], as[r-1], n.Shape[r-1]
	k := shaders.OpKey{Family: shaders.OpMatMul, Variant: "ab", WG: elemWG}
	groups := groupsFor(size, elemWG)
	b := n.Inputs[1]
	src, strided := c.p.plan.stridedB[i]
	if strided {
		b = src // the Transpose's source, read in place
	} else {
		src = graph.None
	}
	sb, sj, sk := bStrides(c.p.g, n, src)
	if n.Attr.TransB {
		k.Variant = "abt"
	}
	if splitMatMul(K, c.p.b.caps.Software) {
		// ops_matmul.wgsl's JT: the outputs a workgroup computes (AB_SPLIT 32, ABT_SPLIT one per
		// 32 threads).
		dl := c.p.b.dev.Limits()
		wg := min(map[bool]int{false: splitWG, true: splitWGT}[n.Attr.TransB], dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
		jt := map[bool]int{false: 32, true: wg / 32}[n.Attr.TransB]
		k.Variant, k.WG = k.Variant+"_split", wg
		groups = size / N * groupsFor(N, jt)
	}
	words := make([]uint32, 12, 32)
	copy(words, []uint32{uint32(size), uint32(M), uint32(N), uint32(K), uint32(sb), uint32(sj), uint32(sk), math.Float32bits(alpha)})
	if n.Attr.TransB && K <= 128 && (forceQKGroup || !c.p.b.caps.Software && N >= qkGroupFrom) {
		// ops_matmul.wgsl's ABT_GROUP: 32 lanes a row of b, qkGroupKeys outputs a workgroup.
		dl := c.p.b.dev.Limits()
		keys := qkGroupKeys
		if keys == 0 {
			keys = qkChunk(N)
		}
		k.Variant, k.WG = "abt_group", min(qkGroupWG, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
		if qkPreload {
			k.Variant = "abt_preload"
		}
		groups = size / N * groupsFor(N, keys)
		words = words[:16]
		words[15] = uint32(keys)
	}
	bb := c.p.bind(2, b)
	if s := c.stateInPlace(b); s != nil {
		// b is the state's buffer: read in place, no f32 copy (fuse.go's findStatesInPlace).
		bb = s.whole(2)
		s.readInPlace(&k, words)
	}
	operands := []webgpu.BufferBinding{c.p.bind(1, n.Inputs[0]), bb, c.p.bind(3, out)}
	words, operands = c.rotatedA(i, &k, words, operands)
	if sm, ok := c.p.plan.softmaxes[i]; ok {
		// a is the softmax's input, normalized as the product reads it (fuse.go).
		operands[0] = c.p.bind(1, sm.x)
		k.Softmax = "plain"
		if sm.mask != graph.None {
			k.Softmax = "masked"
			mw, err := c.maskWords(&c.p.g.Nodes[sm.softmax])
			if err != nil {
				return err
			}
			words = append(words, mw...)
			operands = append(operands, c.p.bind(4, sm.mask))
		}
	}
	if ks, ok := c.keySplitOf(i); ok {
		return c.keySplitProduct(what, k, ks, words, operands) // pv_split_js.go
	}
	words, groups = c.shortProduct(i, &k, words, groups) // pv_short_js.go
	return c.dispatch(what, k, words, groups, operands...)
}

// rotatedA rebinds operands[0], the a of product i, to the input of the table rotation it
// applies as it reads a, if any (fuse.go's findRotatedReads): the tables at bindings 5 and 6,
// their rows and pairs in words[11] and words[14] (words grown to 16 if shorter), k.Rope set.
func (c *compiler) rotatedA(i int, k *shaders.OpKey, words []uint32, operands []webgpu.BufferBinding) ([]uint32, []webgpu.BufferBinding) {
	r, ok := c.p.plan.rotatedReads[i]
	if !ok {
		return words, operands
	}
	m, rn := c.p.plan.ropes[r], &c.p.g.Nodes[r]
	k.Rope = true
	operands[0] = c.p.bind(1, m.x)
	operands = append(operands, c.p.bind(5, m.cos), c.p.bind(6, m.sin))
	words = words[:max(len(words), 16)]
	words[11], words[14] = uint32(rn.Shape[1]), uint32(rn.Shape[2])
	return words, operands
}

// splitWG and splitWGT are the workgroups of ops_matmul.wgsl's split products (at most the
// device's): AB_SPLIT's splitWG/32 groups of 32 outputs, ABT_SPLIT's splitWGT/32 outputs of 32
// threads each. p·v of one token has only Dh/32 workgroups a head: on an H200 at 2048 cached
// rows, 256 threads each walking 256 keys took 111 µs a layer (run 13: latency, not bytes), so
// it gets 1024 threads, 4× the loads in flight and a quarter of the walk each. Variables:
// BenchmarkDecode's -nibble.splitwg and -nibble.splitwgt set them.
var splitWG, splitWGT = 1024, 256

// qkGroupFrom is the number of keys from which a·bᵀ with K ≤ 128 (q·kᵀ of one token) runs on
// hardware adapters as ops_matmul.wgsl's ABT_GROUP, 32 lanes a key, a chunk of keys a workgroup
// of qkGroupWG threads (a power of two, 32 to 512), instead of the product of splitMatMul. On an
// H200 (NOTES.md, runs 17–18, 7B decode step, int8 activations) it took 5.9 µs a layer against
// 6.5 at 128 keys, 7.7 against 14.8 at 512, 13.9 against 46.3 at 2048. The chunk is qkChunk's
// unless qkGroupKeys is set. forceQKGroup makes every such product use it (the package's tests,
// on SwiftShader). BenchmarkDecode's -nibble.qkgroup, -nibble.qkgroupfrom, -nibble.qkgroupkeys
// and -nibble.qkgroupwg set them.
var (
	qkGroupFrom            = 1
	forceQKGroup           bool
	qkGroupKeys, qkGroupWG = 0, 256
)

// qkPreload runs ABT_GROUP as its variant abt_preload, each round's rows of b loaded before any
// is used: one trip to memory a round instead of R, if the compiler issues each row's load only
// after the dot and store of the row before (q·kᵀ took 5.8 µs a layer at 128 keys on an H200,
// ~3 over a dispatch's fixed cost, for one round). Not yet timed there; BenchmarkDecode's
// -nibble.qkpreload sets it.
var qkPreload bool

// qkChunk is the keys a workgroup of ABT_GROUP computes over n keys: 32 (one round of 256
// threads) below 1024 keys, 64 from there (run 18's sweep of 8–128 keys and 64–256 threads: 32
// was fastest at 128 and 512 keys, 64 at 2048, where 32 heads × 32 chunks already fill the GPU).
func qkChunk(n int) int {
	if n >= 1024 {
		return 64
	}
	return 32
}

// splitMatMul reports whether a·b or a·bᵀ over K runs with K split across a workgroup: on GPUs,
// from K = 64 (on an H200 the
// one-invocation-per-output kernel took 380 µs for p·v of one token over a 2048-token cache,
// the split one 51 µs; NOTES.md). Software adapters keep one invocation per output: their
// barriers are costly.
func splitMatMul(k int, software bool) bool { return forceSplitMatMul || !software && k >= 64 }

// fuseGEMVGroups lets the Linears of one x run as one GEMV (fuse.go's findLinearGroups);
// BenchmarkDecode's -nibble.gemvgroups=false times a step without, to weigh the fusion.
var fuseGEMVGroups = true

// fuseGEMVSiLU lets a SiLU product read only by a GEMV be formed as the GEMV loads x (fuse.go's
// findSiLULinears); BenchmarkDecode's -nibble.gemvsilu=false times a step without.
var fuseGEMVSiLU = true

// fuseGEMVNorm lets RMS norms run inside the GEMVs that read them (fuse.go's normedLinear);
// BenchmarkDecode's -nibble.gemvnorm=false times a step without, to weigh the fusion.
var fuseGEMVNorm = true

// gemvNormF32 keeps the RMS norm inside the GEMVs with f32 activations too (with int8
// activations the norm's pre-pass, normpre_js.go, needs the fusion). Off: on the H200 (run 39 of
// issue 15) a 7B step with the norms as dispatches of their own (4.5 µs each since
// ops_norm.wgsl loads a row in one round) took 3.53 ms of GPU against 3.81 with them inside the
// GEMVs, whose prologue (the gain beside each x load, Σx² in every workgroup) cost the SwiGLU
// GEMV 40.0 against 28.3 µs a layer. Tests set it to check the fused kernels; BenchmarkDecode's
// -nibble.gemvnormf32 times it.
var gemvNormF32 = false

// forceSoftmaxProducts runs softmaxes inside the products after them on software adapters too:
// the package's tests set it, so that SwiftShader checks the unsplit kernel's SOFTMAX.
var forceSoftmaxProducts bool

// forceSplitMatMul makes every product split K: the package's tests set it, so that SwiftShader
// checks the kernel GPUs run.
var forceSplitMatMul bool

// rearrange queues the strided copies of a Transpose, a Slice or a Concat.
func (c *compiler) rearrange(what string, i int, n *graph.Node) error {
	p, v := c.p, graph.Value(i)
	switch n.Op {
	case graph.OpTranspose:
		xs := c.shape(n, 0).Strides()
		ss := make([]int, len(n.Attr.Perm))
		for d, a := range n.Attr.Perm {
			ss[d] = xs[a]
		}
		return c.copy(what, n.Shape, ss, n.Shape.Strides(), 0, 0, -1, p.bind(1, n.Inputs[0]), p.bind(2, v))
	case graph.OpSlice:
		xs := c.shape(n, 0).Strides()
		return c.copy(what, n.Shape, xs, n.Shape.Strides(), n.Attr.Start*xs[n.Attr.Axis], 0, -1, p.bind(1, n.Inputs[0]), p.bind(2, v))
	}
	os := n.Shape.Strides()
	off := 0
	for j := range n.Inputs {
		s := c.shape(n, j)
		if err := c.copy(fmt.Sprintf("%s [%d]", what, j), s, s.Strides(), os, 0, off*os[n.Attr.Axis], -1, p.bind(1, n.Inputs[j]), p.bind(2, v)); err != nil {
			return err
		}
		off += s[n.Attr.Axis]
	}
	return nil
}

// rotateByTables queues the ten ops of a table rotation ending at Concat node i as one dispatch.
func (c *compiler) rotateByTables(what string, i int, n *graph.Node, m tableRotation) error {
	p := c.p
	pairs := n.Shape.Size() / 2
	k := shaders.OpKey{Family: shaders.OpRoPE, Variant: "table", WG: elemWG}
	return c.dispatch(what+" (RoPE by tables)", k, []uint32{uint32(pairs), 0, uint32(n.Shape[1]), uint32(n.Shape[2])}, groupsFor(pairs, elemWG),
		p.bind(1, m.x), p.bind(2, m.cos), p.bind(3, graph.Value(i)), p.bind(4, m.sin))
}

// rope queues the rotation of x's pairs by its positions (frequency table in the constants).
func (c *compiler) rope(what string, i int, n *graph.Node) error {
	p := c.p
	s, size := n.Shape, n.Shape.Size()
	variant := "halves"
	if n.Attr.Interleaved {
		variant = "interleaved"
	}
	k := shaders.OpKey{Family: shaders.OpRoPE, Variant: variant, WG: elemWG}
	return c.dispatch(what, k, []uint32{uint32(size / 2), uint32(s[1]), uint32(s[2]), uint32(s[3] / 2)}, groupsFor(size/2, elemWG),
		p.bind(1, n.Inputs[0]), p.bind(2, n.Inputs[1]), p.bind(3, graph.Value(i)), p.bindPlace(4, p.plan.freq[i]))
}

// copy queues the strided copy of dims from x (strides ss from sbase) to y (strides ds from
// dbase); lim ≥ 0 zero-fills the indices whose last coordinate is ≥ lim.
func (c *compiler) copy(what string, dims graph.Shape, ss, ds []int, sbase, dbase, lim int, x, y webgpu.BufferBinding) error {
	size := dims.Size()
	md, st := mergeDims(dims, ss, ds)
	if lim >= 0 {
		// The zero fill tests the last coordinate: that dimension must stay as it is.
		r := len(dims) - 1
		lead, lst := mergeDims(dims[:r], ss[:r], ds[:r])
		md = append(lead, dims[r])
		st = [][]int{append(lst[0], ss[r]), append(lst[1], ds[r])}
	}
	if len(md) > 8 {
		return fmt.Errorf("copy over %d dimensions that do not merge; the kernel takes 8", len(md))
	}
	l := uint32(math.MaxUint32)
	if lim >= 0 {
		l = uint32(lim)
	}
	last := md[len(md)-1]
	chunks := (last + copyVec - 1) / copyVec
	threads := size / last * chunks
	words := append([]uint32{uint32(threads), uint32(len(md)), uint32(sbase), uint32(dbase), l, uint32(chunks), 0, 0}, pack8(md, st[0], st[1])...)
	k := shaders.OpKey{Family: shaders.OpCopy, Variant: "strided", WG: elemWG}
	x.Binding, y.Binding = 1, 2
	return c.dispatch(what, k, words, groupsFor(threads, elemWG), x, y)
}

// linearTo queues x·wᵀ (+ bias) of Linear node i into out's storage: x copied into zero-padded
// rows first when the weight's device rows are longer than K, the matmul kernels of gpu_js.go,
// then the bias added in place. With res (not graph.None), out is the Add of res and the
// Linear, added by the GEMV kernel as it stores (fuse.go's residualLinear).
func (c *compiler) linearTo(what string, i int, out, res graph.Value) error {
	p := c.p
	n := &p.g.Nodes[i]
	w := c.weights[p.g.Nodes[n.Inputs[1]].Attr.Name]
	N, K := w.Shape()
	m := p.g.Nodes[n.Inputs[0]].Shape.Size() / K
	kp := w.paddedK()
	x := p.bind(2, n.Inputs[0])
	nl, normed := p.plan.normed[i]
	if normed {
		x = p.bind(2, nl.x) // the norm's input: the GEMV normalizes it
	}
	sl, silu := p.plan.siluLinears[i]
	if silu {
		x = p.bind(2, sl.a) // SiLU's input: the GEMV multiplies SiLU(a) by b as it loads x
	}
	if pad := p.plan.pad[i]; pad.size > 0 {
		padded := p.bindPlace(2, pad)
		if err := c.copy(what+" pad", graph.Shape{m, kp}, []int{K, 1}, []int{kp, 1}, 0, 0, K, x, padded); err != nil {
			return err
		}
		x = padded
	}
	x.Size = int64(m*kp) * 4
	y := p.bind(3, out)
	key := keyFor(w.l.format, w.l.n, m, p.b.feat, p.b.tune)
	if mul, ok := p.plan.xTailOf[i]; ok {
		p.b.tune.readXQ(&key) // x as the SwiGLU GEMV's blocks of it (swiglu.go)
		x = c.tailAt[mul]
		x.Binding = 2
	}
	var extra []webgpu.BufferBinding
	if res != graph.None {
		key.Residual = true
		extra = c.withNormTail(out, &key, append(extra, p.bind(6, res)))
	}
	if normed {
		key.Norm = true
		var err error
		if x, extra, err = c.normInput(w, &key, m, w.matmulParams(m)[0], x, nl, extra, c.label(what)); err != nil {
			return err
		}
	}
	if silu {
		key.SiLUX = true
		extra = append(extra, p.bind(15, sl.b))
	}
	var pars []webgpu.BufferBinding
	for _, words := range w.matmulParams(m) {
		if normed {
			words[11] = math.Float32bits(nl.eps) // decode.wgsl's params.eps
		}
		pars = append(pars, c.block(0, words[:]))
	}
	p.steps = append(p.steps, step{})
	si := len(p.steps) - 1
	label := c.label(what)
	c.later = append(c.later, func() error {
		bm, err := p.b.bindMatMul(label, w, key, m, x, y, p.scratch, c.withParams(pars), extra...)
		p.steps[si].mm = bm
		return err
	})
	if b := n.Inputs[2]; b != graph.None {
		words := append([]uint32{uint32(m * N), 1, 0, 0}, pack8([]int{N})...)
		k := shaders.OpKey{Family: shaders.OpBinary, Variant: "bias", WG: elemWG}
		return c.dispatch(what+" bias", k, words, groupsFor(m*N, elemWG), p.bind(2, b), p.bind(3, out))
	}
	return nil
}

// gather queues table[ids]: from an f32 value, or from a resident weight one dispatch per row
// chunk (see ops_gather.wgsl).
func (c *compiler) gather(what string, n *graph.Node, v graph.Value) error {
	p := c.p
	t, ids := n.Inputs[0], n.Inputs[1]
	tn := &p.g.Nodes[t]
	V, D := tn.Shape[0], tn.Shape[1]
	count := p.g.Nodes[ids].Shape.Size()
	if tn.Op != graph.OpWeight {
		k := shaders.OpKey{Family: shaders.OpGather, Variant: "value", WG: elemWG}
		words := []uint32{uint32(count), uint32(D), uint32(V), 0, 0, 0, 1, 0}
		return c.dispatchWith(what, k, groupsFor(count*D, elemWG), []webgpu.BufferBinding{c.block(6, words), p.bind(1, t), p.bind(2, ids), p.bind(3, v)})
	}
	return c.gatherWeight(what, c.weights[tn.Attr.Name], count, D, V, p.bind(2, ids), p.bind(3, v))
}

// gatherWeight reads count rows of d elements of a [v, d] view of w.
func (c *compiler) gatherWeight(what string, w *weight, count, d, v int, ids, y webgpu.BufferBinding) error {
	f := w.l.format
	k := shaders.OpKey{Family: shaders.OpGather, Variant: "weight", WG: elemWG, Bits: f.Bits,
		Asym: f.Scheme == quant.Asymmetric, ScaleF16: f.Scales == quant.ScaleF16}
	dec := w.matmulParams(1)
	for ci, ch := range w.chunks {
		first := uint32(0)
		if ci == 0 {
			first = 1
		}
		words := []uint32{uint32(count), uint32(d), uint32(v), uint32(w.l.k), uint32(ch.r0), uint32(ch.r1), first, 0}
		// decode.wgsl's Params (binding 0) describe the chunk; the gather's own are at binding 6.
		bs := []webgpu.BufferBinding{c.block(0, dec[ci][:]), c.block(6, words), {Binding: 1, Buffer: ch.data}, ids, y}
		if ch.scales != nil {
			bs = append(bs, webgpu.BufferBinding{Binding: 4, Buffer: ch.scales})
		}
		if ch.zeros != nil {
			bs = append(bs, webgpu.BufferBinding{Binding: 5, Buffer: ch.zeros})
		}
		if err := c.dispatchWith(fmt.Sprintf("%s rows %d-%d", what, ch.r0, ch.r1), k, groupsFor(count*d, elemWG), bs); err != nil {
			return err
		}
	}
	return nil
}

// densifyWeight queues the compile-time copy of a float weight into its dense f32 place in the
// constant buffer: a gather of row 0 of the weight viewed as [1, size].
func (c *compiler) densifyWeight(i int, w *weight) error {
	p := c.p
	size := p.g.Nodes[i].Shape.Size()
	if p.zeroIDs == nil {
		// Its own buffer: in the constant buffer it would be read while that buffer is written.
		var err error
		if p.zeroIDs, err = p.b.dev.CreateBuffer(c.label("zero ids"), 16, webgpu.BufferStorage); err != nil {
			return err
		}
	}
	ids := webgpu.BufferBinding{Binding: 2, Buffer: p.zeroIDs}
	return c.gatherWeight(fmt.Sprintf("densify %s", w.name), w, 1, size, 1, ids, p.bind(3, graph.Value(i)))
}

// pack8 lays out int lists as array<vec4<u32>, 2> each (zero-filled to 8).
func pack8(lists ...[]int) []uint32 {
	out := make([]uint32, 8*len(lists))
	for i, l := range lists {
		for j, v := range l {
			out[8*i+j] = uint32(v)
		}
	}
	return out
}

// ropeTable is ops_rope.wgsl's freq: per pair i, base^(−2i/dh)/2π split into (h1, h0, lo, 0),
// h1 and h0 of 12 significant bits so that their products with 12-bit halves of a position are
// exact in f32.
func ropeTable(base float32, dh int) []float32 {
	out := make([]float32, 0, dh/2*4)
	for i := 0; i < dh/2; i++ {
		c := math.Pow(float64(base), -2*float64(i)/float64(dh)) / (2 * math.Pi)
		hi := float32(c)
		h1 := math.Float32frombits(math.Float32bits(hi) &^ 0xfff)
		out = append(out, h1, hi-h1, float32(c-float64(hi)), 0)
	}
	return out
}

func putFloats(dst []byte, f []float32) { copy(dst, f32bytes(f)) }

func i32bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// scratchBuffer creates the program's scratch, as large as the largest of its split products
// needs: the partial products of a GEMM split along K across workgroups (partBytes: the slices'
// sums, added into y by a second dispatch) and those of a softmax product split over keys
// (keySplitOf: each chunk's max, Σe and Σe·v, merged by a second dispatch). One buffer serves
// them all: the dispatches of a pass run in order, each product's second dispatch before the
// next product writes. The program's own rather than the backend's, so that no later growth can
// leave its bind groups pointing at a destroyed buffer; made before any op binds it.
func (c *compiler) scratchBuffer() error {
	p := c.p
	var size int64
	for i, n := range p.g.Nodes {
		if !p.plan.needed[i] {
			continue
		}
		if n.Op == graph.OpLinear {
			w := c.linearWeight(graph.Value(i))
			m := p.g.Nodes[n.Inputs[0]].Shape.Size() / w.l.k
			size = max(size, partBytes(keyFor(w.l.format, w.l.n, m, p.b.feat, p.b.tune), m, w.l.n), c.normPrepassBytes(i))
		}
		if s, ok := c.keySplitOf(i); ok {
			size = max(size, s.scratchAt)
		}
	}
	if size == 0 {
		return nil
	}
	var err error
	p.scratch, err = p.b.dev.CreateBuffer(c.label("split products' partials"), size, webgpu.BufferStorage|webgpu.BufferCopyDst)
	return err
}

// poison fills every arena slab, and the split products' scratch, with NaN.
func (p *program) poison() error {
	const chunk = 1 << 20
	nan := make([]float32, chunk/4)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	arr := jsutil.BytesToJS(f32bytes(nan))
	bufs := p.slabs
	if p.scratch != nil {
		bufs = append(bufs[:len(bufs):len(bufs)], p.scratch)
	}
	for _, s := range bufs {
		for off := int64(0); off < s.Size(); off += chunk {
			if err := p.b.dev.Queue().WriteBuffer(s, off, arr, 0, min(chunk, s.Size()-off)); err != nil {
				return err
			}
		}
	}
	return nil
}

// record appends steps to one compute pass of enc.
func (p *program) record(enc *webgpu.CommandEncoder, steps []step, label string) error {
	return p.recordList(enc, webgpu.NewDispatches(dispatchList(steps)), label, nil)
}

// recordList appends a prepared list of dispatches to one compute pass of enc, its beginning
// and end written into ts's queries where ts is not nil.
func (p *program) recordList(enc *webgpu.CommandEncoder, list *webgpu.Dispatches, label string, ts *webgpu.TimestampWrites) error {
	pass, err := enc.BeginComputePass(p.b.label+" graph "+p.g.Name+" "+label, ts)
	if err != nil {
		return err
	}
	if err := pass.Record(list); err != nil {
		pass.End()
		return err
	}
	return pass.End()
}

// dispatchList is steps as dispatches: a Linear's one per weight chunk.
func dispatchList(steps []step) []webgpu.Dispatch {
	var out []webgpu.Dispatch
	for _, s := range steps {
		if s.mm != nil {
			out = append(out, s.mm.dispatches()...)
			continue
		}
		out = append(out, webgpu.Dispatch{Pipeline: s.pl, Group: s.group, X: s.gx, Y: s.gy})
	}
	return out
}

// Release frees the program's buffers now; the weights stay resident.
func (p *program) Release() error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	p.destroy()
	return nil
}

func (p *program) destroy() {
	p.released = true
	p.next = nil
	p.chain.destroy()
	for _, s := range p.slabs {
		s.Destroy()
	}
	for _, buf := range append([]*webgpu.Buffer{p.consts, p.zeroIDs, p.params, p.readback, p.scratch}, p.tails...) {
		buf.Destroy()
	}
	p.slabs, p.consts, p.zeroIDs, p.params, p.readback, p.scratch, p.tails = nil, nil, nil, nil, nil, nil, nil
}
