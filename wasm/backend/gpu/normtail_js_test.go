//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
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
					_, err := normTailGraph(g, N, K, NL, KL, NO, ms)
					return err
				}, normTailInputs(N, K, NL, KL, ms))
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

// TestGraphNormTailA8 checks the RMS norms whose activation blocks the residual Linear's
// gemv_a8.wgsl GEMV before them writes (normtail.go's a8 form, gemv_a8.wgsl QTAIL) against the
// same graph with the norms' pre-pass (a8NormPrepass), which TestGraphA8 holds to the reference:
// the outputs must be the same floats, since the tail forms each block as the pre-pass does from
// the same stored sums. The graph: TestGraphNormTail's chain (a GEMV that reads one norm's
// blocks and writes the next's) at m = 1 and 3, and a row of 4096 read by int8 codes; int4,
// int8 asymmetric (f16 scales) and int2 weights, so blocks of 32 and 16 and both schemes. Each
// program runs three times on fresh inputs: a block's counter or handoff not left at zero makes
// the next run's blocks stale or its waits give up. Then again with every int8-activation GEMV
// at 16 rows a workgroup, whose two groups of 8 each hand their outputs over.
func TestGraphNormTailA8(t *testing.T) {
	for _, rows := range []int{0, 16} {
		t.Run(fmt.Sprint("rows", rows), func(t *testing.T) { testGraphNormTailA8(t, tailBackend(t, rows)) })
	}
}

func testGraphNormTailA8(t *testing.T, b *Backend) {
	rng := rand.New(rand.NewPCG(23, 24))
	q8a := quant.Format{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16}
	for _, f := range []quant.Format{quant.Q4, q8a, {Bits: 2, GroupSize: 64}} {
		t.Run(f.String(), func(t *testing.T) {
			const K, NL, KL, NO = 192, 4096, 64, 24
			N := 224
			if f.Bits == 2 {
				N = 256 // rows of whole int2 spans
			}
			ws := map[string]*quant.Tensor{
				"w1": quantized(t, "w1", rng, N, K, f), "w2": quantized(t, "w2", rng, N, N, f), "w3": quantized(t, "w3", rng, N, N, f),
				"wl": quantized(t, "wl", rng, NL, KL, f), "wo": quantized(t, "wo", rng, NO, NL, q8a),
			}
			ms := []int{1, 3}
			g := graph.New("a8 norm tails")
			outs, err := normTailGraph(g, N, K, NL, KL, NO, ms)
			if err != nil {
				t.Fatal(err)
			}
			progs := compileBoth(t, b, g, uploadAll(t, b, ws), &fuseA8NormTail)
			if got, want := len(progs[0].(*program).plan.normTails), 2*len(ms)+1; got != want {
				t.Fatalf("%d norms written by their residual Linear's GEMV, want %d (%d storage buffers a stage, %d normed)", got, want, b.dev.Limits().MaxStorageBuffersPerShaderStage, len(progs[0].(*program).plan.normed))
			}
			if got := len(progs[1].(*program).plan.normTails); got != 0 {
				t.Fatalf("%d norm tails with fuseA8NormTail off", got)
			}
			sameRuns(t, g, outs, progs, rng, 3, normTailInputs(N, K, NL, KL, ms))
		})
	}
}

// normTailGraph builds TestGraphNormTail's graph in g (weights w1, w2, w3 [N, K], [N, N], [N, N],
// wl [NL, KL], wo [NO, NL]) and returns its outputs: for each m, x → h1 = r + x·w1ᵀ → n1 =
// RMSNorm(h1) → h2 = h1 + n1·w2ᵀ → n2 = RMSNorm(h2) → h1, h2, n2·w3ᵀ, r + n2·w3ᵀ; then the
// long row's norm read by wo.
func normTailGraph(g *graph.Graph, N, K, NL, KL, NO int, ms []int) ([]graph.Value, error) {
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
	return outs, g.Output(outs...)
}

// normTailInputs draws normTailGraph's inputs.
func normTailInputs(N, K, NL, KL int, ms []int) func(rng *rand.Rand) []graph.Tensor {
	return func(rng *rand.Rand) []graph.Tensor {
		in := []graph.Tensor{normalInput(N)(rng), normalInput(N)(rng)}
		for _, m := range ms {
			in = append(in, normalInput(m, K)(rng), normalInput(m, N)(rng))
		}
		return append(in, normalInput(1, KL)(rng), normalInput(1, NL)(rng), normalInput(NL)(rng))
	}
}

// compileBoth compiles g twice, with *flag true and then false (restored after the test).
func compileBoth(t *testing.T, b *Backend, g *graph.Graph, wm backend.WeightMap, flag *bool) [2]backend.Program {
	t.Helper()
	t.Cleanup(saved(flag))
	var progs [2]backend.Program
	for i, on := range []bool{true, false} {
		*flag = on
		prog, err := b.Compile(g, wm)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { prog.Release() })
		progs[i] = prog
	}
	return progs
}

// sameRuns runs both programs on the same fresh inputs, runs times, and requires the same floats
// from both (outs: g's outputs, for the messages).
func sameRuns(t *testing.T, g *graph.Graph, outs []graph.Value, progs [2]backend.Program, rng *rand.Rand, runs int, inputs func(rng *rand.Rand) []graph.Tensor) {
	t.Helper()
	for run := range runs {
		in := inputs(rng)
		var res [2][]graph.Tensor
		for i, prog := range progs {
			out, err := prog.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			res[i] = out
		}
		for o := range res[0] {
			a, p := res[0][o].F32, res[1][o].F32
			for j := range p {
				if math.Float32bits(a[j]) != math.Float32bits(p[j]) {
					t.Fatalf("run %d, output %d (%s) element %d: %g with the tail, %g without", run, o, g.Nodes[outs[o]].Label, j, a[j], p[j])
				}
			}
		}
	}
}

// a8NormTailExpected says whether p's device takes the bindings of an int8-activation norm tail
// on an int8 or int4 symmetric weight at 8 rows a workgroup.
func a8NormTailExpected(p *program) bool {
	return p.b.tune.GEMVInt8 && 7+2 <= p.b.dev.Limits().MaxStorageBuffersPerShaderStage
}

// tailBackend is the tail tests' backend: DefaultTuning's launch with int8 activations on
// poisoned arenas (every int8-activation GEMV at rows a workgroup; 0: DefaultTuning's), the
// norms' blocks made by pre-passes where no tail writes them.
func tailBackend(t *testing.T, rows int) *Backend {
	poisoned(t)
	t.Cleanup(saved(&a8NormPrepass))
	a8NormPrepass = true
	tu := DefaultTuning
	tu.GEMVInt8Rows = rows
	b := newBackend(t, Options{Int8Activations: true, Tuning: &tu})
	if !b.feat.dot4 {
		t.Skipf("no packed_4x8_integer_dot_product (notes %q)", b.Caps().Notes)
	}
	return b
}
