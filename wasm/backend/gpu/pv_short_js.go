//go:build js && wasm

package gpu

import "github.com/nibble-ml/nibble/shaders"

// pvShortMax is the number of keys up to which a softmax product (attention's p·v, its softmax
// inside: fuse.go's findSoftmaxProducts) that is not split over keys runs on hardware adapters
// as ops_matmul.wgsl's AB_SHORT: a workgroup of pvShortWG threads (a power of two, 32 to 512;
// 0: shortWorkgroup's) per row and slice of pvShortSlice outputs (a power of two, 4 to 128;
// 16: a key's 4 lanes read one 32-byte sector of an f16 cache), the softmax in one pass
// (each thread's scores and values loaded together, flash decoding's partials merged in
// workgroup memory) instead of AB_SPLIT's max and Σe reductions before any value is loaded. On
// an H200 (run 18, 7B step) AB_SPLIT took 8.3 µs a layer at 128 keys, ~5 over a dispatch's fixed
// cost, for 1 MB of values; AB_SHORT (run 25, slices of 16) 5.8 µs at 128 keys, 8.2 against 14.1
// at 512 and 10.8 against 20.7 at 1024, and (run 26) 15.9 at 2048 against the key split's 14.5 +
// 4.8, so it runs up to 2048 keys (beyond, p·v is split over workgroups: pvSplitFrom; AB_SHORT
// there is untimed). forcePVShort makes
// every such product run as it (the package's tests, on SwiftShader). BenchmarkDecode's
// -nibble.pvshort, -nibble.pvshortmax, -nibble.pvshortslice and -nibble.pvshortwg set them.
var (
	pvShortMax              = 2048
	forcePVShort            bool
	pvShortSlice, pvShortWG = 16, 0
)

// shortProduct makes product i, whose key k and words product built and whose grid had groups
// workgroups, AB_SHORT where it runs so (pvShortMax, forcePVShort): the variant, its workgroup,
// the slice in words[15] and rows·slices workgroups.
func (c *compiler) shortProduct(i int, k *shaders.OpKey, words []uint32, groups int) ([]uint32, int) {
	if _, ok := c.p.plan.softmaxes[i]; !ok {
		return words, groups
	}
	if _, split := c.keySplitOf(i); split {
		return words, groups
	}
	n := &c.p.g.Nodes[i]
	r := len(n.Shape)
	K, N := c.shape(n, 0)[r-1], n.Shape[r-1]
	if !forcePVShort && (c.p.b.caps.Software || K > pvShortMax) {
		return words, groups
	}
	dl := c.p.b.dev.Limits()
	most := min(512, dl.MaxComputeInvocationsPerWorkgroup, dl.MaxComputeWorkgroupSizeX)
	slice := shortSlice(pvShortSlice, most, N)
	wg := min(pvShortWG, most)
	if pvShortWG == 0 {
		wg = shortWorkgroup(K, slice, most)
	}
	slice = shortSlice(slice, wg, N)
	k.Variant, k.WG = "ab_short", wg
	if pvShortAhead && K > wg*16/slice { // more than one round of keys a thread
		k.Variant = "ab_short_ahead"
	}
	words = words[:max(len(words), 16)] // SMASK's words, if any, are 12 to 31
	words[15] = uint32(slice)
	return words, n.Shape.Size() / N * groupsFor(N, slice)
}

// shortSlice is AB_SHORT's outputs a workgroup: want rounded down to a power of two in 4 … 128,
// at most 4·wg (a group of lanes within the workgroup), halved while half still covers all n
// outputs (more groups of lanes for the keys, none idle).
func shortSlice(want, wg, n int) int {
	s := 4
	for s*2 <= min(want, 128, 4*wg) {
		s *= 2
	}
	for s > 4 && s/2 >= n {
		s /= 2
	}
	return s
}

// shortWorkgroup is AB_SHORT's threads a workgroup over k keys at slice outputs a workgroup: the
// fewest (a power of two, 64 to most) whose groups take every key in one round of 4 (wg·16/slice
// keys: a thread's loads all in flight at once), so that short caches merge fewer groups.
func shortWorkgroup(k, slice, most int) int {
	wg := 64
	for wg < most && wg*16/slice < k {
		wg *= 2
	}
	return wg
}

// pvShortAhead runs AB_SHORT, where a thread takes its keys in more than one round of 4, as its
// variant ab_short_ahead: the next round's keys loaded before this round's are added (two rounds
// in flight, ~24 more registers a thread). Not yet timed on the H200 (AB_SHORT took 10.8 µs a
// layer at 1024 keys, two rounds at 512 threads); BenchmarkDecode's -nibble.pvshortahead and
// BenchmarkPVSplit's aS×T set it.
var pvShortAhead bool
