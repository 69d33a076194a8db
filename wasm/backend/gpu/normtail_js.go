//go:build js && wasm

package gpu

import (
	"fmt"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// fuseNormTail lets a residual Linear's GEMV write the x·gain and sums of the RMS norm after it
// for the GEMVs that read the norm (normtail.go): gemv_hw.wgsl with f32 activations, where the
// norm is otherwise a dispatch of its own (gemvNormF32 false). Off until measured on a GPU: the
// device budget ran out before this form ran there (NOTES.md). BenchmarkDecode's
// -nibble.normtail sets it.
var fuseNormTail = false

// normTailFits says which Linears take part in a norm tail: as its writer, one dispatch of
// gemv_hw.wgsl (one chunk) at 8 rows a workgroup whose bindings fit the device's storage buffers
// a stage (the weight's, x, y, the residual, the sums, the gain, the norm, and one more: SiLU's
// u where the GEMV forms its x, or the sums of a norm it reads); as a reader, gemv_hw.wgsl of a
// row of at most 32 elements a thread (each thread adds up to 4 of the row's sums).
func (c *compiler) normTailFits() func(lin int, reader bool) bool {
	b := c.p.b
	if !fuseNormTail {
		return nil
	}
	return func(lin int, reader bool) bool {
		w := c.linearWeight(graph.Value(lin))
		m := c.p.g.Nodes[lin].Shape.Size() / w.l.n
		key := keyFor(w.l.format, w.l.n, m, b.feat, b.tune)
		if key.Kernel != shaders.GEMVHW || m > GEMVMaxM {
			return false
		}
		if reader {
			return w.l.k <= 32*key.WG
		}
		return len(w.chunks) == 1 && key.Rows == 8 && 8+weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage
	}
}

// tailBuffers creates a buffer for each norm tail's sums (tailAt, keyed by the RMSNorm), whose
// writer and readers bind it: a buffer of its own, since a GEMV may read one norm's sums while
// it writes the next one's.
func (c *compiler) tailBuffers() error {
	p := c.p
	c.tailAt = map[int]webgpu.BufferBinding{}
	for _, t := range p.plan.normTails {
		n := &p.g.Nodes[t.norm]
		N := n.Shape[len(n.Shape)-1]
		bytes := int64(n.Shape.Size()/N*tailParts(N)) * 4
		buf, err := p.b.dev.CreateBuffer(c.label(fmt.Sprintf("%%%d %s sums of squares", t.norm, n.Label)), bytes, webgpu.BufferStorage)
		if err != nil {
			return err
		}
		p.tails = append(p.tails, buf)
		c.tailAt[int(t.norm)] = webgpu.BufferBinding{Buffer: buf, Size: bytes}
	}
	return nil
}

// withNormTail adds to the GEMV of residual Add out the norm it writes, if any: key.NormTail and
// the sums, gain and norm bindings.
func (c *compiler) withNormTail(out graph.Value, key *shaders.Key, extra []webgpu.BufferBinding) []webgpu.BufferBinding {
	p := c.p
	t, ok := p.plan.normTails[int(out)]
	if !ok {
		return extra
	}
	key.NormTail = true
	sums := c.tailAt[int(t.norm)]
	sums.Binding = 19
	return append(extra, sums, p.bind(20, t.gain), p.bind(21, t.norm))
}

// normGain is what a GEMV that normalizes its x (nl) binds at 7: the norm's gain, or, where the
// GEMV before wrote x·gain (nl.part), its sums (key.NormPart).
func (c *compiler) normGain(nl normedLinear, key *shaders.Key) webgpu.BufferBinding {
	if !nl.part {
		return c.p.bind(7, nl.gain)
	}
	key.NormPart = true
	sums := c.tailAt[int(nl.norm)]
	sums.Binding = 7
	return sums
}
