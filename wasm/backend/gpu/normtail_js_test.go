//go:build js && wasm

package gpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestGraphNormTail checks the RMS norms whose x·gain and sums the residual Linear before them
// writes (normtail.go, gemv_reduce.wgsl NORM_TAIL) and whose readers normalize with those sums
// (gemv_hw.wgsl NORM_PART) against the cpu, on poisoned arenas, run twice: a decoder's chain, x →
// h1 = r + x·w1ᵀ → n1 = RMSNorm(h1) → h2 = h1 + n1·w2ᵀ → n2 = RMSNorm(h2) → n2·w3ᵀ and r + n2·w3ᵀ,
// at m = 1 and 3, N = 204 for f32 weights (not a multiple of a workgroup's 8 rows), 224 for
// quantized ones (rows of whole groups, read as they are); and a row of 4064 (the readers'
// threads adding 4 sums each, some past the row's 508). Both adapter classes' GEMV kernels:
// only gemv_hw.wgsl writes them, where the device's storage buffers a stage take them.
func TestGraphNormTail(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&fuseNormTail))
	fuseNormTail = true // off by default until measured on a GPU
	for bi, b := range bothGEMVKernels(t, Options{}) {
		rng := rand.New(rand.NewPCG(21, 22))
		for _, f := range []quant.Format{{Bits: 32}, {Bits: 4, GroupSize: 32}, {Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16}} {
			t.Run(fmt.Sprintf("tuning%d/%v", bi, f), func(t *testing.T) {
				const K, NL, KL, NO = 160, 4064, 64, 24
				N := 224
				if f.Bits == 32 {
					N = 204
				}
				ws := map[string]*quant.Tensor{
					"w1": quantized(t, "w1", rng, N, K, f), "w2": quantized(t, "w2", rng, N, N, f), "w3": quantized(t, "w3", rng, N, N, f),
					"wl": quantized(t, "wl", rng, NL, KL, f), "wo": quantized(t, "wo", rng, NO, NL, f),
				}
				ms := []int{1, 3}
				var g *graph.Graph
				checkLocal(t, b, "norm tails "+f.String(), func(gr *graph.Graph, w map[string]*quant.Tensor) error {
					g = gr
					for k, v := range ws {
						w[k] = v
					}
					var outs []graph.Value
					g1, g2 := g.Input("g1", graph.Float32, N), g.Input("g2", graph.Float32, N)
					for _, m := range ms {
						x := g.Input(fmt.Sprint("x", m), graph.Float32, m, K)
						r := g.Input(fmt.Sprint("r", m), graph.Float32, m, N)
						h1 := g.Add(fmt.Sprint("h1.", m), r, g.Linear(fmt.Sprint("fc1.", m), x, g.Weight("w1", N, K), graph.None))
						n1 := g.RMSNorm(fmt.Sprint("n1.", m), h1, g1, 1e-5)
						h2 := g.Add(fmt.Sprint("h2.", m), g.Linear(fmt.Sprint("fc2.", m), n1, g.Weight("w2", N, N), graph.None), h1)
						n2 := g.RMSNorm(fmt.Sprint("n2.", m), h2, g2, 1e-6)
						outs = append(outs, h1, h2, g.Linear(fmt.Sprint("fc3.", m), n2, g.Weight("w3", N, N), graph.None),
							g.Add(fmt.Sprint("h3.", m), r, g.Linear(fmt.Sprint("fc4.", m), n2, g.Weight("w3", N, N), graph.None)))
					}
					xl := g.Input("xl", graph.Float32, 1, KL)
					hl := g.Add("hl", g.Input("rl", graph.Float32, 1, NL), g.Linear("fcl", xl, g.Weight("wl", NL, KL), graph.None))
					nl := g.RMSNorm("nl", hl, g.Input("gl", graph.Float32, NL), 1e-5)
					outs = append(outs, g.Linear("fco", nl, g.Weight("wo", NO, NL), graph.None))
					return g.Output(outs...)
				}, func(rng *rand.Rand) []graph.Tensor {
					in := []graph.Tensor{normalInput(N)(rng), normalInput(N)(rng)}
					for _, m := range ms {
						in = append(in, normalInput(m, K)(rng), normalInput(m, N)(rng))
					}
					return append(in, normalInput(1, KL)(rng), normalInput(1, NL)(rng), normalInput(NL)(rng))
				})
				// Which norms the GEMVs wrote: all 5 where the kernel and the bindings allow.
				prog, err := b.Compile(g, uploadAll(t, b, ws))
				if err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
				key := keyFor(f, N, 1, b.feat, b.tune)
				pl := prog.(*program).plan
				want := 0
				if key.Kernel == shaders.GEMVHW && 8+weightBuffers(key) <= b.dev.Limits().MaxStorageBuffersPerShaderStage {
					want = 2*len(ms) + 1
				}
				if got := len(pl.normTails); got != want {
					t.Errorf("%d norms written by their residual Linear's GEMV, want %d (%s, %d storage buffers a stage)", got, want, key.Kernel, b.dev.Limits().MaxStorageBuffersPerShaderStage)
				}
			})
		}
	}
}

// normTailExpected says whether p's device takes the bindings of a norm tail on an int8 or int4
// symmetric weight (BenchmarkDecode's decoders: two weight buffers).
func normTailExpected(p *program) bool {
	return p.b.tune.GEMVKernel == shaders.GEMVHW && p.b.tune.GEMVRows == 8 && 8+2 <= p.b.dev.Limits().MaxStorageBuffersPerShaderStage
}
