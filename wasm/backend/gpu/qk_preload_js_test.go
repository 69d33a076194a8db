package gpu

import (
	"fmt"
	"testing"
)

// TestGraphQKPreload runs q·kᵀ as ABT_GROUP's variant abt_preload (forceQKGroup, qkPreload: a
// round's rows loaded before any is used) against the cpu on poisoned arenas: TestGraphAttention's
// graphs as two products (f32, f16 and int8 caches read in place, Dh 40 with the query rotated as
// it is read, 5 (rows starting mid-word), 128; prefill of 2 rows and decode) over 1, 70, 129 and
// 300 keys, then the product tests TestGraphQKGroup runs; with workgroups of 256 (one round of 32
// keys) and of 32 threads (rounds of 4 keys), chunks of 5 keys (a round's rows past the chunk),
// 128 and qkChunk's (0); a software adapter skips the 128-key chunks.
func TestGraphQKPreload(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&forceQKGroup, &qkPreload, &forceSoftmaxProducts, &forceAttn))
	t.Cleanup(saved(&qkGroupKeys, &qkGroupWG, &attnMax))
	for _, c := range []struct{ wg, keys int }{{256, 0}, {32, 5}, {32, 128}} {
		if c.keys == 128 && softwareAdapter(webgpuInfo(t)) {
			continue // a GPU only: SwiftShader's compiles make each shape ~30 s in CI
		}
		qkGroupWG, qkGroupKeys = c.wg, c.keys
		t.Run(fmt.Sprintf("wg%d/keys%d", c.wg, c.keys), func(t *testing.T) {
			forceQKGroup, qkPreload, forceSoftmaxProducts, forceAttn, attnMax = true, true, true, false, 0
			attentionProducts(t, newBackend(t, Options{}), func(b *Backend) bool {
				return compiledVariant(b, "abt_preload") && !compiledVariant(b, "abt_group")
			})
			t.Run("states", TestGraphStatesInPlace)
			t.Run("split", TestGraphSplitMatMul)
			t.Run("softmax", TestGraphSoftmaxProducts)
		})
	}
}
