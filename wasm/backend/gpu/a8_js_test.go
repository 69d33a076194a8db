//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// a8Formats take every path of gemv_a8.wgsl: each width, symmetric and asymmetric, f16 scales,
// groups of one block, of several and per channel (two blocks of an int2 span in one group or
// in two).
var a8Formats = []quant.Format{
	{Bits: 8, GroupSize: 32},
	{Bits: 8, GroupSize: 16, Scales: quant.ScaleF16},
	{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 0, Scales: quant.ScaleF16},
	{Bits: 4, GroupSize: 32},
	{Bits: 4, GroupSize: 0},
	{Bits: 4, Scheme: quant.Asymmetric, GroupSize: 64, Scales: quant.ScaleF16},
	{Bits: 2, GroupSize: 32},
	{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 32},
	{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 128, Scales: quant.ScaleF16},
}

// a8Shapes: m = 1..4, N not a multiple of any row count, K not a multiple of a block (a short
// last block, padding past K), and one K of whole spans.
var a8Shapes = []backendtest.Shape{{M: 1, N: 1, K: 17}, {M: 1, N: 37, K: 300}, {M: 2, N: 67, K: 1000}, {M: 3, N: 130, K: 257}, {M: 4, N: 20, K: 1024}}

// TestConformanceA8 runs the int8-activation GEMV against quant.MatMulA8 (fresh random inputs,
// poisoned outputs; a8Formats on a software adapter, every format the kernel takes on a GPU) with
// the adapter's launch shape and the other class's (on SwiftShader: gemv_a8.wgsl at 8×4 and at
// DefaultTuning's 128×8), with and without subgroups, and with 16 rows a workgroup (two groups of 8
// reduced in turn), with x quantized by the pre-pass (A8Quant, XQ), with each thread's next span
// loaded ahead there (Prefetch), and with the weights split into many bindings. The bound is
// A8Product.Bound: the kernel's float roundings, and a code off by one only where the reference
// marks it Near.
func TestConformanceA8(t *testing.T) {
	other, formats := SoftwareTuning, a8Formats
	if softwareAdapter(webgpuInfo(t)) {
		other = DefaultTuning
	} else {
		// A GPU compiles in milliseconds: every format the kernel takes.
		formats = nil
		for _, f := range backendtest.AllFormats() {
			if quant.Int8ActivationsFit(f) {
				formats = append(formats, f)
			}
		}
	}
	rows16 := DefaultTuning
	rows16.GEMVInt8Workgroup, rows16.GEMVInt8Rows = 64, 16
	prepass := DefaultTuning
	prepass.GEMVInt8Rows, prepass.GEMVInt8Prepass = 4, true
	// Three workgroups looping over the row groups, x held in workgroup memory up to K = 512
	// (K 1000 and 1024 quantize per span in the same loop); and 16 rows with room for all.
	persist := DefaultTuning
	persist.GEMVInt8Persist = A8Persist{Groups: 3, MaxK: 512}
	persist16 := rows16
	persist16.GEMVInt8Persist = A8Persist{Groups: 2, MaxK: 1024}
	// The next span loaded while this one is summed, where x is quantized ahead: 16 threads a
	// workgroup, so that a thread takes several spans (K 1000 of int8 codes: 63 spans, the last
	// thread's loop shorter), at 8 and 16 rows; and where the GEMV quantizes x, which takes none.
	pf := DefaultTuning
	pf.GEMVInt8Workgroup, pf.GEMVInt8Rows, pf.GEMVInt8Prefetch, pf.GEMVInt8Prepass = 16, 8, 16, true
	pf16 := pf
	pf16.GEMVInt8Rows = 16
	pfx := pf
	pfx.GEMVInt8Prepass = false
	for _, c := range []struct {
		name string
		opt  Options
	}{
		{"adapter", Options{}},
		{"other", Options{Tuning: &other}},
		{"no-subgroups", Options{Tuning: &other, NoSubgroups: true}},
		{"rows16", Options{Tuning: &rows16}},
		{"prepass", Options{Tuning: &prepass}},
		{"persist", Options{Tuning: &persist}},
		{"persist-rows16-no-subgroups", Options{Tuning: &persist16, NoSubgroups: true}}, // a GPU only (TestGraphSwiGLUA8 runs 16 rows persistent everywhere)
		{"prefetch", Options{Tuning: &pf}},
		{"prefetch-rows16-no-subgroups", Options{Tuning: &pf16, NoSubgroups: true}},
		{"prefetch-own-x", Options{Tuning: &pfx}},
		// Weights split by rows into many bindings (each chunk's dispatch reads the one x).
		{"split", Options{Tuning: &other, MaxBindingSize: 4096}},
		{"split-prepass", Options{Tuning: &prepass, MaxBindingSize: 4096, NoSubgroups: true}},
	} {
		if c.name == "persist-rows16-no-subgroups" && softwareAdapter(webgpuInfo(t)) {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			c.opt.poison, c.opt.Int8Activations = true, true
			b := newBackend(t, c.opt)
			if !b.feat.dot4 {
				t.Fatalf("this browser's WGSL has no packed_4x8_integer_dot_product (notes %q): the int8-activation kernel cannot run", b.Caps().Notes)
			}
			rng := rand.New(rand.NewPCG(backendtest.Seed(t, "a8 conformance"), 0xa8))
			for _, f := range formats {
				for _, s := range a8Shapes {
					if k := keyFor(f, s.N, s.M, b.feat, b.tune); k.Kernel != shaders.GEMVA8 {
						t.Fatalf("%v m=%d: key %s, want gemv-a8", f, s.M, k.Name())
					}
					if err := checkA8(b, rng, s, f); err != nil {
						t.Error(err)
					}
				}
			}
			xq, persistent, prefetch := false, false, false
			for k := range b.pipelines {
				xq, persistent, prefetch = xq || k.XQ, persistent || k.Persist > 0, prefetch || k.Prefetch
			}
			if want := b.tune.GEMVInt8Prepass && b.tune.GEMVInt8Prefetch > 0; prefetch != want {
				t.Errorf("a GEMV loading its next span ahead ran: %v, want %v", prefetch, want)
			}
			if want := c.opt.Tuning != nil && c.opt.Tuning.GEMVInt8Prepass; xq != want {
				t.Errorf("a GEMV reading x quantized ahead ran: %v, want %v", xq, want)
			}
			if want := c.opt.Tuning != nil && c.opt.Tuning.GEMVInt8Persist.Groups > 0; persistent != want {
				t.Errorf("a persistent GEMV ran: %v, want %v", persistent, want)
			}
		})
	}
}

// checkA8 runs one case on b (int8 activations on) and compares it with the reference.
func checkA8(b *Backend, rng *rand.Rand, s backendtest.Shape, f quant.Format) error {
	name := fmt.Sprintf("%s %dx%dx%d", f, s.M, s.N, s.K)
	t, x, got, err := runRandom(b, rng, s, f)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	a, err := quant.QuantizeActivations(x, s.M, s.K, quant.ActivationBlock(f.Bits))
	if err != nil {
		return err
	}
	ref, err := quant.MatMulA8(a, t)
	if err != nil {
		return err
	}
	want := func(i, n int) float64 { return ref.Y[i*s.N+n] }
	return backendtest.Within(name, s, got, want, ref.Bound)
}

// runRandom quantizes fresh random weights of shape s in format f, uploads them, and multiplies
// fresh random activations on b into a poisoned output.
func runRandom(b *Backend, rng *rand.Rand, s backendtest.Shape, f quant.Format) (*quant.Tensor, []float32, []float32, error) {
	t, err := quant.Quantize("a8", backendtest.RandomWeights(rng, s.N, s.K), s.N, s.K, f, quant.Options{})
	if err != nil {
		return nil, nil, nil, err
	}
	x := make([]float32, s.M*s.K)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	w, err := b.Upload(t)
	if err != nil {
		return nil, nil, nil, err
	}
	defer w.Release()
	got := make([]float32, s.M*s.N)
	for i := range got {
		got[i] = float32(math.NaN())
	}
	return t, x, got, b.MatMul(got, x, w, s.M)
}

// TestInt8ActivationsError checks the mode against the exact product: off by default (the
// result is within backendtest's f32 bound), on it is within the documented activation
// rounding bound (quant.ActivationError plus the float roundings) and, for some output,
// outside the f32 one (the int8 kernel did run).
func TestInt8ActivationsError(t *testing.T) {
	def := newBackend(t, Options{poison: true})
	if def.tune.GEMVInt8 || def.opt.Int8Activations {
		t.Fatal("int8 activations on by default")
	}
	on := newBackend(t, Options{poison: true, Int8Activations: true})
	if !strings.Contains(strings.Join(on.Caps().Notes, "; "), "int8 activations") {
		t.Errorf("Caps.Notes do not say int8 activations: %q", on.Caps().Notes)
	}
	rng := rand.New(rand.NewPCG(backendtest.Seed(t, "a8 error"), 0xa8e))
	s := backendtest.Shape{M: 2, N: 130, K: 1000}
	for _, f := range []quant.Format{quant.Q4, {Bits: 8, GroupSize: 32}, {Bits: 2, Scheme: quant.Asymmetric, GroupSize: 64}} {
		for _, c := range []struct {
			b  *Backend
			a8 bool
		}{{def, false}, {on, true}} {
			t.Run(fmt.Sprintf("%v/a8=%v", f, c.a8), func(t *testing.T) {
				q, x, got, err := runRandom(c.b, rng, s, f)
				if err != nil {
					t.Fatal(err)
				}
				exact, err := quant.MatMul(x, s.M, q)
				if err != nil {
					t.Fatal(err)
				}
				a, err := quant.QuantizeActivations(x, s.M, s.K, quant.ActivationBlock(f.Bits))
				if err != nil {
					t.Fatal(err)
				}
				ref, err := quant.MatMulA8(a, q)
				if err != nil {
					t.Fatal(err)
				}
				act := quant.ActivationError(x, a, q)
				deq := quant.Dequantize(q)
				outside := 0
				for i := 0; i < s.M; i++ {
					for n := 0; n < s.N; n++ {
						var mag float64
						for k := 0; k < s.K; k++ {
							mag += math.Abs(float64(x[i*s.K+k]) * float64(deq[n*s.K+k]))
						}
						// backendtest's f32 bound, γ = 3u + (K+1)u.
						f32 := (3 + float64(s.K+1)) * 0x1p-24 * mag
						bound := f32
						if c.a8 {
							// The activations' rounding, the kernel's roundings, the dequantized
							// weights' (2⁻²⁴ each) and y's.
							bound = act[i*s.N+n] + ref.Bound(i, n) + 0x1p-24*mag + 0x1p-24*math.Abs(float64(exact[i*s.N+n]))
						}
						d := math.Abs(float64(got[i*s.N+n]) - float64(exact[i*s.N+n]))
						if math.IsNaN(d) || d > bound {
							t.Fatalf("y[%d][%d] = %g, exact %g: |diff| %.3g > bound %.3g", i, n, got[i*s.N+n], exact[i*s.N+n], d, bound)
						}
						if d > f32 {
							outside++
						}
					}
				}
				if c.a8 && outside == 0 {
					t.Fatal("every output within the f32 bound: the int8 kernel did not run")
				}
				t.Logf("%d of %d outputs outside the f32 bound", outside, s.M*s.N)
			})
		}
	}
}

// TestGraphA8 runs the int8-activation GEMV inside a graph program with the variants the graph
// asks for (gemv_hw.wgsl's launch shape, so the RMS norm fuses: Norm and Residual keys on
// gemv_a8.wgsl; SiLUX for a feed-forward's down projection) on a poisoned arena, against the
// reference: the norm's x·gain quantized (quant.QuantizeActivations of the f32 products),
// quant.MatMulA8, times 1/√(mean(x²) + eps), plus the residual. The bound adds to
// A8Product.Bound (scaled by the norm) the norm's own roundings: Σx² in f32 (K·u relative), /K
// and + eps (2u), inverseSqrt (WGSL: 2 ULP, 4u), halved by the square root, then the product
// and the residual's sum (u each). The SiLU product's x is the cpu backend's SiLU(a)·b; the
// GPU's differs by a relative ρ (a8SiLURel), which may move amax, and so d and every x·inv, by
// ρ and 2ρ: codes within NearHalf + 3ρ of a half-integer may round either way, and each block's
// term may differ by ρ of it (ρ·Mag).
func TestGraphA8(t *testing.T) {
	poisoned(t)
	rng := rand.New(rand.NewPCG(backendtest.Seed(t, "a8 graph"), 0xa89))
	// DefaultTuning's launch; two workgroups looping over the row groups with x held in
	// workgroup memory (K = a8K fits); for one case, the same loop quantizing per span; and
	// the normed GEMVs reading x·gain quantized by the norm's pre-pass (a8NormPrepass).
	persist, perSpan := DefaultTuning, DefaultTuning
	persist.GEMVInt8Persist = A8Persist{Groups: 2, MaxK: a8K}
	perSpan.GEMVInt8Persist = A8Persist{Groups: 2, MaxK: a8K / 2}
	defer saved(&a8NormPrepass)()
	for ti, tu := range []Tuning{DefaultTuning, persist, perSpan, DefaultTuning} {
		a8NormPrepass = ti == 3
		b := newBackend(t, Options{Int8Activations: true, Tuning: &tu})
		if !b.feat.dot4 {
			t.Fatalf("no packed_4x8_integer_dot_product (notes %q)", b.Caps().Notes)
		}
		// The persistent launches (off by default) in one case each.
		testGraphA8(t, b, rng, []string{"", "persist/", "persist-per-span/", "norm-prepass/"}[ti], ti == 1 || ti == 2)
	}
}

// testGraphA8 is TestGraphA8 on one backend (only q4 at m = 3 when short).
func testGraphA8(t *testing.T, b *Backend, rng *rand.Rand, prefix string, short bool) {
	for _, f := range []quant.Format{quant.Q4, {Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16}, {Bits: 2, GroupSize: 64}} {
		for _, m := range []int{1, 3} {
			if short && (f != quant.Q4 || m != 3) {
				continue
			}
			t.Run(fmt.Sprintf("%s%v/m%d", prefix, f, m), func(t *testing.T) {
				c := a8GraphCase{f: f, m: m, ws: map[string]*quant.Tensor{}}
				g, wm := c.build(t, b, rng)
				lim := testLimits
				lim.gemvNorm, lim.gemvWeights, lim.gemvSiLU = fuseGEMVNorm, 3, fuseGEMVSiLU
				if p, err := planGraph(g, func(int) int { return a8K }, lim); err != nil || len(p.normed) != 4 || len(p.residuals) != 2 ||
					len(p.groups) != 2 || len(p.siluLinears) != 1 {
					t.Fatalf("the norm, the residuals, the groups and the SiLU product did not fuse into the GEMVs (err %v)", err)
				}
				prog, err := b.Compile(g, wm)
				if err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
				// The norm with the residual, a group on the norm (3 weights, or 2 where the
				// device's storage buffers do not take 3), a group of 2 on z, SiLU·mul with the
				// residual: all gemv_a8.wgsl.
				var res, normGroup, group, silu bool
				for k := range b.pipelines {
					if k.Kernel == shaders.GEMVA8 && k.Persist == b.tune.GEMVInt8Persist.Groups {
						res = res || k.Norm && k.Residual
						normGroup = normGroup || k.Norm && k.Weights >= 2
						group = group || !k.Norm && k.Weights == 2
						silu = silu || k.SiLUX && k.Residual
					}
				}
				normPre := false
				for k := range b.pipelines {
					normPre = normPre || k.Kernel == shaders.A8Quant && k.Norm
				}
				if normPre != a8NormPrepass {
					t.Errorf("the norm's pre-pass ran: %v, want %v", normPre, a8NormPrepass)
				}
				if !res || !normGroup || !group || !silu {
					t.Errorf("gemv-a8 pipelines (persistent: %d workgroups): norm and residual %v, a group on the norm %v, a group of 2 %v, SiLU·mul %v; want all",
						b.tune.GEMVInt8Persist.Groups, res, normGroup, group, silu)
				}
				in := []graph.Tensor{normalInput(m, a8K)(rng), normalInput(a8K)(rng), normalInput(m, a8N)(rng), normalInput(m, a8K)(rng),
					normalInput(m, a8K)(rng), normalInput(m, a8K)(rng)}
				out, err := prog.Run(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				c.check(t, in, out)
			})
		}
	}
}

// TestGraphA8's shapes: K, the residual Linear's N, the norm's epsilon.
const a8K, a8N, a8Eps = 256, 70, 1e-5

// a8GraphCase is TestGraphA8's graph in one format and m: inputs x, gain, r, z, a, b; outputs
// r + norm(x)·wᵀ, norm(x)·wqᵀ, ·wkᵀ, ·wvᵀ (a group of three), z·wqᵀ, z·wkᵀ (a group of two),
// r + (SiLU(a)·b)·wᵀ.
type a8GraphCase struct {
	f  quant.Format
	m  int
	ws map[string]*quant.Tensor
}

// build draws and uploads the weights (the group's of one layout but N, the last ragged) and
// builds the graph.
func (c a8GraphCase) build(t *testing.T, b *Backend, rng *rand.Rand) (*graph.Graph, backend.WeightMap) {
	wm := backend.WeightMap{}
	for name, n := range map[string]int{"w": a8N, "wq": 64, "wk": 40, "wv": 30} {
		q, err := quant.Quantize(name, backendtest.RandomWeights(rng, n, a8K), n, a8K, c.f, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		wb, err := b.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { wb.Release() })
		c.ws[name], wm[name] = q, wb
	}
	g := graph.New("a8")
	x := g.Input("x", graph.Float32, c.m, a8K)
	gain := g.Input("gain", graph.Float32, a8K)
	r := g.Input("r", graph.Float32, c.m, a8N)
	z := g.Input("z", graph.Float32, c.m, a8K)
	a, ub := g.Input("a", graph.Float32, c.m, a8K), g.Input("b", graph.Float32, c.m, a8K)
	h := g.RMSNorm("norm", x, gain, a8Eps)
	lin := func(name string, x graph.Value, w string) graph.Value {
		return g.Linear(name, x, g.Weight(w, c.ws[w].N, a8K), graph.None)
	}
	g.Output(g.Add("res", r, lin("fc", h, "w")), lin("q", h, "wq"), lin("k", h, "wk"), lin("v", h, "wv"),
		lin("q2", z, "wq"), lin("k2", z, "wk"), g.Add("res2", r, lin("down", g.Mul("swiglu", g.SiLU("silu", a), ub), "w")))
	return g, wm
}

// check compares the outputs with the reference under the bound TestGraphA8 derives.
func (c a8GraphCase) check(t *testing.T, in, out []graph.Tensor) {
	m, xs, gs := c.m, in[0].F32, in[1].F32
	v := make([]float32, m*a8K) // what the GEMV quantizes: x·gain in f32
	for i := range v {
		v[i] = xs[i] * gs[i%a8K]
	}
	rn := make([]float64, m) // each row's 1/√(mean(x²) + eps)
	for i := range rn {
		var ss float64
		for _, xv := range xs[i*a8K : (i+1)*a8K] {
			ss += float64(xv) * float64(xv)
		}
		rn[i] = 1 / math.Sqrt(ss/a8K+a8Eps)
	}
	sw, rho := a8SiLUProduct(in[4].F32, in[5].F32)
	c.one(t, out, 0, v, 0, "w", rn, in[2].F32)
	c.one(t, out, 1, v, 0, "wq", rn, nil)
	c.one(t, out, 2, v, 0, "wk", rn, nil)
	c.one(t, out, 3, v, 0, "wv", rn, nil)
	c.one(t, out, 4, in[3].F32, 0, "wq", nil, nil)
	c.one(t, out, 5, in[3].F32, 0, "wk", nil, nil)
	c.one(t, out, 6, sw, rho, "w", nil, in[2].F32)
}

// one compares output o with act·wᵀ, act as the reference forms it and the GPU's within a
// relative rho of it (see TestGraphA8); scaled by the norm where rn, plus res where not nil.
func (c a8GraphCase) one(t *testing.T, out []graph.Tensor, o int, act []float32, rho float64, w string, rn []float64, res []float32) {
	t.Helper()
	const u = 0x1p-24
	m, wt := c.m, c.ws[w]
	a, err := quant.QuantizeActivations(act, m, a8K, quant.ActivationBlock(c.f.Bits))
	if err != nil {
		t.Fatal(err)
	}
	if rho > 0 {
		widenNear(a, act, 3*rho)
	}
	ref, err := quant.MatMulA8(a, wt)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < m; i++ {
		for n := 0; n < wt.N; n++ {
			j := i*wt.N + n
			want, bound := ref.Y[j], ref.Bound(i, n)+rho*ref.Mag[j]
			if rn != nil {
				want, bound = want*rn[i], rn[i]*bound+u*((a8K+6)/2+1)*math.Abs(want*rn[i])
			}
			if res != nil {
				want += float64(res[j])
				bound += u * math.Abs(want)
			}
			if got := float64(out[o].F32[j]); math.IsNaN(got) || math.Abs(got-want) > bound {
				t.Fatalf("output %d (%s) y[%d][%d] = %g, want %g (|diff| %.3g > bound %.3g)", o, w, i, n, got, want, math.Abs(got-want), bound)
			}
		}
	}
}

// a8SiLUProduct is SiLU(a)·b as the cpu backend forms it (SiLU in float64 rounded to f32, the
// product in f32), and ρ, a bound on the GPU's relative distance from it: WGSL's exp is within
// 3 + 2|a| ULP, the sum, division (2.5 ULP) and two products round, the cpu's two roundings;
// (8 + 2|a|)·2⁻²³ in all, doubled to leave room for an implementation's looser exp.
func a8SiLUProduct(a, b []float32) ([]float32, float64) {
	out := make([]float32, len(a))
	var rho float64
	for i, av := range a {
		out[i] = float32(float64(av)/(1+math.Exp(-float64(av)))) * b[i]
		rho = max(rho, 2*(8+2*math.Abs(float64(av)))*0x1p-23)
	}
	return out, rho
}

// widenNear also marks the codes whose x·inv lies within quant.NearHalf + rel of a
// half-integer (relative to |x·inv|), with x the activations a quantized.
func widenNear(a *quant.Int8Rows, x []float32, rel float64) {
	for i := 0; i < a.M; i++ {
		for lo := 0; lo < a.K; lo += a.Block {
			blk := x[i*a.K+lo : i*a.K+min(lo+a.Block, a.K)]
			var amax float32
			for _, v := range blk {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			if amax < 0x1p-120 {
				continue
			}
			inv := 127 / amax
			for k, xv := range blk {
				v := float64(xv) * float64(inv)
				j := i*a.K + lo + k
				a.Near[j] = a.Near[j] || math.Abs(v-math.Floor(v)-0.5) <= (quant.NearHalf+rel)*math.Abs(v)
			}
		}
	}
}
