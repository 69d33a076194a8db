//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall/js"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// poisoned runs the rest of a test with NaN-filled arenas.
func poisoned(t *testing.T) {
	poisonArena = true
	t.Cleanup(func() { poisonArena = false })
}

// graphTolerance is the suite's default for f32 products; with f16 products it is
// f16OpTolerance, or f16BlockTolerance for the composite blocks.
func graphTolerance(b *Backend, block bool) float64 {
	switch {
	case !b.ComputeF16():
		return 0
	case block:
		return f16BlockTolerance
	}
	return f16OpTolerance
}

// f16OpTolerance bounds a single Linear with products in f16: x (and float weights) and each
// product round to f16, three roundings of 2⁻¹¹, random-signed over K terms, so an element is
// off by σ ≈ √3·2⁻¹¹ ≈ 8.5e-4 of the output's RMS (the suite measures against |want| + RMS).
// 4e-3 is 4.7σ. Measured on Firefox ESR (lavapipe, shader-f16), 12 seeds × 7 formats: worst
// 2.4e-3. The other ops do not use f16 (worst 1.4e-6, RoPE).
const f16OpTolerance = 4e-3

// f16BlockTolerance bounds the encoder and decoder blocks with f16 products. No bound follows
// from the Linears' σ: the blocks amplify absolute errors (the encoder's tanh over mean-pooled
// activations of RMS ~24 passes them into outputs of scale 1; the decoder's attention logits
// and SwiGLU's product of two Linears likewise), and the amplification depends on the draw.
// Measured on Firefox ESR, 12 seeds × 6 blocks: median 3e-3 to 1e-2, worst 2.7e-2; one run in
// about a hundred reached 9.8e-2. At 0.15 the blocks still catch what breaks a block (a wrong
// layout, mask or unwritten output is off by O(1)); TestGraphConformance in Chromium holds
// them to 2e-4 with f32 products.
const f16BlockTolerance = 0.15

// f16Categories are the suite's case prefixes, each run at its own tolerance with f16 products
// ("state/" selects backendtest.RunStates).
var f16Categories = []string{"unary/", "binary/", "norm/", "softmax/", "linear/", "gather/", "matmul/", "layout/", "pool/", "rope/", "block/", "state/"}

func TestGraphConformance(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{})
	if !b.ComputeF16() {
		backendtest.RunGraphs(t, b, backendtest.GraphOptions{})
		return
	}
	for _, c := range backendtest.GraphCases(rand.New(rand.NewPCG(1, 1)), nil) {
		if !slices.ContainsFunc(f16Categories, func(p string) bool { return strings.HasPrefix(c.Name, p) }) {
			t.Errorf("case %s is in no f16 category: add its prefix to f16Categories", c.Name)
		}
	}
	for _, only := range f16Categories {
		backendtest.RunGraphs(t, b, backendtest.GraphOptions{Tolerance: graphTolerance(b, only == "block/"), Only: only})
	}
}

// localCase is a graph of this file's own, checked against the cpu like the suite's cases.
func checkLocal(t *testing.T, b *Backend, name string, build func(g *graph.Graph, w map[string]*quant.Tensor) error, inputs func(rng *rand.Rand) []graph.Tensor) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	g := graph.New(name)
	ws := map[string]*quant.Tensor{}
	if err := build(g, ws); err != nil {
		t.Fatal(err)
	}
	c := backendtest.GraphCase{Name: name, Graph: g, Weights: ws, Inputs: inputs}
	if err := backendtest.CheckGraph(b, b, cpu.New(), c, rng, graphTolerance(b, false)); err != nil {
		t.Error(err)
	}
}

func quantized(t *testing.T, name string, rng *rand.Rand, n, k int, f quant.Format) *quant.Tensor {
	t.Helper()
	vals := backendtest.RandomWeights(rng, n, k)
	for i := range vals {
		vals[i] *= 10
	}
	q, err := quant.Quantize(name, vals, n, k, f, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func normalInput(shape ...int) func(rng *rand.Rand) graph.Tensor {
	return func(rng *rand.Rand) graph.Tensor {
		v := make([]float32, graph.Shape(shape).Size())
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return graph.F32Tensor(v, shape...)
	}
}

// TestGraphSplitWeights caps bindings at 4 KiB so Linear and Gather read weights split into
// row chunks (one dispatch per chunk), and runs Linear at m = 1 and 3 (the GEMV kernels, which
// the suite's cases, all m ≥ 6, do not reach) as well as m = 5. Sizes keep every activation
// under the cap.
func TestGraphSplitWeights(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{MaxBindingSize: 4096})
	rng := rand.New(rand.NewPCG(5, 6))
	for _, f := range []quant.Format{
		{Bits: 32}, {Bits: 16},
		{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16},
		{Bits: 4, GroupSize: 32},
		{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 16},
	} {
		t.Run(f.String(), func(t *testing.T) {
			const N, K, V, D = 200, 150, 200, 70
			w := quantized(t, "w", rng, N, K, f)
			table := quantized(t, "table", rng, V, D, f)
			ins := func(rng *rand.Rand) []graph.Tensor {
				ids := make([]int32, 14)
				for i := range ids {
					ids[i] = int32(rng.IntN(V+2)) - 1 // -1 and V are out of range
				}
				return []graph.Tensor{normalInput(1, K)(rng), normalInput(3, K)(rng), normalInput(5, K)(rng), graph.I32Tensor(ids, 2, 7)}
			}
			checkLocal(t, b, "split "+f.String(), func(g *graph.Graph, ws map[string]*quant.Tensor) error {
				ws["w"], ws["table"] = w, table
				var outs []graph.Value
				for _, m := range []int{1, 3, 5} {
					x := g.Input(fmt.Sprint("x", m), graph.Float32, m, K)
					outs = append(outs, g.Linear(fmt.Sprint("fc", m), x, g.Weight("w", N, K), graph.None))
				}
				ids := g.Input("ids", graph.Int32, 2, 7)
				outs = append(outs, g.Gather("embed", g.Weight("table", V, D), ids))
				return g.Output(outs...)
			}, ins)
			for _, q := range []*quant.Tensor{w, table} {
				if n := len(chunksOf(t, b, q)); n < 2 {
					t.Errorf("%s %v: %d chunks under a 4 KiB cap, want several", q.Name, f, n)
				}
			}
		})
	}
}

// chunksOf uploads q and returns its chunks.
func chunksOf(t *testing.T, b *Backend, q *quant.Tensor) []*wchunk {
	w, err := b.Upload(q)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Release()
	return w.(*weight).chunks
}

// TestGraphViews: float weights read as values in another shape than they are held, a gather
// from an activation table, an output that is an input, a constant and an int32 slice.
func TestGraphViews(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(9, 10))
	bias := quantized(t, "bias", rng, 2, 35, quant.Format{Bits: 16}) // held [2, 35], read [70]
	checkLocal(t, b, "views", func(g *graph.Graph, ws map[string]*quant.Tensor) error {
		ws["bias"] = bias
		x := g.Input("x", graph.Float32, 5, 70)
		ids := g.Input("ids", graph.Int32, 2, 3)
		s := g.Add("s", x, g.Weight("bias", 70))
		c := g.Const("c", []float32{1, 2, 3, 4, 5}, 5, 1)
		rows := g.Gather("rows", g.Mul("sc", s, c), ids)
		idSlice := g.Slice("ids1", ids, 1, 1, 3)
		return g.Output(rows, x, c, idSlice, g.Reshape("flat", rows, 6, 70))
	}, func(rng *rand.Rand) []graph.Tensor {
		return []graph.Tensor{normalInput(5, 70)(rng), graph.I32Tensor([]int32{4, 0, -2, 2, 5, 1}, 2, 3)}
	})
}

// TestGraphPoisonCatchesUnwritten drops the last dispatch of a compiled program: the suite must
// then see NaN, not a plausible stale value, or the poisoned arena proves nothing.
func TestGraphPoisonCatchesUnwritten(t *testing.T) {
	poisoned(t)
	b := newBackend(t, Options{})
	g := graph.New("unwritten")
	x := g.Input("x", graph.Float32, 4, 9)
	// x is an output too, so y's bytes are no one else's: nothing but the poison is there.
	if err := g.Output(g.Tanh("y", g.ReLU("r", x)), x); err != nil {
		t.Fatal(err)
	}
	prog, err := b.Compile(g, backend.WeightMap{})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	p := prog.(*program)
	p.steps = p.steps[:len(p.steps)-1]
	p.forward = webgpu.NewDispatches(dispatchList(p.steps))
	out, err := p.Run(context.Background(), []graph.Tensor{normalInput(4, 9)(rand.New(rand.NewPCG(1, 1)))})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range out[0].F32 {
		if !math.IsNaN(float64(v)) {
			t.Fatalf("y[%d] = %g with its dispatch dropped: the arena was not poisoned", i, v)
		}
	}
}

// countCalls wraps WebGPU methods on their prototypes with counters, until the test ends. The
// wrappers are JavaScript: they count every call, whichever Go path makes it.
func countCalls(t *testing.T) js.Value {
	c := js.Global().Call("eval", `(() => {
		const c = {};
		const restore = [];
		const wrap = (proto, name) => {
			const f = proto[name];
			c[name] = 0;
			proto[name] = function (...args) { c[name]++; return f.apply(this, args); };
			restore.push(() => { proto[name] = f; });
		};
		wrap(GPUQueue.prototype, "submit");
		wrap(GPUQueue.prototype, "writeBuffer");
		wrap(GPUBuffer.prototype, "mapAsync");
		wrap(GPUDevice.prototype, "createCommandEncoder");
		c.restore = () => restore.forEach((r) => r());
		c.reset = () => { for (const k of ["submit", "writeBuffer", "mapAsync", "createCommandEncoder"]) c[k] = 0; };
		return c;
	})()`)
	t.Cleanup(func() { c.Call("restore") })
	return c
}

// TestGraphRunOneSubmit: a forward of the encoder block is one command encoder (the first run
// records one more: the next run's, ahead), one submit and one mapAsync, whatever the number of
// ops, and writes nothing but its two inputs.
func TestGraphRunOneSubmit(t *testing.T) {
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	var c backendtest.GraphCase
	for _, gc := range backendtest.GraphCases(rng, func(f quant.Format) bool { return f == quant.Q4 }) {
		if gc.Name == "block/encoder-"+quant.Q4.String() {
			c = gc
		}
	}
	if c.Graph == nil {
		t.Fatal("the suite has no q4 encoder block")
	}
	ws := backend.WeightMap{}
	for name, q := range c.Weights {
		w, err := b.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Release()
		ws[name] = w
	}
	prog, err := b.Compile(c.Graph, ws)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	calls := countCalls(t)
	const runs = 3
	for range runs {
		if _, err := prog.Run(context.Background(), c.Inputs(rng)); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"createCommandEncoder": runs + 1, "submit": runs, "mapAsync": runs, "writeBuffer": runs * len(c.Graph.Inputs)}
	for name, n := range want {
		if got := calls.Get(name).Int(); got != n {
			t.Errorf("%d runs of %d dispatches made %d %s calls, want %d", runs, len(prog.(*program).steps), got, name, n)
		}
	}
	t.Logf("%d runs: %d steps each, %d submits, %d mapAsync", runs, len(prog.(*program).steps), calls.Get("submit").Int(), calls.Get("mapAsync").Int())
}

// TestGraphRowWorkgroups runs the row reductions (norms, softmax, the encoder block's) at the
// workgroup sizes rowWorkgroup picks on hardware, whatever adapter the test has: the CI's
// SwiftShader would otherwise only ever run its own size.
func TestGraphRowWorkgroups(t *testing.T) {
	poisoned(t)
	defer func(wg int) { softwareRowWG = wg }(softwareRowWG)
	for _, wg := range []int{32, 256} {
		softwareRowWG = wg
		b := newBackend(t, Options{})
		if !b.caps.Software {
			t.Skip("a hardware adapter runs these sizes in TestGraphConformance")
		}
		for _, only := range []string{"norm/", "softmax/", "block/encoder-f32"} {
			t.Run(fmt.Sprintf("wg%d/%s", wg, only), func(t *testing.T) {
				backendtest.RunGraphs(t, b, backendtest.GraphOptions{Tolerance: graphTolerance(b, only == "block/encoder-f32"), Only: only})
			})
		}
	}
}

// TestGraphSplitMatMul runs the suite's batched products and decoder block with every product
// split over K (ops_matmul.wgsl's AB_SPLIT and ABT_SPLIT, what GPUs run for long K), which the
// adapter class rule keeps from SwiftShader otherwise: ragged output blocks (N 9, blocks of 32
// and 8) and K not a multiple of the groups splitting it (17 over 8 and 32) included.
func TestGraphSplitMatMul(t *testing.T) {
	poisoned(t)
	forceSplitMatMul = true
	t.Cleanup(func() { forceSplitMatMul, splitWG, splitWGT = false, 1024, 256 })
	b := newBackend(t, Options{})
	// The default workgroups (at most the device's: 256 on SwiftShader) and another (the kernels
	// take any multiple of 32).
	for _, wg := range []int{1024, 64} {
		splitWG, splitWGT = wg, wg
		for _, only := range []string{"matmul/", "block/decoder-"} {
			opt := backendtest.GraphOptions{Only: only}
			if b.ComputeF16() {
				opt.Tolerance = graphTolerance(b, strings.HasPrefix(only, "block/"))
			}
			backendtest.RunGraphs(t, b, opt)
		}
		checkStridedB(t, b)
	}
}

// TestGraphStridedB: attention's products read a cache [keep, KV, Dh] transposed to
// [KV, keep, Dh] in place, through strides, instead of a copy (fuse.go).
func TestGraphStridedB(t *testing.T) {
	poisoned(t)
	checkStridedB(t, newBackend(t, Options{}))
}

// checkStridedB checks q·kᵀ and p·v over a transposed cache of 70 rows (K 70 and 16: both split
// and not, where the adapter splits) against the cpu.
func checkStridedB(t *testing.T, b *Backend) {
	checkLocal(t, b, "strided b", func(g *graph.Graph, _ map[string]*quant.Tensor) error {
		q := g.Input("q", graph.Float32, 3, 2, 16)
		kv := g.Input("kv", graph.Float32, 70, 3, 16)
		p := g.Input("p", graph.Float32, 3, 2, 70)
		scores := g.MatMul("qk", q, g.Transpose("kt", kv, 1, 0, 2), true)
		mix := g.MatMul("pv", p, g.Transpose("vt", kv, 1, 0, 2), false)
		return g.Output(scores, mix)
	}, func(rng *rand.Rand) []graph.Tensor {
		return []graph.Tensor{normalInput(3, 2, 16)(rng), normalInput(70, 3, 16)(rng), normalInput(3, 2, 70)(rng)}
	})
}

// uploadAll uploads qs to b, released when the test ends.
func uploadAll(tb testing.TB, b backend.Backend, qs map[string]*quant.Tensor) backend.WeightMap {
	ws := backend.WeightMap{}
	for name, q := range qs {
		w, err := b.Upload(q)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { w.Release() })
		ws[name] = w
	}
	return ws
}

// fusionFormats are the weight formats of the GEMV fusion tests: float, symmetric int4 with f32
// scales, asymmetric int8 with f16 scales (the most bindings a weight takes), and int2, whose
// K = 160 pads to 192 codes: x is copied, so nothing fuses or groups.
var fusionFormats = []quant.Format{
	{Bits: 32},
	{Bits: 4, GroupSize: 32},
	{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16},
	{Bits: 2, GroupSize: 32},
}

// bothGEMVKernels are a backend of the adapter's own tuning and one of the other adapter
// class's (DefaultTuning on SwiftShader), so both GEMV kernels run whatever the adapter.
func bothGEMVKernels(t *testing.T, opt Options) []*Backend {
	own := newBackend(t, opt)
	other := SoftwareTuning
	if own.caps.Software {
		other = DefaultTuning
	}
	opt.Tuning = &other
	return []*Backend{own, newBackend(t, opt)}
}

// TestGraphFusions checks fuse.go's dispatches that do two ops' work against the cpu, on
// poisoned arenas: an RMS norm inside the two Linears that read it (gemv_hw.wgsl's Norm, with
// and without a residual), a Linear with the residual Add after it (the GEMV kernels' Residual, both
// operand orders, m = 1 and 3, N not a multiple of the rows a workgroup sums, weights split into
// chunks under a 4 KiB binding cap; m = 5 and a padded K stay unfused), SiLU(a)·b with b
// broadcast and on either side, and q·kᵀ with its scale (B in place and not). It runs both
// adapter classes' GEMV kernels whatever the adapter.
func TestGraphFusions(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&gemvNormF32))
	gemvNormF32 = true // the norm inside gemv_hw.wgsl, off by default with f32 activations
	for bi, b := range bothGEMVKernels(t, Options{MaxBindingSize: 4096}) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, f := range fusionFormats {
			t.Run(fmt.Sprintf("tuning%d/%v", bi, f), func(t *testing.T) {
				const N, K = 200, 160
				w := quantized(t, "w", rng, N, K, f)
				ms := []int{1, 3, 5}
				var g *graph.Graph
				checkLocal(t, b, "fusions "+f.String(), func(gr *graph.Graph, ws map[string]*quant.Tensor) error {
					g, ws["w"] = gr, w
					var outs []graph.Value
					gain := g.Input("gain", graph.Float32, K)
					for j, m := range ms {
						x := g.Input(fmt.Sprint("x", m), graph.Float32, m, K)
						r := g.Input(fmt.Sprint("r", m), graph.Float32, m, N)
						lin := g.Linear(fmt.Sprint("fc", m), x, g.Weight("w", N, K), graph.None)
						if j%2 == 0 {
							outs = append(outs, g.Add(fmt.Sprint("res", m), r, lin))
						} else {
							outs = append(outs, g.Add(fmt.Sprint("res", m), lin, r))
						}
						// A norm read by two Linears, one of them with a residual too.
						h := g.RMSNorm(fmt.Sprint("norm", m), g.Input(fmt.Sprint("xn", m), graph.Float32, m, K), gain, 1e-5)
						outs = append(outs, g.Linear(fmt.Sprint("q", m), h, g.Weight("w", N, K), graph.None),
							g.Add(fmt.Sprint("kres", m), r, g.Linear(fmt.Sprint("k", m), h, g.Weight("w", N, K), graph.None)))
					}
					a := g.Input("a", graph.Float32, 3, 37)
					bb := g.Input("b", graph.Float32, 37)
					outs = append(outs, g.Mul("swiglu", g.SiLU("silu", a), bb), g.Mul("swiglu2", bb, g.SiLU("silu2", g.Scale("a2", a, -3))))
					q := g.Input("q", graph.Float32, 2, 3, 8) // small enough for the binding cap
					kv := g.Input("kv", graph.Float32, 30, 2, 8)
					kd := g.Input("k", graph.Float32, 2, 30, 8)
					outs = append(outs, g.Scale("s1", g.MatMul("qk1", q, g.Transpose("kt", kv, 1, 0, 2), true), 0.25),
						g.Scale("s2", g.MatMul("qk2", q, kd, true), -0.5))
					return g.Output(outs...)
				}, func(rng *rand.Rand) []graph.Tensor {
					in := []graph.Tensor{normalInput(K)(rng)}
					for _, m := range ms {
						in = append(in, normalInput(m, K)(rng), normalInput(m, N)(rng), normalInput(m, K)(rng))
					}
					return append(in, normalInput(3, 37)(rng), normalInput(37)(rng),
						normalInput(2, 3, 8)(rng), normalInput(30, 2, 8)(rng), normalInput(2, 30, 8)(rng))
				})
				// What fused: the residuals only where the GEMV reads x as it is.
				wb, err := b.Upload(w)
				if err != nil {
					t.Fatal(err)
				}
				kp := wb.(*weight).paddedK()
				wb.Release()
				lim := testLimits
				lim.gemvNorm = b.tune.GEMVKernel == shaders.GEMVHW
				p, err := planGraph(g, func(int) int { return kp }, lim)
				if err != nil {
					t.Fatal(err)
				}
				wantRes, wantNormed := 4, 4
				if kp != K {
					wantRes, wantNormed = 0, 0
				}
				if !lim.gemvNorm {
					wantNormed = 0 // gemv.wgsl has no norm prologue
				}
				if len(p.residuals) != wantRes || len(p.normed) != wantNormed || len(p.siluMuls) != 2 || len(p.scaled) != 2 {
					t.Errorf("fused %d residual Linears, %d normalizing, %d SiLU products, %d scaled products; want %d, %d, 2, 2",
						len(p.residuals), len(p.normed), len(p.siluMuls), len(p.scaled), wantRes, wantNormed)
				}
			})
		}
	}
}

// TestGraphStatesInPlace: q·kᵀ (scaled) and p·v read a KV cache from the state's buffer in
// each storage format, with no state read (fuse.go's findStatesInPlace): rows of 3 heads × 5
// (an odd count of f16 halves, so rows start mid-word; int8 rows not whole words), keys also
// through a view (one KV head), split products and not, against the cpu over a prefill and
// decode steps that share the states, on poisoned arenas; values also read by a product that
// normalizes its softmax as it reads it (fuse.go's findSoftmaxProducts); writes paired into one
// dispatch (fuse.go's findStateWritePairs), one of them rotating its x by tables as it reads it,
// as does a product its a (fuse.go's findRotatedReads).
func TestGraphStatesInPlace(t *testing.T) {
	poisoned(t)
	noAttention(t)
	forceSoftmaxProducts = true
	t.Cleanup(func() { forceSplitMatMul, forceSoftmaxProducts = false, false })
	b := newBackend(t, Options{})
	ref := cpu.New()
	for _, split := range []bool{false, true} {
		for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
			t.Run(fmt.Sprintf("split=%v/%s", split, storage), func(t *testing.T) {
				forceSplitMatMul = split
				gs := inPlaceGraphs(t, storage)
				if n := len(findStateWritePairs(gs[0], neededNodes(gs[0]), nil)); n != 2 {
					t.Fatalf("%d state writes paired, want 2", n)
				}
				got, want := openStates(t, b, b, gs), openStates(t, ref, ref, gs)
				for _, p := range got {
					if pl := p.(*program).plan; len(pl.statesInPlace) != 5 || len(pl.softmaxes) != 2 || len(pl.rotatedReads) != 2 {
						t.Fatalf("%d states read in place, %d softmax products, %d rotated reads; want 5, 2, 2", len(pl.statesInPlace), len(pl.softmaxes), len(pl.rotatedReads))
					}
				}
				rng := rand.New(rand.NewPCG(11, 12))
				for step, at := range []struct{ graph, pos int }{{0, 0}, {1, 4}, {1, 5}, {0, 6}, {1, 10}, {1, 15}, {1, 30}} {
					g := gs[at.graph]
					in := stepInputs(g, at.pos, rng, func(n *graph.Node) (graph.Tensor, bool) {
						if n.Label != "mask" {
							return graph.Tensor{}, false
						}
						return stateMask(rng, n.Shape[0], n.Shape[1]), true
					})
					compareStep(t, b, got[at.graph], want[at.graph], in, fmt.Sprintf("step %d (%s at %d)", step, g.Name, at.pos))
				}
			})
		}
	}
}

// stepInputs are the inputs of a step of state graph g at position pos: pos for its int32 input,
// special's tensor where it has one (ok), normal draws for the rest.
func stepInputs(g *graph.Graph, pos int, rng *rand.Rand, special func(n *graph.Node) (t graph.Tensor, ok bool)) []graph.Tensor {
	var in []graph.Tensor
	for _, v := range g.Inputs {
		n := g.Node(v)
		if n.DType == graph.Int32 {
			in = append(in, graph.I32Tensor([]int32{int32(pos)}, 1))
		} else if t, ok := special(n); ok {
			in = append(in, t)
		} else {
			in = append(in, normalInput(n.Shape...)(rng))
		}
	}
	return in
}

// compareStep runs in on got (b's) and want (the cpu's) and compares every output.
func compareStep(t *testing.T, b *Backend, got, want backend.Program, in []graph.Tensor, what string) {
	t.Helper()
	w, err := want.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	o, err := got.Run(context.Background(), in)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for j := range w {
		if err := backendtest.CompareTensors(w[j], o[j], max(graphTolerance(b, false), 2e-4)); err != nil {
			t.Errorf("%s, output %d: %v", what, j, err)
		}
	}
}

// stateMask is a mask of rows×keep for TestGraphStatesInPlace: even rows keep a prefix (the keys
// past it, whole chunks of a key-split product, keep nothing), odd rows a third of the keys at
// random, the last row none.
func stateMask(rng *rand.Rand, rows, keep int) graph.Tensor {
	m := make([]float32, rows*keep)
	for r := range rows - 1 {
		for c := range keep {
			if r%2 == 0 && c < 3+5*r || r%2 == 1 && rng.IntN(3) == 0 {
				m[r*keep+c] = 1
			}
		}
	}
	return graph.F32Tensor(m, rows, keep)
}

// inPlaceGraphs are TestGraphStatesInPlace's prefill (4 rows) and decode (1 row) graphs over
// states of the given storage: keep 16 of 40 rows.
func inPlaceGraphs(t *testing.T, storage graph.StateFormat) []*graph.Graph {
	const S, KV, G, Dh, keep = 40, 3, 2, 5, 16
	var gs []*graph.Graph
	for _, rows := range []int{4, 1} {
		g := graph.New(fmt.Sprintf("in place/%s/rows%d", storage, rows))
		k := g.Input("k", graph.Float32, rows, KV, Dh)
		v := g.Input("v", graph.Float32, rows, KV, Dh)
		w := g.Input("w", graph.Float32, rows, 1, Dh)
		pos := g.Input("pos", graph.Int32, 1)
		q := g.Input("q", graph.Float32, KV, G*rows, Dh)
		p := g.Input("p", graph.Float32, KV, G*rows, keep)
		ks := g.StateWrite("k write", g.State("k", storage, S, KV, Dh), k, pos, keep)
		vs := g.StateWrite("v write", g.State("v", storage, S, KV, Dh), v, pos, keep)
		ws := g.StateWrite("w write", g.State("w", storage, S, 1, Dh), w, pos, keep)
		scores := g.Scale("scale", g.MatMul("qk", q, g.Transpose("kt", ks, 1, 0, 2), true), 0.4)
		mix := g.MatMul("pv", p, g.Transpose("vt", vs, 1, 0, 2), false)
		one := g.MatMul("qw", g.Reshape("q1", q, 1, KV*G*rows, Dh), g.Transpose("wt", ws, 1, 0, 2), true) // [1, keep, Dh]: a view
		soft := g.MatMul("sv", g.Softmax("soft", p, graph.None), g.Transpose("vt2", vs, 1, 0, 2), false)
		// Masked (stateMask's rows, one keeping nothing), scaled by a Scale after it.
		mask := g.Input("mask", graph.Float32, G*rows, keep)
		masked := g.Scale("half", g.MatMul("mv", g.Softmax("msoft", g.Input("pm", graph.Float32, KV, G*rows, keep), mask), g.Transpose("vt3", vs, 1, 0, 2), false), 0.5)
		// Rows of 3×6 rotated by tables as the cache write reads them, paired with another.
		cos, sin := g.Input("cos", graph.Float32, rows, 1, 3, 1), g.Input("sin", graph.Float32, rows, 1, 3, 1)
		rot := tableRotate(g, g.Input("r", graph.Float32, rows, KV, 6), cos, sin)
		u := g.Input("u", graph.Float32, rows, KV, 6)
		rs := g.StateWrite("r write", g.State("r", storage, S, KV, 6), rot, pos, keep)
		us := g.StateWrite("u write", g.State("u", storage, S, KV, 6), u, pos, keep)
		q6 := g.Input("q6", graph.Float32, KV, G*rows, 6)
		// A query rotated as q·kᵀ reads it, through a view.
		rq := g.Reshape("rq", tableRotate(g, g.Input("qraw", graph.Float32, rows, KV*G, 6), cos, sin), KV, G*rows, 6)
		qr := g.MatMul("qr", rq, g.Transpose("rt", rs, 1, 0, 2), true)
		qu := g.MatMul("qu", q6, g.Transpose("ut", us, 1, 0, 2), true)
		if err := g.Output(scores, mix, one, soft, masked, qr, qu); err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// openStates allocates gs's states on a and compiles gs on c against them, all released when
// the test ends.
func openStates(t *testing.T, c backend.Compiler, a backend.StateAllocator, gs []*graph.Graph) []backend.Program {
	return openStatesWith(t, c, a, gs, backend.WeightMap{})
}

// openStatesWith is openStates with the graphs' weights ws.
func openStatesWith(t *testing.T, c backend.Compiler, a backend.StateAllocator, gs []*graph.Graph, ws backend.WeightMap) []backend.Program {
	states := backend.StateMap{}
	for _, sp := range gs[0].States() {
		st, err := a.NewState(sp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Release() })
		states[sp.Name] = st
	}
	var progs []backend.Program
	for _, g := range gs {
		p, err := c.Compile(g, backend.WithStates(ws, states))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Release() })
		progs = append(progs, p)
	}
	return progs
}

// TestGraphLinearGroups checks Linears of one x run as one GEMV of several weights (fuse.go's
// findLinearGroups, gemv_hw.wgsl MULTI) against the cpu, on poisoned arenas: three weights of
// 64, 40 and 20 rows (the last ragged) on a plain x and on an RMS norm's input, m = 1 and 3, in
// formats that bind one to three buffers a weight (as many weights a dispatch as the device's
// storage buffers allow) and one whose x is padded (no group). Both adapter classes' GEMV kernels run; only
// gemv_hw.wgsl groups, and where it runs some dispatch must read several weights; then again
// with bindings capped at 4 KiB, where the larger weights are split into chunks and run alone.
func TestGraphLinearGroups(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&gemvNormF32))
	gemvNormF32 = true // grouped GEMVs with the norm inside, off by default with f32 activations
	rng := rand.New(rand.NewPCG(13, 14))
	const K = 160
	ns := []int{64, 40, 20}
	// The second pair caps bindings at 4 KiB: weights of more rows are split into chunks and run
	// alone, the others may still group.
	backends := append(bothGEMVKernels(t, Options{}), bothGEMVKernels(t, Options{MaxBindingSize: 4096})...)
	for bi, b := range backends {
		for _, f := range fusionFormats {
			t.Run(fmt.Sprintf("tuning%d/%v", bi, f), func(t *testing.T) {
				ws := map[string]*quant.Tensor{}
				for j, n := range ns {
					ws[fmt.Sprint("w", j)] = quantized(t, fmt.Sprint("w", j), rng, n, K, f)
				}
				build := func(g *graph.Graph) error {
					var outs []graph.Value
					gain := g.Input("gain", graph.Float32, K)
					for _, m := range []int{1, 3} {
						x := g.Input(fmt.Sprint("x", m), graph.Float32, m, K)
						h := g.RMSNorm(fmt.Sprint("norm", m), g.Input(fmt.Sprint("xn", m), graph.Float32, m, K), gain, 1e-5)
						for _, in := range []graph.Value{x, h} {
							for j, n := range ns {
								outs = append(outs, g.Linear(fmt.Sprintf("lin%d/%d", in, j), in, g.Weight(fmt.Sprint("w", j), n, K), graph.None))
							}
						}
					}
					return g.Output(outs...)
				}
				var g *graph.Graph
				checkLocal(t, b, "groups "+f.String(), func(gr *graph.Graph, w map[string]*quant.Tensor) error {
					g = gr
					maps.Copy(w, ws)
					return build(gr)
				}, func(rng *rand.Rand) []graph.Tensor {
					in := []graph.Tensor{normalInput(K)(rng)}
					for _, m := range []int{1, 3} {
						in = append(in, normalInput(m, K)(rng), normalInput(m, K)(rng))
					}
					return in
				})
				// Which dispatches read several weights.
				prog, err := b.Compile(g, uploadAll(t, b, ws))
				if err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
				multi := 0
				for _, s := range prog.(*program).steps {
					if s.mm != nil && s.mm.key.Weights > 1 {
						multi++
					}
				}
				hw := b.tune.GEMVKernel == shaders.GEMVHW
				if want := hw && f.Bits != 2; bi < 2 && (multi > 0) != want {
					t.Errorf("%d dispatches read several weights; want some: %v", multi, want)
				}
				t.Logf("12 Linears: %d dispatches read several weights (%d storage buffers a stage)", multi, b.dev.Limits().MaxStorageBuffersPerShaderStage)
			})
		}
	}
}

// TestGraphSoftmaxProducts checks a·b that normalizes a softmax's input as it reads it
// (fuse.go's findSoftmaxProducts, ops_matmul.wgsl SOFTMAX) against the cpu, on poisoned arenas:
// a masked softmax over 70 keys (K past one chunk of the split kernel's 256 and not a multiple
// of it, rows with a few keys kept and one with none) broadcast over heads, through a view, with
// b a cache read in place through strides; and a plain softmax with b as it is; split and not.
func TestGraphSoftmaxProducts(t *testing.T) {
	poisoned(t)
	noAttention(t)
	forceSoftmaxProducts = true
	t.Cleanup(func() { forceSplitMatMul, forceSoftmaxProducts = false, false })
	t.Cleanup(func() { splitWG = 1024 })
	b := newBackend(t, Options{})
	for _, split := range []bool{false, true} {
		for _, keys := range []int{70, 300} {
			forceSplitMatMul = split
			splitWG = map[bool]int{false: 1024, true: 128}[keys == 300] // chunks of K of either size
			var g *graph.Graph
			checkLocal(t, b, fmt.Sprintf("softmax products split=%v keys=%d", split, keys), func(gr *graph.Graph, _ map[string]*quant.Tensor) error {
				g = gr
				s := g.Input("s", graph.Float32, 3, 2, 4, keys)
				mask := g.Input("mask", graph.Float32, 4, keys)
				kv := g.Input("kv", graph.Float32, keys, 3, 16)
				p := g.Reshape("flat", g.Softmax("p", s, mask), 3, 8, keys)
				mix := g.MatMul("pv", p, g.Transpose("vt", kv, 1, 0, 2), false)
				// 130 outputs a row: past one of a key-split product's slices of 128.
				plain := g.MatMul("pw", g.Softmax("q", g.Input("s2", graph.Float32, 2, 3, keys), graph.None), g.Input("w", graph.Float32, 2, keys, 130), false)
				return g.Output(mix, plain)
			}, func(rng *rand.Rand) []graph.Tensor {
				m := make([]float32, 4*keys)
				for r := 0; r < 3; r++ { // row 3 keeps nothing
					for c := range keys {
						if c <= 7*r+3 || rng.IntN(3) == 0 {
							m[r*keys+c] = 1
						}
					}
				}
				return []graph.Tensor{normalInput(3, 2, 4, keys)(rng), graph.F32Tensor(m, 4, keys), normalInput(keys, 3, 16)(rng),
					normalInput(2, 3, keys)(rng), normalInput(2, keys, 130)(rng)}
			})
			needed := neededNodes(g)
			if n := len(findSoftmaxProducts(g, needed, readers(g, needed))); n != 2 {
				t.Errorf("%d softmax products, want 2", n)
			}
		}
	}
}

// TestDecodeDispatches: a decode step of BenchmarkDecode's decoder (its tiny shape) compiles, with
// the kernels GPUs get, to 7 dispatches a layer (the q, k, v GEMV with the norm; the cache write
// of the rotated keys and the values; q·kᵀ rotating the query; p·v with the softmax; the o GEMV
// with the residual; the SwiGLU GEMV with the norm, SiLU(gate)·up; the down GEMV with the
// residual) and 3 more (the token's row, the last row, the head with the output norm). Without
// the SwiGLU GEMV (fuseSwiGLU false) also 7: the gate, up GEMV with the norm, the down GEMV
// forming SiLU·mul. With the q, k, v GEMV writing the caches (fuseKVWrite, where the device
// has the storage buffers: kvWriteExpected) 6: no cache write. With int8 activations too:
// gemv_a8.wgsl then runs the GEMVs. With f32 activations and the norms not inside the GEMVs
// (gemvNormF32 false) each norm is a dispatch, but, with fuseNormTail (where the device has the
// storage buffers: normTailExpected), those the o and down GEMVs write (all but the first
// layer's and the head's). With int8 activations each norm's pre-pass is a dispatch, but with
// fuseA8NormTail not those whose blocks the o and down GEMVs write; and there (fuseA8XTail) the
// SwiGLU GEMV writes the down GEMV's blocks, which takes no dispatch either way.
func TestDecodeDispatches(t *testing.T) {
	t.Cleanup(saved(&forceSoftmaxProducts, &fuseSwiGLU, &fuseKVWrite, &gemvNormF32, &fuseNormTail, &fuseA8NormTail, &fuseA8XTail))
	forceSoftmaxProducts = true // SwiftShader is a software adapter
	for _, c := range []struct{ sw, kv bool }{{true, true}, {true, false}, {false, false}} {
		fuseSwiGLU, fuseKVWrite = c.sw, c.kv
		for _, a8 := range []bool{false, true} {
			for _, norm := range []string{"dispatch", "gemv", "tail"} {
				if a8 && norm == "gemv" {
					continue // int8 activations fuse the norm either way
				}
				gemvNormF32, fuseNormTail, fuseA8NormTail = norm == "gemv", !a8 && norm == "tail", a8 && norm == "tail"
				fuseA8XTail = fuseA8NormTail
				t.Run(fmt.Sprintf("swiglu=%v/kvwrite=%v/int8=%v/norm=%s", c.sw, c.kv, a8, norm), func(t *testing.T) { decodeDispatches(t, a8) })
			}
		}
	}
}

func decodeDispatches(t *testing.T, int8Activations bool) {
	tu := DefaultTuning
	be := newBackend(t, Options{Tuning: &tu, Int8Activations: int8Activations})
	s := llamaTiny
	ws, _ := decodeWeights(t, be, s)
	t.Cleanup(func() {
		for _, w := range ws {
			w.Release()
		}
	})
	g, err := s.c.Build(1, 128, s.cache, s.context, false)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := be.Compile(g, backend.WithStates(ws, newStates(t, be, g))) // kvwrite_js_test.go
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	ds := dispatchList(prog.(*program).steps)
	perLayer := 7
	if forcePVSplit {
		perLayer = 8 // p·v split over keys: its chunks, then their merge (TestGraphPVSplit)
	}
	if (&compiler{p: &program{b: be}}).attnKeys() >= 128 {
		perLayer = 6 // q·kᵀ, softmax and p·v as one dispatch (TestGraphAttention, forced or on hardware)
	}
	kvWrite := kvWriteExpected(prog.(*program)) // kvwrite_js_test.go
	if kvWrite {
		perLayer-- // the cache write inside the q, k, v GEMV (TestGraphKVWrite)
	}
	want := perLayer*s.c.Layers + 3
	// The norm inside the GEMVs that read it (with int8 activations, after its pre-pass).
	normFused := int8Activations || gemvNormF32
	tails := 0
	if !normFused && fuseNormTail && normTailExpected(prog.(*program)) || int8Activations && fuseA8NormTail && a8NormTailExpected(prog.(*program)) {
		tails = 2*s.c.Layers - 1 // every norm but the first layer's and the head's (of a slice), written by the GEMV before it
	}
	if int8Activations && a8NormPrepass || !normFused {
		// The norms' pre-passes (int8 activations), or the norms (f32): q, k, v's, the
		// feed-forward's, the head's.
		want += 2*s.c.Layers + 1 - tails
	}
	if got := len(prog.(*program).plan.normTails); got != tails {
		t.Errorf("%d norms written by the residual Linear's GEMV, want %d", got, tails)
	}
	if len(ds) != want {
		for _, d := range ds {
			t.Log(d.Pipeline.Label())
		}
		t.Errorf("%d dispatches, want %d", len(ds), want)
	}
	kernel := map[bool]shaders.Kernel{false: shaders.GEMVHW, true: shaders.GEMVA8}[int8Activations]
	var silu, group, swiglu, kv, xtail bool
	for k := range be.pipelines {
		xtail = xtail || k.XTail
		if k.Kernel == kernel {
			// The SwiGLU GEMV reads the norm after the o GEMV: with its sums where that writes them.
			swiglu = swiglu || k.SwiGLU && k.Norm == (normFused || tails > 0) && k.NormPart == (tails > 0 && !int8Activations)
			silu, group, kv = silu || k.SiLUX, group || k.Weights > 1, kv || k.KVWrite && k.Norm == normFused
		}
	}
	if want := int8Activations && fuseA8XTail && fuseSwiGLU; xtail != want {
		t.Errorf("a SwiGLU GEMV writing the down GEMV's blocks: %v, want %v", xtail, want)
	}
	if silu == fuseSwiGLU || !group || swiglu != fuseSwiGLU || kv != kvWrite {
		t.Errorf("%s pipelines (the norm inside: %v): SiLU·mul in the down GEMV %v, grouped Linears %v, SwiGLU GEMV %v, cache-writing GEMV %v; want %v, true, %v, %v", kernel, normFused, silu, group, swiglu, kv, !fuseSwiGLU, fuseSwiGLU, kvWrite)
	}
}

// TestGraphSiLULinears checks a GEMV that forms SiLU(a)·b as it loads x (fuse.go's
// findSiLULinears, gemv_hw.wgsl SILU_X) against the cpu, on poisoned arenas: m = 1 and 3, with
// a residual Add after it and without, in each fusion format; both adapter classes' GEMV
// kernels run, and only gemv_hw.wgsl fuses (not where x is padded).
func TestGraphSiLULinears(t *testing.T) {
	poisoned(t)
	rng := rand.New(rand.NewPCG(15, 16))
	const N, K = 72, 160
	for bi, b := range bothGEMVKernels(t, Options{}) {
		for _, f := range fusionFormats {
			t.Run(fmt.Sprintf("tuning%d/%v", bi, f), func(t *testing.T) {
				w := quantized(t, "w", rng, N, K, f)
				var g *graph.Graph
				checkLocal(t, b, "silu linears "+f.String(), func(gr *graph.Graph, ws map[string]*quant.Tensor) error {
					g, ws["w"] = gr, w
					var outs []graph.Value
					for _, m := range []int{1, 3} {
						a, u := g.Input(fmt.Sprint("a", m), graph.Float32, m, K), g.Input(fmt.Sprint("u", m), graph.Float32, m, K)
						x := g.Mul(fmt.Sprint("swiglu", m), g.SiLU(fmt.Sprint("silu", m), a), u)
						lin := g.Linear(fmt.Sprint("down", m), x, g.Weight("w", N, K), graph.None)
						if m == 1 {
							outs = append(outs, lin)
							continue
						}
						outs = append(outs, g.Add(fmt.Sprint("res", m), g.Input(fmt.Sprint("r", m), graph.Float32, m, N), lin))
					}
					return g.Output(outs...)
				}, func(rng *rand.Rand) []graph.Tensor {
					return []graph.Tensor{normalInput(1, K)(rng), normalInput(1, K)(rng), normalInput(3, K)(rng), normalInput(3, K)(rng), normalInput(3, N)(rng)}
				})
				prog, err := b.Compile(g, uploadAll(t, b, map[string]*quant.Tensor{"w": w}))
				if err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
				fused := len(prog.(*program).plan.siluLinears)
				if want := map[bool]int{true: 2}[b.tune.GEMVKernel == shaders.GEMVHW && f.Bits != 2]; fused != want {
					t.Errorf("%d Linears form their SiLU product, want %d", fused, want)
				}
			})
		}
	}
}
