//go:build js && wasm

package gpu

import (
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// fuseSwiGLU lets a feed-forward's gate and up Linears and their SiLU product run as one
// SwiGLU GEMV on hardware adapters (swiglu.go; gemv_hw.wgsl and gemv_a8.wgsl SWIGLU);
// BenchmarkDecode's -nibble.swiglu=false times a step without (gate and up as one grouped
// GEMV, SiLU·mul in the down GEMV), to weigh it. forceSwiGLU runs it on software adapters too:
// the tests set it, so that SwiftShader checks it.
var fuseSwiGLU, forceSwiGLU = true, false

// swiGLUFits is arenaLimits.swiGLU: whether Linear nodes gate and up can be one SwiGLU GEMV on
// this device, nil where never (off, or a software adapter's GEMV kernel). Their weights must
// share a layout and be one chunk each, their GEMV key a hardware GEMV with an even row count
// (half the gate's, half up's), and x, y, the norm's gain and both weights' codes, scales and
// zero points fit the stage's storage buffers.
func (c *compiler) swiGLUFits() func(gate, up int) bool {
	b := c.p.b
	if !fuseSwiGLU || b.tune.GEMVKernel != shaders.GEMVHW && !forceSwiGLU {
		return nil
	}
	return func(gate, up int) bool {
		wg, wu := c.linearWeight(graph.Value(gate)), c.linearWeight(graph.Value(up))
		m := c.p.g.Nodes[gate].Shape.Size() / wg.l.n
		key := keyFor(wg.l.format, wg.l.n, m, b.feat, b.tune)
		return wg.l == wu.l && len(wg.chunks) == 1 && len(wu.chunks) == 1 && key.Kernel.IsGEMV() && key.Kernel != shaders.GEMV &&
			key.Rows%2 == 0 && 3+2*weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage && 2*wg.l.n <= b.maxRows
	}
}

// fuseA8XTail lets a SwiGLU GEMV on gemv_a8.wgsl write its output also as the activation
// blocks of the down GEMV that reads it (swiglu.go's findXTail, gemv_a8.wgsl XTAIL), which then
// reads them (XQ) rather than quantizing the row in every workgroup. Off: on an H200 (run 47)
// the down GEMV gained 2.2 µs and the SwiGLU GEMV lost 2.6 (NOTES.md); BenchmarkDecode's
// -nibble.a8xtail sets it.
var fuseA8XTail = false

// xTailFits is arenaLimits.xTail: the SwiGLU GEMV of Linear gate runs gemv_a8.wgsl at 8 or 16
// rows a workgroup, not persistent, with the handoff and the blocks beside its bindings in the
// stage's storage buffers, and Linear down runs gemv_a8.wgsl, whose codes name the form.
func (c *compiler) xTailFits() func(gate, down int) (tailForm, bool) {
	b := c.p.b
	if !fuseA8XTail {
		return nil
	}
	return func(gate, down int) (tailForm, bool) {
		wg, wd := c.linearWeight(graph.Value(gate)), c.linearWeight(graph.Value(down))
		m := c.p.g.Nodes[gate].Shape.Size() / wg.l.n
		gk := keyFor(wg.l.format, wg.l.n, m, b.feat, b.tune)
		dk := keyFor(wd.l.format, wd.l.n, m, b.feat, b.tune)
		return tailForm{a8: true, bits: dk.Bits, asym: dk.Asym}, gk.Kernel == shaders.GEMVA8 && dk.Kernel == shaders.GEMVA8 &&
			gk.Persist == 0 && (gk.Rows == 8 || gk.Rows == 16) && 5+2*weightBuffers(gk) <= b.dev.Limits().MaxStorageBuffersPerShaderStage
	}
}

// swiGLU queues the SwiGLU GEMV of Mul node i (swiglu.go): the gate's weight at the usual
// bindings, up's codes, scales and zero points at 8, 10, 12, the norm's gain at 7 where it
// normalizes x; y is the Mul's value, N outputs a row.
func (c *compiler) swiGLU(what string, i int, s swiGLU) error {
	p := c.p
	wg, wu := c.linearWeight(s.gate), c.linearWeight(s.up)
	N, K := wg.l.n, wg.l.k
	m := p.g.Nodes[i].Shape.Size() / N
	x := p.bind(2, s.x)
	nl, normed := p.plan.normed[int(s.gate)]
	if normed {
		x = p.bind(2, nl.x)
	}
	x.Size = int64(m*K) * 4
	key := keyFor(wg.l.format, N, m, p.b.feat, p.b.tune)
	key.SwiGLU, key.Norm = true, normed
	ch := wu.chunks[0]
	extra := []webgpu.BufferBinding{{Binding: 8, Buffer: ch.data}}
	if ch.scales != nil {
		extra = append(extra, webgpu.BufferBinding{Binding: 10, Buffer: ch.scales})
	}
	if ch.zeros != nil {
		extra = append(extra, webgpu.BufferBinding{Binding: 12, Buffer: ch.zeros})
	}
	words := wg.matmulParams(m)[0]
	if normed {
		var err error
		if x, extra, err = c.normInput(wg, &key, m, words, x, nl, extra, c.label(what)); err != nil {
			return err
		}
		words[11] = math.Float32bits(nl.eps) // decode.wgsl's params.eps
	}
	if s.tail.a8 {
		key.XTail, key.TailBits, key.TailAsym = true, s.tail.bits, s.tail.asym
		at := c.tailAt[i]
		at.Binding = 21
		extra = append(extra, c.tailHand, at)
	}
	pars := []webgpu.BufferBinding{c.block(0, words[:])}
	y := p.bind(3, graph.Value(i))
	p.steps = append(p.steps, step{})
	si := len(p.steps) - 1
	label := c.label(fmt.Sprintf("%s (SwiGLU GEMV of %s, %s)", what, p.g.Nodes[s.gate].Label, p.g.Nodes[s.up].Label))
	c.later = append(c.later, func() error {
		bm, err := p.b.bindMatMul(label, wg, key, m, x, y, nil, c.withParams(pars), c.withParams(extra)...)
		if err == nil {
			bm.rows[0] = 2 * N // grid's rows: Rows/2 output rows a workgroup
		}
		p.steps[si].mm = bm
		return err
	})
	return nil
}
