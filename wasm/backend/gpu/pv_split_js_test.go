package gpu

import (
	"fmt"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestGraphPVSplit runs the softmax product tests with K split over workgroups (forcePVSplit:
// ops_matmul.wgsl's AB_CHUNKS, then AB_MERGE): TestGraphStatesInPlace (f32, f16 and int8 states
// read in place, rows of 5 elements, 16 keys, a plain softmax and a masked one whose rows keep a
// prefix, a third or nothing, scaled after), TestGraphSoftmaxProducts (masked and plain, 70 and
// 300 keys, a row with nothing kept, 130 outputs: two slices); with workgroups of 32 to 256
// threads and chunks of 5 to 100 keys (K a multiple of none; one chunk longer than a workgroup,
// one holding all of K), on poisoned arenas and scratch.
func TestGraphPVSplit(t *testing.T) {
	forcePVSplit = true
	t.Cleanup(func() { forcePVSplit, pvChunk, pvSplitWG = false, 64, 256 })
	for _, c := range []struct{ wg, chunk int }{{256, 64}, {32, 5}, {64, 16}, {32, 100}} {
		pvSplitWG, pvChunk = c.wg, c.chunk
		t.Run(fmt.Sprintf("wg%d/chunk%d", c.wg, c.chunk), func(t *testing.T) {
			b := newBackend(t, Options{})
			forceSoftmaxProducts = true
			openStates(t, b, b, inPlaceGraphs(t, graph.StateF16))
			forceSoftmaxProducts = false
			if !compiledVariant(b, "ab_chunks") || !compiledVariant(b, "ab_merge") {
				t.Fatal("no product compiled as ab_chunks and ab_merge")
			}
			t.Run("states", TestGraphStatesInPlace)
			t.Run("softmax", TestGraphSoftmaxProducts)
		})
	}
}
