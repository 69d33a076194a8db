package gpu

import (
	"fmt"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestGraphPVShort runs the softmax products as ops_matmul.wgsl's AB_SHORT (forcePVShort)
// against the cpu on poisoned arenas: TestGraphAttention's graphs with attention as two products
// (caches stored as f32, f16 and int8 read in place; 3 query heads a KV head; a query of 40
// elements rotated as it is read, its softmax masked per query head with rows keeping a prefix, a
// third or nothing; 5 elements, odd f16 rows starting mid-word, a plain softmax, p·v scaled
// after; 128 elements masked causally; a prefill of 2 rows and a decode step) over 1, 70, 129
// and 300 keys; then TestGraphStatesInPlace and TestGraphSoftmaxProducts (130 outputs, a row
// keeping nothing). Slices of 4 to 128 outputs (40 a multiple of neither 16 nor 32: a ragged
// last slice; 5 in one slice of 8), workgroups of 32 to 512 threads (as many as the device
// takes; and shortWorkgroup's), so 1 to 64 groups of lanes take the keys, a thread 1 to 75 of
// them; and as ab_short_ahead (pvShortAhead) where a thread takes more than one round. A
// software adapter runs four of the nine shapes (the default one among them).
func TestGraphPVShort(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&forcePVShort, &forceSoftmaxProducts, &forceAttn, &pvShortAhead))
	t.Cleanup(saved(&pvShortSlice, &pvShortWG, &attnMax))
	for _, c := range []struct {
		slice, wg int
		ahead     bool
		hw        bool // a GPU only: SwiftShader's compiles make each shape ~10–50 s in CI
	}{{16, 0, false, false}, {32, 256, false, true}, {4, 32, false, false}, {16, 64, false, true}, {64, 32, false, true}, {128, 512, false, false},
		{16, 0, true, true}, {4, 32, true, false}, {16, 64, true, true}} {
		if c.hw && softwareAdapter(webgpuInfo(t)) {
			continue
		}
		pvShortSlice, pvShortWG = c.slice, c.wg
		t.Run(fmt.Sprintf("slice%d/wg%d/ahead=%v", c.slice, c.wg, c.ahead), func(t *testing.T) {
			forcePVShort, forceSoftmaxProducts, forceAttn, attnMax, pvShortAhead = true, true, false, 0, c.ahead
			b := newBackend(t, Options{})
			attentionProducts(t, b, func(b *Backend) bool { return compiledVariant(b, "ab_short") || compiledVariant(b, "ab_short_ahead") })
			// With shortWorkgroup's size (wg 0) a device of 1024 threads (an H200's) takes 300
			// keys in one round, so no thread has a second and ab_short_ahead does not apply.
			if c.ahead && c.wg > 0 && !compiledVariant(b, "ab_short_ahead") {
				t.Fatal("no product compiled as ab_short_ahead")
			}
			t.Run("states", TestGraphStatesInPlace)
			forceSoftmaxProducts = true // TestGraphStatesInPlace's cleanup clears it
			t.Run("softmax", TestGraphSoftmaxProducts)
		})
	}
}

// TestShortSlice: AB_SHORT's slice is a power of two in 4 … 128, at most 4 lanes a thread of the
// workgroup, and no wider than it needs to cover a row's outputs.
func TestShortSlice(t *testing.T) {
	for _, c := range []struct{ want, wg, n, slice int }{
		{32, 256, 128, 32}, {128, 512, 128, 128}, {256, 512, 4096, 128}, {48, 256, 128, 32}, {1, 256, 128, 4},
		{128, 8, 128, 32}, {32, 256, 5, 8}, {32, 256, 40, 32}, {128, 256, 40, 64}, {32, 256, 1, 4},
	} {
		if got := shortSlice(c.want, c.wg, c.n); got != c.slice {
			t.Errorf("shortSlice(%d, %d, %d) = %d, want %d", c.want, c.wg, c.n, got, c.slice)
		}
	}
}

// TestShortWorkgroup: AB_SHORT's threads take every key in one round where the device allows.
func TestShortWorkgroup(t *testing.T) {
	for _, c := range []struct{ k, slice, most, wg int }{
		{128, 16, 512, 128}, {512, 16, 512, 512}, {1024, 16, 512, 512}, {128, 32, 512, 256}, {1, 16, 512, 64},
		{70, 16, 256, 128}, {300, 128, 256, 256}, {129, 4, 512, 64},
	} {
		if got := shortWorkgroup(c.k, c.slice, c.most); got != c.wg {
			t.Errorf("shortWorkgroup(%d, %d, %d) = %d, want %d", c.k, c.slice, c.most, got, c.wg)
		}
	}
}

// shortFlags sets AB_SHORT's and abt_preload's switches from BenchmarkDecode's flags
// (-nibble.pvshort, -nibble.pvshortmax, -nibble.pvshortslice, -nibble.pvshortwg,
// -nibble.pvshortahead, -nibble.qkpreload) and returns what puts them back.
func shortFlags() func() {
	restoreBools, restoreInts := saved(&forcePVShort, &qkPreload, &pvShortAhead), saved(&pvShortMax, &pvShortSlice, &pvShortWG)
	pvShortMax, pvShortSlice, pvShortWG = *benchPVShortMax, *benchPVSlice, *benchPVShortWG
	forcePVShort, qkPreload, pvShortAhead = *benchPVShort == "on", *benchQKPreload, *benchPVAhead
	if *benchPVShort == "off" {
		pvShortMax = 0
	}
	return func() { restoreBools(); restoreInts() }
}

// attentionProducts runs TestGraphAttention's graphs as two products on b against the cpu (caches
// stored as f32, f16 and int8, over 1, 70, 129 and 300 keys), each case first checking that b
// compiled the kernel under test (compiled).
func attentionProducts(t *testing.T, b *Backend, compiled func(*Backend) bool) {
	ref := cpu.New()
	for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
		for _, keep := range []int{1, 70, 129, 300} {
			t.Run(fmt.Sprintf("%s/keep%d", storage, keep), func(t *testing.T) {
				gs := attentionGraphs(t, storage, keep)
				got, want := openAttention(t, b, ref, gs)
				if !compiled(b) {
					t.Fatal("the kernel under test was not compiled")
				}
				runAttention(t, b, gs, got, want, keep)
			})
		}
	}
}
