package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestGraphAttention runs one token's attention as one dispatch (forceAttn: ops_attn.wgsl)
// against the cpu on poisoned arenas: caches stored as f32, f16 and int8 read in place, three
// attentions a graph (grouped-query: 3 query heads a KV head; a query of 40 elements rotated as
// it is read, scaled, its softmax masked per query head with rows keeping a prefix, a third or
// nothing; 5 elements, odd rows of an f16 cache starting mid-word, a plain softmax, p·v scaled
// after; 128 elements, word-aligned, masked as llama masks, and read by an int8 Linear through a
// view, whose weight the dispatch also reads into the L2: attnWarm, on here), in a prefill of 2 rows and a
// decode step of 1, over 1, 13, 70 and 300 keys (within a round of the scores, past one, past
// several rounds and value blocks); with workgroups of 64 to 1024 threads (as many as the
// device takes: 256 on SwiftShader); then the suite's decoder block (keys and values f32
// values, rank-4 batches) and TestDecodeDispatches, 6 a layer.
func TestGraphAttention(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&forceAttn, &forceSoftmaxProducts))
	t.Cleanup(saved(&attnSplit))
	t.Cleanup(saved(&attnWarm))
	attnSplit = 0   // a workgroup a row (TestGraphAttentionSplit runs the split variant)
	attnWarm = true // off by default (a loss on an H200), kept right here
	defaultWG := saved(&attnWG)
	t.Cleanup(defaultWG)
	forceAttn, forceSoftmaxProducts = true, true
	ref := cpu.New()
	ran := map[int]bool{}
	for _, wg := range []int{64, 256, 512, 1024} {
		attnWG = wg
		b := newBackend(t, Options{})
		if wg = (&compiler{p: &program{b: b}}).attnWorkgroup(); ran[wg] {
			continue // the device's largest workgroup, run already
		}
		ran[wg] = true
		for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
			for _, keep := range []int{1, 13, 70, 300} {
				t.Run(fmt.Sprintf("wg%d/%s/keep%d", wg, storage, keep), func(t *testing.T) {
					gs := attentionGraphs(t, storage, keep)
					got, want := openAttention(t, b, ref, gs)
					for _, p := range got {
						if n := len(p.(*program).plan.attns); n != 3 {
							t.Fatalf("%s: %d attentions as one dispatch, want 3", p.(*program).g.Name, n)
						}
					}
					if !compiledFamily(b, shaders.OpAttention) {
						t.Fatal("no attention kernel compiled")
					}
					if !compiledKey(b, attnWarmed) {
						t.Fatal("no attention kernel that reads the o projection's weights (attnWarm)")
					}
					runAttention(t, b, gs, got, want, keep)
				})
			}
		}
		backendtest.RunGraphs(t, b, backendtest.GraphOptions{Only: "block/decoder-", Tolerance: graphTolerance(b, true)})
	}
	defaultWG()
	t.Run("dispatches", TestDecodeDispatches) // 6 a layer
}

// TestGraphAttentionSplit runs TestGraphAttention's graphs with the split variant (attnSplit:
// a workgroup per chunk of a row's keys, the chunks merged by the row's last workgroup) against
// the cpu on poisoned arenas: chunks of 16 keys at 64 threads (13 keys in one chunk, 70 in five,
// 300 in nineteen, the last of 12), and of 32 keys at 128 threads with at most 4 chunks a row
// (300 keys: chunks of 128, 128 and 44); with up to 70 keys a row in one workgroup (attnWhole)
// and 300 in chunks (rows in one workgroup reading the Linear's weight, attnWarm); f16 caches
// of 40 and 128 elements read along words
// (ALIGNED), of 5 not. Each program runs six steps and three attentions share
// the handoff, so a counter or a word left set fails a later one. Then TestDecodeDispatches, 6 a
// layer.
func TestGraphAttentionSplit(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&forceAttn, &forceSoftmaxProducts))
	t.Cleanup(saved(&attnSplit, &attnSplitWG, &attnChunks, &attnWhole))
	t.Cleanup(saved(&attnWarm))
	forceAttn, forceSoftmaxProducts, attnWarm = true, true, true
	ref := cpu.New()
	b := newBackend(t, Options{})
	for _, c := range []struct{ split, wg, chunks, whole int }{{16, 64, 64, 0}, {32, 128, 4, 0}, {32, 128, 16, 70}} {
		attnSplit, attnSplitWG, attnChunks, attnWhole = c.split, c.wg, c.chunks, c.whole
		for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
			for _, keep := range []int{1, 13, 70, 300} {
				t.Run(fmt.Sprintf("split%d-wg%d-chunks%d-whole%d/%s/keep%d", c.split, c.wg, c.chunks, c.whole, storage, keep), func(t *testing.T) {
					gs := attentionGraphs(t, storage, keep)
					got, want := openAttention(t, b, ref, gs)
					for _, p := range got {
						if n := len(p.(*program).plan.attns); n != 3 {
							t.Fatalf("%s: %d attentions as one dispatch, want 3", p.(*program).g.Name, n)
						}
					}
					if variant := map[bool]string{true: "split", false: "decode"}[keep > c.whole]; !compiledOp(b, shaders.OpAttention, variant) {
						t.Fatalf("no %s attention kernel compiled", variant)
					}
					if keep <= c.whole && !compiledKey(b, attnWarmed) {
						t.Fatal("no attention kernel that reads the o projection's weights (attnWarm)")
					}
					if storage == graph.StateF16 && !compiledKey(b, attnAligned) {
						t.Fatal("no attention over an f16 cache read along words (ALIGNED)")
					}
					runAttention(t, b, gs, got, want, keep)
				})
			}
		}
	}
	t.Run("dispatches", TestDecodeDispatches) // 6 a layer
}

// runAttention runs gs's programs on b and the cpu at a sequence of positions: masks of
// stateMask's rows ("mask") and causal ones ("causal"), row t keeping the keys up to pos + t.
func runAttention(t *testing.T, b *Backend, gs []*graph.Graph, got, want []backend.Program, keep int) {
	rng := rand.New(rand.NewPCG(21, uint64(keep)))
	for step, at := range []struct{ graph, pos int }{{0, 0}, {1, 2}, {1, 3}, {0, 5}, {1, keep / 2}, {1, keep}} {
		g := gs[at.graph]
		in := stepInputs(g, at.pos, rng, func(n *graph.Node) (graph.Tensor, bool) {
			s := n.Shape
			switch n.Label {
			case "mask":
				return graph.F32Tensor(stateMask(rng, s[0]*s[1], s[2]).F32, s...), true
			case "causal":
				m := make([]float32, s.Size())
				for i := range m {
					if i%keep <= at.pos+i/keep {
						m[i] = 1
					}
				}
				return graph.F32Tensor(m, s...), true
			}
			return graph.Tensor{}, false
		})
		compareStep(t, b, got[at.graph], want[at.graph], in, fmt.Sprintf("step %d (%s at %d)", step, g.Name, at.pos))
	}
}

// attentionGraphs are TestGraphAttention's prefill (2 rows) and decode (1 row) graphs over
// caches of the given storage, attending over keep rows.
func attentionGraphs(t *testing.T, storage graph.StateFormat, keep int) []*graph.Graph {
	const KV, G = 2, 3
	S := keep + 8 // room for every step's rows past keep
	var gs []*graph.Graph
	for _, rows := range []int{2, 1} {
		g := graph.New(fmt.Sprintf("attention/%s/keep%d/rows%d", storage, keep, rows))
		pos := g.Input("pos", graph.Int32, 1)
		cos, sin := g.Input("cos", graph.Float32, rows, 1, 20, 1), g.Input("sin", graph.Float32, rows, 1, 20, 1)
		// attend is llama's attention over new keys k and values v [rows, KV, Dh] written into
		// caches of Dh elements, the query q [rows, KV·G, Dh]: [KV, G·rows, Dh], the scores
		// scaled (unless scale is 0) and the result times alpha (a Scale unless 1).
		attend := func(name string, dh int, q graph.Value, scale float32, mask graph.Value, alpha float32) graph.Value {
			k, v := g.Input(name+"k", graph.Float32, rows, KV, dh), g.Input(name+"v", graph.Float32, rows, KV, dh)
			ks := g.StateWrite(name+"k write", g.State(name+"k", storage, S, KV, dh), k, pos, keep)
			vs := g.StateWrite(name+"v write", g.State(name+"v", storage, S, KV, dh), v, pos, keep)
			qg := g.Reshape(name+"q flat", g.Transpose(name+"q t", g.Reshape(name+"q group", q, rows, KV, G, dh), 1, 2, 0, 3), KV, G*rows, dh)
			s := g.MatMul(name+"qk", qg, g.Transpose(name+"kt", ks, 1, 0, 2), true)
			if scale != 0 {
				s = g.Scale(name+"scale", s, scale)
			}
			p := g.Reshape(name+"p flat", g.Softmax(name+"p", g.Reshape(name+"scores", s, KV, G, rows, keep), mask), KV, G*rows, keep)
			o := g.MatMul(name+"pv", p, g.Transpose(name+"vt", vs, 1, 0, 2), false)
			if alpha != 1 {
				o = g.Scale(name+"half", o, alpha)
			}
			return o
		}
		rq := tableRotate(g, g.Input("qraw", graph.Float32, rows, KV*G, 40), cos, sin)
		a := attend("a/", 40, rq, float32(1/math.Sqrt(40)), g.Input("mask", graph.Float32, G, rows, keep), 1)
		b := attend("b/", 5, g.Input("q5", graph.Float32, rows, KV*G, 5), 0, graph.None, 0.5)
		c := attend("c/", 128, g.Input("q128", graph.Float32, rows, KV*G, 128), 0.125, g.Input("causal", graph.Float32, rows, keep), 1)
		// c read by a Linear through a view, as llama's o projection reads its attention: the
		// dispatch reads that weight into the L2 too (attnWarm).
		o := g.Linear("c/o", g.Reshape("c/rows", c, KV*G*rows, 128), g.Weight(attnWarmWeight, attnWarmN, 128), graph.None)
		if err := g.Output(a, b, o); err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// attnWarmWeight is the weight attentionGraphs' o projection reads: attnWarmN rows of 128, int8.
const (
	attnWarmWeight = "c/wo"
	attnWarmN      = 24
)

// openAttention compiles gs on b and on ref, with the o projection's weight uploaded to each.
func openAttention(t *testing.T, b *Backend, ref *cpu.Backend, gs []*graph.Graph) (got, want []backend.Program) {
	q := quantized(t, attnWarmWeight, rand.New(rand.NewPCG(5, 6)), attnWarmN, 128, q8)
	wm := [2]backend.WeightMap{}
	for i, u := range []interface {
		Upload(*quant.Tensor) (backend.Weight, error)
	}{b, ref} {
		w, err := u.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Release() })
		wm[i] = backend.WeightMap{attnWarmWeight: w}
	}
	return openStatesWith(t, b, b, gs, wm[0]), openStatesWith(t, ref, ref, gs, wm[1])
}

// attnWarmed and attnAligned are attention kernels that read the next GEMV's weights into the
// L2 (OpKey.Warm) and that read their f16 cache along words (OpKey.Aligned), for compiledKey.
func attnWarmed(k shaders.OpKey) bool  { return k.Family == shaders.OpAttention && k.Warm }
func attnAligned(k shaders.OpKey) bool { return k.Family == shaders.OpAttention && k.Aligned }

// noAttention keeps the products a test checks from being run as attention on hardware adapters
// (attnMax 0 until the test ends).
func noAttention(t testing.TB) {
	t.Cleanup(saved(&attnMax))
	attnMax = 0
}

// compiledFamily reports whether b compiled an op kernel of family f.
func compiledFamily(b *Backend, f shaders.OpFamily) bool {
	return compiledOp(b, f, "")
}

// compiledOp reports whether b compiled an op kernel of family f and variant v (any variant
// where v is "").
func compiledOp(b *Backend, f shaders.OpFamily, v string) bool {
	return compiledKey(b, func(k shaders.OpKey) bool { return k.Family == f && (v == "" || k.Variant == v) })
}

// compiledKey reports whether b compiled an op kernel whose key satisfies is.
func compiledKey(b *Backend, is func(shaders.OpKey) bool) bool {
	for k := range b.ops {
		if is(k) {
			return true
		}
	}
	return false
}
