//go:build js && wasm

package gpu

import (
	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// pvSplitFrom is the number of keys from which a softmax product (attention's p·v, its softmax
// inside: fuse.go's findSoftmaxProducts) runs on hardware adapters with K split over workgroups,
// flash decoding's two dispatches: ops_matmul.wgsl's AB_CHUNKS, pvChunk keys of one row a
// workgroup of pvSplitWG threads (a power of two, 32 to 512), writes each chunk's max, Σe and
// Σe·v to the program's scratch; AB_MERGE rescales a row's chunks into its output. The split
// product it replaces gives a row only Dh/32 workgroups each walking all of K: on an H200 at
// 2048 keys p·v took ~35 µs a layer to read 16.8 MB (run 14). Run 19 (NOTES.md) timed p·v of
// 32 heads alone (BenchmarkPVSplit): 18.4 µs against 18.2 at 1024 keys (a tie), 20.5 against
// 25.6 at 2048, 25.4 against 41.1 at 4096, each with the best chunk, which grows with the keys
// (pvChunkFor). forcePVSplit makes every softmax product split (the package's tests, on
// SwiftShader). BenchmarkDecode's -nibble.pvsplit, -nibble.pvsplitfrom, -nibble.pvchunk (0:
// pvChunkFor's) and -nibble.pvsplitwg set them.
var (
	pvSplitFrom        = 2049 // AB_SHORT up to 2048 (pvShortMax)
	forcePVSplit       bool
	pvChunk, pvSplitWG = 0, 256
)

// pvChunkFor is the keys a workgroup of AB_CHUNKS takes over k keys: k/16, at least 64 (run 19's
// sweep of 16–256 keys a workgroup: 64 fastest at 1024 keys, 128 at 2048, 256 at 4096), so a
// head's row has 16 chunks whatever the length.
func pvChunkFor(k int) int {
	if pvChunk > 0 {
		return pvChunk
	}
	return max(64, k/16)
}

// pvScratchMax bounds a key-split product's partials in the program's scratch (scratchBuffer,
// shared with every split product: they run one after the other): a product whose partials would
// need more (a long prefill's many rows, which the split product's workgroups fill a GPU with
// anyway) runs unsplit.
const pvScratchMax = 8 << 20

// keySlice is ops_matmul.wgsl's SLICE: the outputs of a row one workgroup of either kernel takes.
const keySlice = 128

// keySplit is the geometry of one key-split product.
type keySplit struct {
	rows, n   int // rows of a (batch·m) and outputs a row
	chunk     int // keys a workgroup
	chunks    int // a row's
	slices    int // of keySlice outputs, a workgroup each
	wg        int
	scratchAt int64 // bytes of partials: each record's max and Σe, then its outputs
}

// keySplitOf reports whether product i runs with K split over workgroups, and how.
func (c *compiler) keySplitOf(i int) (keySplit, bool) {
	if _, ok := c.p.plan.softmaxes[i]; !ok {
		return keySplit{}, false
	}
	n := &c.p.g.Nodes[i]
	r := len(n.Shape)
	K, N := c.shape(n, 0)[r-1], n.Shape[r-1]
	if !forcePVSplit && (c.p.b.caps.Software || K < pvSplitFrom) {
		return keySplit{}, false
	}
	dl := c.p.b.dev.Limits()
	s := keySplit{rows: n.Shape.Size() / N, n: N, chunk: pvChunkFor(K), slices: groupsFor(N, keySlice),
		wg: min(pvSplitWG, 512, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)}
	s.chunks = groupsFor(K, s.chunk)
	s.scratchAt = int64(s.rows*s.chunks*(N+2)) * 4
	return s, s.scratchAt <= pvScratchMax
}

// keySplitProduct queues softmax product i as AB_CHUNKS and AB_MERGE: k, words and operands are
// the one-dispatch product's (y at binding 3), to which the chunk size and the scratch are added.
func (c *compiler) keySplitProduct(what string, k shaders.OpKey, s keySplit, words []uint32, operands []webgpu.BufferBinding) error {
	words = words[:max(len(words), 16)] // SMASK's words, if any, are 12 to 31
	words[15] = uint32(s.chunk)
	params := c.block(0, words) // one block, both dispatches
	parts := webgpu.BufferBinding{Binding: 7, Buffer: c.p.scratch, Size: c.p.scratch.Size()}
	in := []webgpu.BufferBinding{params, parts}
	var y webgpu.BufferBinding
	for _, o := range operands {
		if o.Binding == 3 {
			y = o // the merge's alone
			continue
		}
		in = append(in, o)
	}
	k.Variant, k.WG = "ab_chunks", s.wg
	if err := c.dispatchWith(what+" (keys split)", k, s.rows*s.chunks*s.slices, in); err != nil {
		return err
	}
	merge := shaders.OpKey{Family: shaders.OpMatMul, Variant: "ab_merge", WG: s.wg}
	return c.dispatchWith(what+" (chunks merged)", merge, s.rows*s.slices, []webgpu.BufferBinding{params, parts, y})
}
