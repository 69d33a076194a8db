//go:build js && wasm

package gpu

import (
	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// a8NormPrepass: with int8 activations, a GEMV fused with the RMS norm before it (q, k, v's
// group, the SwiGLU GEMV, a normed Linear such as the head) reads its x quantized by a pre-pass
// dispatch rather than normalizing and quantizing x in every workgroup. The pre-pass
// (shaders.A8Quant with Norm) quantizes x·gain per block and stores each block's Σx² beside it;
// the GEMV (Key.XQ with Norm) adds those into the row's Σx² and scales its sums by the norm as
// it does reading x itself. One dispatch more per normed GEMV; each of its workgroups loads the
// row's blocks (4.4 KB at K = 4096 for int4 codes) instead of x and the gain (32 KB). On an H200
// (run 26, 7B step at position 127) the SwiGLU GEMV took 18.9 µs a layer against 27.0 and q, k,
// v's 21.0 against 23.6, the pre-passes 3.1 and 2.8 µs: GPU 2.76 ms a step against 2.83, for 65
// dispatches more. BenchmarkDecode's -nibble.a8normpre sets it.
var a8NormPrepass = true

// normInput is what a GEMV fused with the RMS norm before it (nl; key with Norm, weight w, m
// rows of the norm's input x, the params words for w: kp) binds for its x: x, with what
// normGain binds at 7 appended to extra; or, with int8 activations and a8NormPrepass, the
// program's scratch holding x·gain as blocks, which a pre-pass queued here quantizes (key then
// has XQ, and the GEMV binds no gain); or, where the GEMV before wrote those blocks (nl.part on
// gemv_a8.wgsl), the norm tail's buffer of them.
func (c *compiler) normInput(w *weight, key *shaders.Key, m int, words paramBlock, x webgpu.BufferBinding, nl normedLinear, extra []webgpu.BufferBinding, label string) (webgpu.BufferBinding, []webgpu.BufferBinding, error) {
	if nl.part && key.Kernel == shaders.GEMVA8 {
		c.p.b.tune.readXQ(key)
		xq := c.tailAt[int(nl.norm)]
		xq.Binding = 2
		return xq, extra, nil
	}
	gain := c.normGain(nl, key)
	if !a8NormPrepass || key.Kernel != shaders.GEMVA8 || !key.Norm {
		return x, append(extra, gain), nil
	}
	p := c.p
	blocks, qk, bytes := a8Quant(*key, w.l, m)
	qk.Norm = true
	qk = qk.Normalize()
	pl, err := p.b.pipeline(qk)
	if err != nil {
		return x, extra, err
	}
	gx, gy := grid(qk, blocks, m)
	c.queue(label+" (x·gain to int8 blocks)", pl, gx, gy, []webgpu.BufferBinding{c.block(0, words[:]), x, gain, {Binding: 3, Buffer: p.scratch, Size: bytes}})
	p.b.tune.readXQ(key)
	return webgpu.BufferBinding{Binding: 2, Buffer: p.scratch, Size: bytes}, extra, nil
}

// normPrepassBytes is the scratch the pre-pass of Linear node i needs (0: none).
func (c *compiler) normPrepassBytes(i int) int64 {
	p := c.p
	if nl, normed := p.plan.normed[i]; !normed || nl.part || !a8NormPrepass {
		return 0
	}
	w := c.linearWeight(graph.Value(i))
	m := p.g.Nodes[p.g.Nodes[i].Inputs[0]].Shape.Size() / w.l.k
	key := keyFor(w.l.format, w.l.n, m, p.b.feat, p.b.tune)
	if key.Kernel != shaders.GEMVA8 {
		return 0
	}
	_, _, bytes := a8Quant(key, w.l, m)
	return bytes
}
