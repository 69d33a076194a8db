package gpu

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestGraphPVSplit runs the softmax product tests with K split over workgroups (forcePVSplit:
// ops_matmul.wgsl's AB_CHUNKS, then AB_MERGE): TestGraphStatesInPlace (f32, f16 and int8 states
// read in place, rows of 5 elements, 16 keys, a plain softmax and a masked one whose rows keep a
// prefix, a third or nothing, scaled after), TestGraphSoftmaxProducts (masked and plain, 70 and
// 300 keys, a row with nothing kept, 130 outputs: two slices); with workgroups of 32 to 256
// threads and chunks of 5 to 100 keys (K a multiple of none; one chunk longer than a workgroup,
// one holding all of K; and pvChunkFor's), on poisoned arenas and scratch; and
// TestDecodeDispatches, 8 a layer.
func TestGraphPVSplit(t *testing.T) {
	noAttention(t)
	t.Cleanup(saved(&forcePVSplit))
	defaults := saved(&pvChunk, &pvSplitWG)
	t.Cleanup(defaults)
	forcePVSplit = true
	for _, c := range []struct{ wg, chunk int }{{256, 64}, {32, 5}, {64, 16}, {32, 100}, {256, 0}} {
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
	defaults()
	t.Run("dispatches", TestDecodeDispatches) // 8 a layer
}

var (
	benchPVKeys  = flag.String("nibble.pvkeys", "512,2048", "BenchmarkPVSplit: cached keys of the timed p·v")
	benchPVSweep = flag.String("nibble.pvsweep", "32x256,64x256,128x256,256x256,64x128,64x512", "BenchmarkPVSplit: keys×threads a workgroup of each key-split product timed beside the split product, or sOUTPUTS×threads of AB_SHORT (s32x256: -nibble.pvshortslice 32, -nibble.pvshortwg 256)")
)

// BenchmarkPVSplit times attention's p·v of one token alone: 32 heads of Dh 128 over an f16
// cache of -nibble.pvkeys rows read in place, its masked softmax inside, as the split product
// and split over keys at each -nibble.pvsweep chunk×threads (or, sS×T, unsplit as AB_SHORT with
// slices of S outputs, T threads a workgroup; aS×T: as ab_short_ahead); GPU time from timestamp queries
// (median of 5), with the cached values' bytes ÷ that time beside the read ceiling. No weights:
// the sweep costs seconds where BenchmarkDecode's 7B costs minutes a variant.
func BenchmarkPVSplit(b *testing.B) {
	defer saved(&forceSoftmaxProducts, &forcePVSplit, &forcePVShort, &pvShortAhead)()
	defer saved(&pvShortSlice, &pvShortWG)()
	defer saved(&pvSplitFrom, &pvChunk, &pvSplitWG)()
	forceSoftmaxProducts = true // software adapters fuse it too, to try the harness
	be := newBackend(b, Options{Timing: true})
	ceil := ceiling(b, be)
	const heads, dh = 32, 128
	for _, ks := range strings.Split(*benchPVKeys, ",") {
		keep, err := strconv.Atoi(ks)
		if err != nil || keep < 1 {
			b.Fatalf("-nibble.pvkeys %q: want a positive count", ks)
		}
		g := graph.New(fmt.Sprintf("p·v %d", keep))
		vs := g.StateWrite("v write", g.State("v", graph.StateF16, keep, heads, dh), g.Input("v", graph.Float32, 1, heads, dh), g.Input("pos", graph.Int32, 1), keep)
		p := g.Softmax("p", g.Input("s", graph.Float32, heads, 1, keep), g.Input("mask", graph.Float32, 1, keep))
		if err := g.Output(g.MatMul("pv", p, g.Transpose("vt", vs, 1, 0, 2), false)); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		in := []graph.Tensor{normalInput(1, heads, dh)(rng), graph.I32Tensor([]int32{int32(keep - 1)}, 1), normalInput(heads, 1, keep)(rng),
			graph.F32Tensor(slices.Repeat([]float32{1}, keep), 1, keep)}
		bytes := float64(keep * heads * dh * 2)
		for _, v := range append([]string{"split product"}, strings.Split(*benchPVSweep, ",")...) {
			forcePVSplit, pvSplitFrom, forcePVShort = false, math.MaxInt, false
			if (v[0] == 's' || v[0] == 'a') && v != "split product" {
				if _, err := fmt.Sscanf(v[1:], "%dx%d", &pvShortSlice, &pvShortWG); err != nil {
					b.Fatalf("-nibble.pvsweep %q: want sOUTPUTS×threads or aOUTPUTS×threads", v)
				}
				forcePVShort, pvShortAhead = true, v[0] == 'a'
			} else if v != "split product" {
				if _, err := fmt.Sscanf(v, "%dx%d", &pvChunk, &pvSplitWG); err != nil {
					b.Fatalf("-nibble.pvsweep %q: want keys×threads", v)
				}
				forcePVSplit = true
			}
			ms, n := pvTime(b, be, g, in)
			b.Logf("p·v at %d keys, %s: %d dispatches, %.1f µs, %.0f GB/s of the cache (ceiling %.0f)", keep, v, n, ms*1e3, bytes/ms/1e6, ceil)
			fmt.Printf("NIBBLE_PV {\"keys\":%d,\"variant\":%q,\"dispatches\":%d,\"us\":%.2f,\"gbps\":%.1f}\n", keep, v, n, ms*1e3, bytes/ms/1e6)
		}
	}
	b.ReportMetric(0, "ns/op")
}

// pvTime compiles g on be (its state alone), runs it once and returns the GPU time of its
// products' dispatches, recorded alone, and their count.
func pvTime(b *testing.B, be *Backend, g *graph.Graph, in []graph.Tensor) (float64, int) {
	sp := g.States()[0]
	st, err := be.NewState(sp)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Release()
	prog, err := be.Compile(g, backend.WithStates(backend.WeightMap{}, backend.StateMap{sp.Name: st}))
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Release()
	p := prog.(*program)
	if _, err := p.run(context.Background(), in, false); err != nil {
		b.Fatal(err)
	}
	var products []step
	for _, s := range p.steps {
		if strings.Contains(s.pl.Label(), "op-matmul") {
			products = append(products, s)
		}
	}
	return gpuMS(b, be, "p·v", products), len(products)
}
