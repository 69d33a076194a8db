//go:build js && wasm

package gpu

import (
	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// fuseNormTail lets a residual Linear's GEMV write the RMS norm of its sum (normtail.go):
// gemv_hw.wgsl with f32 activations, where the norm is otherwise a dispatch of its own
// (gemvNormF32 false). BenchmarkDecode's -nibble.normtail sets it.
var fuseNormTail = true

// normTailFits says which residual Linears may write a norm tail: one dispatch of gemv_hw.wgsl
// (one chunk) of rows that are whole vec4s, at most 8 a thread of its workgroup, whose bindings
// fit the device's storage buffers a stage (the weight's, x, y, the residual, the handoff, the
// gain, the norm, and SiLU's u where the GEMV forms its x).
func (c *compiler) normTailFits() func(lin int) bool {
	b := c.p.b
	if !fuseNormTail {
		return nil
	}
	return func(lin int) bool {
		w := c.linearWeight(graph.Value(lin))
		m := c.p.g.Nodes[lin].Shape.Size() / w.l.n
		key := keyFor(w.l.format, w.l.n, m, b.feat, b.tune)
		return key.Kernel == shaders.GEMVHW && len(w.chunks) == 1 && m <= GEMVMaxM && w.l.n%4 == 0 && w.l.n <= 32*key.WG &&
			7+weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage
	}
}

// tailBuffer creates the program's handoff for its norm tails, as large as the largest needs:
// zeroed at creation, and each NormTail dispatch leaves it zero (the dispatches of a pass run in
// order, so one buffer serves them all). Not poisoned: its zeros are its state.
func (c *compiler) tailBuffer() error {
	p := c.p
	var size int64
	for a := range p.plan.normTails {
		n := &p.g.Nodes[a]
		N := n.Shape[len(n.Shape)-1]
		size = max(size, tailBytes(n.Shape.Size()/N, N))
	}
	if size == 0 {
		return nil
	}
	var err error
	p.tail, err = p.b.dev.CreateBuffer(c.label("norm tails' handoff"), size, webgpu.BufferStorage)
	return err
}

// withNormTail adds to the GEMV of residual Add out the norm it writes, if any: key.NormTail,
// the handoff, gain and norm bindings, and the norm's eps for params.
func (c *compiler) withNormTail(out graph.Value, key *shaders.Key, m, n int, extra []webgpu.BufferBinding) ([]webgpu.BufferBinding, float32, bool) {
	p := c.p
	t, ok := p.plan.normTails[int(out)]
	if !ok {
		return extra, 0, false
	}
	key.NormTail = true
	return append(extra, webgpu.BufferBinding{Binding: 19, Buffer: p.tail, Size: tailBytes(m, n)}, p.bind(20, t.gain), p.bind(21, t.norm)), t.eps, true
}
