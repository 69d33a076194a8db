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

// normPrepass queues the pre-pass of a normed int8-activation GEMV of weight w over m rows of
// the norm's input x, with its gain and the program's params words for w (kp), and returns the
// x the GEMV then binds: the program's scratch holding the blocks. It sets key.XQ. ok is false,
// nothing queued, where the switch is off or the GEMV is not a normed gemv-a8.
func (c *compiler) normPrepass(w *weight, key *shaders.Key, m int, words paramBlock, x, gain webgpu.BufferBinding, label string) (xq webgpu.BufferBinding, ok bool, err error) {
	if !a8NormPrepass || key.Kernel != shaders.GEMVA8 || !key.Norm {
		return x, false, nil
	}
	p := c.p
	blocks, qk, bytes := a8Quant(*key, w.l, m)
	qk.Norm = true
	qk = qk.Normalize()
	pl, err := p.b.pipeline(qk)
	if err != nil {
		return x, false, err
	}
	gx, gy := grid(qk, blocks, m)
	out := c.stepsOut
	*out = append(*out, step{pl: pl, gx: gx, gy: gy})
	i := len(*out) - 1
	pars := c.block(0, words[:])
	c.later = append(c.later, func() error {
		g, err := p.b.dev.CreateBindGroup(label+" (x·gain to int8 blocks)", pl.BindGroupLayout(0), c.withParams([]webgpu.BufferBinding{
			pars, x, gain, {Binding: 3, Buffer: p.scratch, Size: bytes},
		})...)
		(*out)[i].group = g
		return err
	})
	key.XQ = true
	return webgpu.BufferBinding{Binding: 2, Buffer: p.scratch, Size: bytes}, true, nil
}

// normPrepassBytes is the scratch the pre-pass of Linear node i needs (0: none).
func (c *compiler) normPrepassBytes(i int) int64 {
	p := c.p
	if _, normed := p.plan.normed[i]; !normed || !a8NormPrepass {
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
