//go:build js && wasm

package gpu

import (
	"math"
	"math/bits"
	"slices"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// attnMax is the most cached keys for which one token's attention runs, on hardware adapters,
// as one dispatch (ops_attn.wgsl, attn.go) instead of q·kᵀ and p·v: by default any length
// (attnSplit's kernel takes any). 0: never. forceAttn runs every attention the kernel takes (any
// adapter, whose softmaxes then run inside the products too): the package's tests on
// SwiftShader, BenchmarkDecode's -nibble.attn=on. Software adapters keep the products unless
// forced: there the kernel is slow (NOTES.md). BenchmarkDecode's -nibble.attn, -nibble.attnmax
// and -nibble.attnwg set them.
//
// With attnSplit 0 a workgroup of attnWG threads (a power of two, 64 to 1024, at most the
// device's) takes a query row, up to the keys its workgroup memory holds. On an H200 (run 50,
// NOTES.md; 7B step, int8 activations): 9.1 µs a layer at 128 keys, against the products' 5.8 +
// 5.9, but 60.9 at 2048 against 13.7 + 15.9: one workgroup a head keeps 32 of 132 SMs busy.
var (
	attnMax   = 1 << 20
	forceAttn bool
	attnWG    = 512
)

// attnSplit, when not 0 (the default), runs those attentions as ops_attn.wgsl's split variant: a
// workgroup of attnSplitWG threads per chunk of a row's keys, attnSplit keys a chunk at least (a
// power of two), more where a row would otherwise have over attnChunks chunks; the row's last
// workgroup merges its chunks. Any length then fits (a chunk's scores in workgroup memory, not
// the row's). On an H200 (run 50): 9.1 µs a layer at 128 keys, 24.9 at 2048 (16 chunks of 128)
// against the products' 11.7 and 29.6. BenchmarkDecode's -nibble.attnsplit, -nibble.attnsplitwg
// and -nibble.attnchunks set them.
var (
	attnSplit   = 32
	attnSplitWG = 128
	attnChunks  = 16
)

// attnWhole is, with attnSplit, the most keys for which a row still takes one workgroup of
// attnWG threads (the variant without chunks); 0: none. On an H200 (run 52, 7B step, twice
// each) the kernels took the same 9.1 µs a layer at 128 keys, yet the step's GPU time was 2.49
// ms with a workgroup a row against 2.55 split; at 512 keys 19.2 µs against 13.7 split.
// BenchmarkDecode's -nibble.attnwhole sets it.
var attnWhole = 128

// attnWarm: an attention of one workgroup a row (variant "decode") also reads the weights of
// the Linear after it (attention.next: the o projection) into the L2, in workgroups of its own
// past the rows (ops_attn.wgsl WARM), where the device has the storage bindings: that GEMV then
// reads them from the L2. At a decode step's short cache the attention keeps 32 of an H200's 132
// SMs and little of its memory's bandwidth busy for several µs, and BenchmarkPrefetch had an o
// projection from the L2 ~2 µs faster (NOTES.md). Off: on an H200 (run 53, 7B step, int8
// activations, position 127, twice each) the attention took 12.0 µs a layer against 9.0 and
// the step's GPU time 2.58–2.63 ms against 2.50–2.51. BenchmarkDecode's -nibble.attnwarm sets
// it; TestGraphAttention runs it.
var attnWarm = false

// attnPartWords is ops_attn.wgsl's PW: a chunk's words in the split variant's handoff.
const attnPartWords = 130

// attnWorkgroup is the threads of an attention's workgroup on this device.
func (c *compiler) attnWorkgroup() int {
	dl := c.p.b.dev.Limits()
	return min(attnWG, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
}

// attnKeys is arenaLimits.attnKeys on this device: the most keys the kernel's workgroup memory
// holds (a power of two), capped by attnMax unless forced; 0 on software adapters (unless
// forced) or where none fit. The split variant holds a chunk's keys, so any length: attnMax,
// or with forceAttn a million.
func (c *compiler) attnKeys() int {
	if !forceAttn && (c.p.b.caps.Software || attnMax <= 0) {
		return 0
	}
	if attnSplit > 0 {
		if _, err := c.attnChunkKey(attnSplit); err != nil {
			return 0
		}
		if forceAttn {
			return 1 << 20
		}
		return attnMax
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

// attnChunkKey is the split variant's key for n keys a row: Keys the chunk's (attnSplit at
// least, attnChunks chunks at most where they fit the workgroup memory); error where even
// attnSplit keys do not.
func (c *compiler) attnChunkKey(n int) (shaders.OpKey, error) {
	dl := c.p.b.dev.Limits()
	wg := min(attnSplitWG, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
	key := shaders.OpKey{Family: shaders.OpAttention, Variant: "split", WG: wg, Softmax: "plain", Keys: attnSplit}
	if err := key.Validate(); err != nil {
		return key, err
	}
	for next := key; (n+key.Keys-1)/key.Keys > attnChunks; key = next {
		if next.Keys *= 2; next.Validate() != nil {
			break
		}
	}
	return key, nil
}

// attnHandoff is the split variant's handoff (binding 8): one buffer for every attention of the
// program (each dispatch leaves it zeroed), of the largest's words: a counter a row, then
// attnPartWords a chunk of a row.
func (c *compiler) attnHandoff() (webgpu.BufferBinding, error) {
	if c.attnHand.Buffer != nil {
		return c.attnHand, nil
	}
	words := 0
	for _, at := range c.p.plan.attns {
		qk := &c.p.g.Nodes[at.qk]
		n := qk.Shape[len(qk.Shape)-1]
		key, err := c.attnChunkKey(n)
		if err != nil {
			return webgpu.BufferBinding{}, err
		}
		rows := qk.Shape.Size() / n
		words = max(words, rows*(1+(n+key.Keys-1)/key.Keys*attnPartWords))
	}
	bytes := int64(words) * 4
	buf, err := c.tailBuffer("attention chunks' counts and handoff", bytes)
	c.attnHand = webgpu.BufferBinding{Binding: 8, Buffer: buf, Size: bytes}
	return c.attnHand, err
}

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
	chunks := 1
	if attnSplit > 0 && (N > attnWhole || key.Validate() != nil) {
		var err error
		if key, err = c.attnChunkKey(N); err != nil {
			return err
		}
		chunks = (N + key.Keys - 1) / key.Keys
	}
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
	// Keys and values along words: read without a branch around each load (ops_attn.wgsl ALIGNED).
	even := func(v ...int) bool { return !slices.ContainsFunc(v, func(x int) bool { return x%2 != 0 }) }
	key.Aligned = key.State == "f16" && sk == 1 && vj == 1 && even(sb, sj, vb, vk) && K%4 == 0 && Dv%4 == 0
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
	if key.Variant != "split" {
		operands, groups, err := c.warmOperands(&key, at, operands, rows)
		if err != nil {
			return err
		}
		return c.dispatch(what+" (attention)", key, words, groups, operands...)
	}
	hand, err := c.attnHandoff()
	if err != nil {
		return err
	}
	return c.dispatchGrid(what+" (attention, split)", key, chunks, rows, append([]webgpu.BufferBinding{c.block(0, words), hand}, operands...))
}

// warmOperands adds to an attention of one workgroup a row (key, its operands past the params,
// rows workgroups) the codes and scales of the first chunk of at.next's weight, for workgroups
// past the rows to read into the L2 (attnWarm: ops_attn.wgsl WARM, key.Warm set), and returns
// the grid's workgroups: a vec4 every 32 bytes, two of the codes and two of the scales a
// thread. Unchanged without a Linear after it or where the device's storage bindings a stage
// have no room for three more.
func (c *compiler) warmOperands(key *shaders.OpKey, at attention, operands []webgpu.BufferBinding, rows int) ([]webgpu.BufferBinding, int, error) {
	if !attnWarm || at.next == graph.None || key.Variant != "decode" ||
		len(operands)+3 > c.p.b.dev.Limits().MaxStorageBuffersPerShaderStage {
		return operands, rows, nil
	}
	w := c.linearWeight(at.next)
	if w == nil || len(w.chunks) == 0 || w.chunks[0].data.Size() < 16 {
		return operands, rows, nil
	}
	ch := w.chunks[0]
	data := webgpu.BufferBinding{Binding: 9, Buffer: ch.data, Size: ch.data.Size() &^ 15}
	scales := webgpu.BufferBinding{Binding: 10, Buffer: ch.data, Size: 16} // f32 weights: none
	if ch.scales != nil && ch.scales.Size() >= 16 {
		scales = webgpu.BufferBinding{Binding: 10, Buffer: ch.scales, Size: ch.scales.Size() &^ 15}
	}
	if c.warmSink == nil {
		buf, err := c.tailBuffer("attention's warm-up sink", 16)
		if err != nil {
			return nil, 0, err
		}
		c.warmSink = buf
	}
	threads := (data.Size/32 + 1) / 2
	groups := min(int((threads+int64(key.WG)-1)/int64(key.WG)), maxGroups-rows)
	if groups <= 0 {
		return operands, rows, nil
	}
	key.Warm = true
	sink := webgpu.BufferBinding{Binding: 11, Buffer: c.warmSink, Size: 16}
	return append(operands, data, scales, sink), rows + groups, nil
}
