//go:build js && wasm

package gpu

import (
	"math"
	"math/bits"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// attnMax is the most cached keys for which one token's attention runs, on hardware adapters,
// as one dispatch (ops_attn.wgsl, attn.go) instead of q·kᵀ and p·v: a workgroup of attnWG
// threads (a power of two, 64 to 1024, at most the device's) per query row. 0: never, the
// default. On an H200 (run 22, NOTES.md; 7B step, int8 activations) it took 16.8 µs a layer at
// 128 keys against the two products' 5.8 + 8.3, 44.0 against 7.7 + 14.3 at 512 and 79.8 against
// 10.5 + 21.1 at 1024: one workgroup a head keeps 32 of 132 SMs busy, and its serial walk over
// the keys costs more than the dispatch it saves. forceAttn runs every attention the kernel takes
// (any adapter, whose softmaxes then run inside the products too, any length its workgroup
// memory holds): the package's tests on SwiftShader, BenchmarkDecode's -nibble.attn=on.
// BenchmarkDecode's -nibble.attn, -nibble.attnmax and -nibble.attnwg set them.
var (
	attnMax   = 0
	forceAttn bool
	attnWG    = 512
)

// attnWorkgroup is the threads of an attention's workgroup on this device.
func (c *compiler) attnWorkgroup() int {
	dl := c.p.b.dev.Limits()
	return min(attnWG, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
}

// attnKeys is arenaLimits.attnKeys on this device: the most keys the kernel's workgroup memory
// holds (a power of two), capped by attnMax unless forced; 0 on software adapters (unless
// forced) or where none fit.
func (c *compiler) attnKeys() int {
	if !forceAttn && (c.p.b.caps.Software || attnMax <= 0) {
		return 0
	}
	key := shaders.OpKey{Family: shaders.OpAttention, Variant: "decode", WG: c.attnWorkgroup(), Softmax: "plain", Keys: attnMinKeys}
	if key.Validate() != nil {
		return 0
	}
	for next := key; ; key = next {
		next.Keys *= 2
		if next.Validate() != nil {
			break
		}
	}
	if forceAttn {
		return key.Keys
	}
	return min(key.Keys, attnMax)
}

// attnMinKeys is the fewest scores a kernel holds: short caches share one variant.
const attnMinKeys = 64

// attention queues p·v node i and the q·kᵀ and softmax it computes (attn.go) as one dispatch
// into out's storage (i, or a Scale of it: its factor is beta).
func (c *compiler) attention(what string, i int, out graph.Value, beta float32, at attention) error {
	p, g := c.p, c.p.g
	pv, qk := &g.Nodes[i], &g.Nodes[at.qk]
	r := len(qk.Shape)
	qs := c.shape(qk, 0)
	M, K, N, Dv := qs[r-2], qs[r-1], qk.Shape[r-1], pv.Shape[r-1]
	rows := qk.Shape.Size() / N
	kv, vv := p.plan.bOperand(g, at.qk), p.plan.bOperand(g, graph.Value(i))
	ksrc, vsrc := graph.None, graph.None
	if _, ok := p.plan.stridedB[int(at.qk)]; ok {
		ksrc = kv
	}
	if _, ok := p.plan.stridedB[i]; ok {
		vsrc = vv
	}
	sb, sj, sk := bStrides(g, qk, ksrc)
	vb, vj, vk := bStrides(g, pv, vsrc)
	key := shaders.OpKey{Family: shaders.OpAttention, Variant: "decode", WG: c.attnWorkgroup(), Softmax: "plain",
		Keys: max(attnMinKeys, 1<<bits.Len(uint(N-1)))}
	words := make([]uint32, 36)
	copy(words, []uint32{uint32(rows), uint32(M), uint32(N), uint32(K), uint32(sb), uint32(sj), uint32(sk), math.Float32bits(at.alpha)})
	copy(words[15:], []uint32{uint32(Dv), uint32(vb), uint32(vj), uint32(vk), math.Float32bits(beta)})
	kb, vbind := p.bind(2, kv), p.bind(7, vv)
	if s := c.stateInPlace(kv); s != nil {
		// The caches' buffers, read in place: one format and shape (attn.go), so one layout.
		kb = s.whole(2)
		s.readInPlace(&key, words)
	}
	if s := c.stateInPlace(vv); s != nil {
		vbind = s.whole(7)
	}
	operands := []webgpu.BufferBinding{p.bind(1, qk.Inputs[0]), kb, p.bind(3, out), vbind}
	words, operands = c.rotatedA(int(at.qk), &key, words, operands)
	if sm := p.plan.softmaxes[i]; sm.mask != graph.None {
		key.Softmax = "masked"
		mw, err := c.maskWords(&g.Nodes[sm.softmax])
		if err != nil {
			return err
		}
		words[12], words[13] = mw[0], mw[1]
		copy(words[20:], mw[4:])
		operands = append(operands, p.bind(4, sm.mask))
	}
	return c.dispatch(what+" (attention)", key, words, rows, operands...)
}
