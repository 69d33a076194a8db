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
// norm is otherwise a dispatch of its own (gemvNormF32 false). Off: on an H200 (run 47, 7B step
// at position 127) it cost more than the 63 norm dispatches it saved: the residual GEMVs
// 1.5–2.3 µs longer each, the readers 0.8–1.8: GPU 3.57 ms against 3.52 (NOTES.md).
// BenchmarkDecode's -nibble.normtail sets it.
var fuseNormTail = false

// fuseA8NormTail lets a residual Linear's gemv_a8.wgsl GEMV write the activation blocks of the
// RMS norm after it for the GEMVs that read the norm, which read them as they read the norm's
// pre-pass (a8NormPrepass): one dispatch a norm fewer. On an H200 (run 47, 7B step at position
// 127) the o and down GEMVs took 1.6 µs longer each and 63 pre-passes of ~2.9 µs went: GPU 2.63
// ms a step against 2.76, chained 2.70 ms a token against 3.00. BenchmarkDecode's
// -nibble.a8normtail=false times the step without.
var fuseA8NormTail = true

// normTailFits says which Linears take part in a norm tail, and in which form. As its writer:
// one dispatch (one chunk) at 8 rows a workgroup (gemv_a8.wgsl: or 16) whose bindings fit the
// device's storage buffers a stage: the weight's, x, y, the residual and the tail's
// (gemv_hw.wgsl: the sums, the gain, the norm; gemv_a8.wgsl: the counts and handoff, the gain,
// the blocks) and one more (SiLU's u where the GEMV forms its x, or gemv_hw.wgsl's sums of a
// norm it reads). As a reader: gemv_hw.wgsl of a row of at most 32 elements a thread (each
// thread adds up to 4 of the row's sums), or gemv_a8.wgsl reading its norm's blocks
// (a8NormPrepass), the form naming its codes.
func (c *compiler) normTailFits() func(lin int, reader bool) (tailForm, bool) {
	b := c.p.b
	if !fuseNormTail && !fuseA8NormTail {
		return nil
	}
	return func(lin int, reader bool) (tailForm, bool) {
		w := c.linearWeight(graph.Value(lin))
		m := c.p.g.Nodes[lin].Shape.Size() / w.l.n
		key := keyFor(w.l.format, w.l.n, m, b.feat, b.tune)
		a8 := key.Kernel == shaders.GEMVA8
		switch {
		case m > GEMVMaxM, a8 && !fuseA8NormTail, key.Kernel == shaders.GEMVHW && !fuseNormTail, !a8 && key.Kernel != shaders.GEMVHW:
			return tailForm{}, false
		case reader && a8:
			return tailForm{a8: true, bits: key.Bits, asym: key.Asym}, a8NormPrepass
		case reader:
			return tailForm{}, w.l.k <= 32*key.WG
		}
		extra := 8 // gemv_hw.wgsl's: x, y, the residual, the sums, the gain, the norm and one more, as counted before
		if a8 {
			extra = 7 // gemv_a8.wgsl's: x, y, the residual, the counts and handoff, the gain, the blocks, SiLU's u
		}
		return tailForm{a8: a8}, len(w.chunks) == 1 && (key.Rows == 8 || a8 && key.Rows == 16) && key.Persist == 0 &&
			extra+weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage
	}
}

// tailBuffers creates a buffer for each norm tail (tailAt, keyed by the RMSNorm), whose writer
// and readers bind it: its sums, or its activation blocks (a8: the readers' pre-pass layout);
// one for the blocks of each SwiGLU GEMV's down GEMV (keyed by the Mul);
// and for the a8 tails one buffer of counts and handoff words, which every such dispatch leaves
// zero (tailHand: n words of counts, then m·n of outputs). A buffer each, since a GEMV may read
// one norm's while it writes the next one's.
func (c *compiler) tailBuffers() error {
	p := c.p
	c.tailAt = map[int]webgpu.BufferBinding{}
	var hand int64
	for _, t := range p.plan.normTails {
		n := &p.g.Nodes[t.norm]
		if t.form.a8 {
			if err := c.blockBuffer(int(t.norm), t.form, c.linearWeight(graph.Value(t.readers[0])), &hand); err != nil {
				return err
			}
			continue
		}
		N := n.Shape[len(n.Shape)-1]
		bytes := int64(n.Shape.Size()/N*tailParts(N)) * 4
		buf, err := c.tailBuffer(fmt.Sprintf("%%%d %s sums of squares", t.norm, n.Label), bytes)
		if err != nil {
			return err
		}
		c.tailAt[int(t.norm)] = webgpu.BufferBinding{Buffer: buf, Size: bytes}
	}
	for mul, s := range p.plan.swiglus {
		if s.tail.a8 {
			if err := c.blockBuffer(mul, s.tail, c.linearWeight(s.down), &hand); err != nil {
				return err
			}
		}
	}
	if hand == 0 {
		return nil
	}
	h, err := c.tailBuffer("norm tails' counts and handoff", hand)
	c.tailHand = webgpu.BufferBinding{Binding: 19, Buffer: h, Size: hand}
	return err
}

// blockBuffer creates tailAt[v]: the activation blocks of value v (m rows of N) for codes of
// form, in the layout reader's pre-pass would write them, and raises *hand to the counts and
// handoff words the writer of v needs.
func (c *compiler) blockBuffer(v int, form tailForm, reader *weight, hand *int64) error {
	n := &c.p.g.Nodes[v]
	N := n.Shape[len(n.Shape)-1]
	m := n.Shape.Size() / N
	_, _, bytes := a8Quant(shaders.Key{Bits: form.bits, Asym: form.asym}, reader.l, m)
	*hand = max(*hand, int64((m+1)*N)*4)
	buf, err := c.tailBuffer(fmt.Sprintf("%%%d %s activation blocks", v, n.Label), bytes)
	if err == nil {
		c.tailAt[v] = webgpu.BufferBinding{Buffer: buf, Size: bytes}
	}
	return err
}

// tailBuffer creates one of tailBuffers' buffers (zeroed, as WebGPU creates them).
func (c *compiler) tailBuffer(label string, bytes int64) (*webgpu.Buffer, error) {
	buf, err := c.p.b.dev.CreateBuffer(c.label(label), bytes, webgpu.BufferStorage)
	if err == nil {
		c.p.tails = append(c.p.tails, buf)
	}
	return buf, err
}

// withNormTail adds to the GEMV of residual Add out the norm it writes, if any: key.NormTail and
// the tail's bindings (normTailFits).
func (c *compiler) withNormTail(out graph.Value, key *shaders.Key, extra []webgpu.BufferBinding) []webgpu.BufferBinding {
	p := c.p
	t, ok := p.plan.normTails[int(out)]
	if !ok {
		return extra
	}
	key.NormTail = true
	at := c.tailAt[int(t.norm)]
	if t.form.a8 {
		key.TailBits, key.TailAsym = t.form.bits, t.form.asym
		at.Binding = 21
		return append(extra, c.tailHand, p.bind(20, t.gain), at)
	}
	at.Binding = 19
	return append(extra, at, p.bind(20, t.gain), p.bind(21, t.norm))
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
