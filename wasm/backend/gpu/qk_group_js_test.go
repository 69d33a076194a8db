package gpu

import (
	"fmt"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestGraphQKGroup runs the product tests with a·bᵀ as ops_matmul.wgsl's ABT_GROUP (forceQKGroup):
// f32, f16 (rows of 5 halves: keys not word-aligned) and int8 states read in place, the query
// rotated as it is read, the suite's products and decoder block; with workgroups of 256 (one
// round of 32 keys) and of 32 threads (rounds of 4 keys, 16 keys over several), and chunks of
// keys that are not a multiple of a round (5) or hold all of them (128), and qkChunk's (0).
func TestGraphQKGroup(t *testing.T) {
	noAttention(t)
	t.Cleanup(saved(&forceQKGroup))
	t.Cleanup(saved(&qkGroupKeys, &qkGroupWG))
	forceQKGroup = true
	for _, c := range []struct{ wg, keys int }{{256, 128}, {32, 128}, {32, 5}, {256, 0}} {
		qkGroupWG, qkGroupKeys = c.wg, c.keys
		t.Run(fmt.Sprintf("wg%d/keys%d", c.wg, c.keys), func(t *testing.T) {
			b := newBackend(t, Options{})
			openStates(t, b, b, inPlaceGraphs(t, graph.StateF16))
			if !compiledVariant(b, "abt_group") {
				t.Fatal("no product compiled as abt_group")
			}
			t.Run("states", TestGraphStatesInPlace)
			t.Run("split", TestGraphSplitMatMul)
			t.Run("softmax", TestGraphSoftmaxProducts)
		})
	}
}

// compiledVariant reports whether b compiled a product kernel of the variant.
func compiledVariant(b *Backend, variant string) bool {
	return compiledOp(b, shaders.OpMatMul, variant)
}
