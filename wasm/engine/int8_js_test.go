package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// a8Note is what gpu.New adds to Caps.Notes (and so to Model.Notes) when its GEMVs take int8
// activations.
const a8Note = "GEMV with int8 activations"

// streamURL is tools/streamserve's base URL; the int8-activation tests read the llama package's
// GGUF files (served by wasm/model/llama/testdata/browser.sh) and USE-lite from it.
func streamURL(t *testing.T) string {
	base := os.Getenv("NIBBLE_STREAM_URL")
	if base == "" {
		t.Skip("needs tools/streamserve with the llama files: NIBBLE_BROWSER_PKG=./wasm/engine bash wasm/model/llama/testdata/browser.sh -run Int8Activations")
	}
	return base
}

// a8Pair loads url on webgpu twice, with exact activations and with Int8Activations: each model
// its own backend, only the second's GEMVs with int8 activations (its notes say so, the first's
// do not).
func a8Pair(t *testing.T, ctx context.Context, url, format string) (exact, a8 *Model) {
	t.Helper()
	off := false
	for i, act := range []bool{false, true} {
		m, err := Load(ctx, url, Options{Backend: "webgpu", Format: format, Cache: &off, Int8Activations: act})
		if err == nil {
			err = m.Wait(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Release() })
		notes := strings.Join(m.Notes(), "; ")
		switch {
		case act && strings.Contains(notes, "no packed_4x8_integer_dot_product"):
			t.Skipf("this browser's WGSL has no packed_4x8_integer_dot_product: %s", notes)
		case strings.Contains(notes, a8Note) != act:
			t.Fatalf("Int8Activations %v, notes %q", act, notes)
		case act && !strings.Contains(notes, "with int8 activations on webgpu matches the cpu reference"):
			t.Fatalf("the guard did not probe the int8-activation GEMV: %q", notes)
		}
		if i == 0 {
			exact = m
		} else {
			a8 = m
		}
	}
	return exact, a8
}

// dequantized reads weight name back from a cpu load of the same file and format: the product
// with the identity rows (one nonzero each: exact) is Wᵀ, rebuilt as an f32 tensor of W.
func dequantized(t *testing.T, ctx context.Context, url, format, name string) *quant.Tensor {
	t.Helper()
	off := false
	m, err := Load(ctx, url, Options{Backend: "cpu", Format: format, Cache: &off})
	if err == nil {
		err = m.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	n, k, ok := m.Shape(name)
	if !ok {
		t.Fatalf("no weight %q", name)
	}
	eye := make([]float32, k*k)
	for i := range k {
		eye[i*k+i] = 1
	}
	wt, err := m.MatMul(name, eye, k)
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, n*k)
	for i := range k {
		for j := range n {
			w[j*k+i] = wt[i*n+j]
		}
	}
	q, err := quant.Quantize(name, w, n, k, quant.Format{Bits: 32}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// a8Bounds are, per output of x[rows×K]·Wᵀ, what separates the two kernels from the exact
// product y (float64 over the dequantized weights):
//   - f32: the f32-activation kernel's roundings, backendtest's γ = (K + 4)·u of Σ|w||x|, plus
//     2⁻¹¹ of it where the backend takes products in f16 (gpu.Backend.ComputeF16);
//   - a8: the int8-activation kernel's, quant.ActivationError (the activations' rounding, the
//     GPU's codes included) plus its float roundings as A8Product.Bound counts them, (Blocks+2)·u
//     of Σ|w|·|d·q| ≤ Σ|w|·(|x| + d), d the block's scale, plus the dequantized weights' and
//     y's roundings (u each).
type a8Bounds struct {
	y, f32, a8 []float64
}

func a8BoundsOf(x []float32, rows int, w *quant.Tensor, bits int, f16 bool) (a8Bounds, error) {
	a, err := quant.QuantizeActivations(x, rows, w.K, quant.ActivationBlock(bits))
	if err != nil {
		return a8Bounds{}, err
	}
	act := quant.ActivationError(x, a, w)
	deq := quant.Dequantize(w)
	const u = 0x1p-24
	b := a8Bounds{y: make([]float64, rows*w.N), f32: make([]float64, rows*w.N), a8: act}
	for i := range rows {
		for n := range w.N {
			var y, mag, magQ float64
			for k := range w.K {
				wk, xk := float64(deq[n*w.K+k]), float64(x[i*w.K+k])
				d := float64(a.Scales[i*a.Blocks()+k/a.Block])
				y += wk * xk
				mag += math.Abs(wk * xk)
				magQ += math.Abs(wk) * (math.Abs(xk) + d)
			}
			j := i*w.N + n
			b.y[j] = y
			b.f32[j] = float64(w.K+4) * u * mag
			if f16 {
				b.f32[j] += 0x1p-11 * mag
			}
			b.a8[j] += float64(a.Blocks()+2)*u*magQ + u*mag + u*math.Abs(y)
		}
	}
	return b, nil
}

// checkA8 checks got (the int8-activation model's outputs) within b.a8 of the exact product and,
// for some output, outside b.f32: no f32-activation kernel could have given it.
func checkA8(t *testing.T, what string, got []float32, b a8Bounds) {
	t.Helper()
	outside := 0
	for j, g := range got {
		d := math.Abs(float64(g) - b.y[j])
		if math.IsNaN(d) || d > b.a8[j] {
			t.Fatalf("%s: y[%d] = %g, exact %g: |diff| %.3g > int8-activation bound %.3g", what, j, g, b.y[j], d, b.a8[j])
		}
		if d > b.f32[j] {
			outside++
		}
	}
	if outside == 0 {
		t.Fatalf("%s: every output within the f32 kernel's bound: the int8-activation GEMV did not run", what)
	}
	t.Logf("%s: %d of %d outputs outside the f32 bound, all within the int8-activation bound", what, outside, len(got))
}

// TestBrowserInt8ActivationsMatMul: Options.Int8Activations on webgpu reaches the kernel. A
// decoder's weights (q4 and q8, activation blocks of 32 and 16) multiplied through
// Model.MatMul with m ≤ gpu.GEMVMaxM rows: the exact model's product within the f32 bound, the
// int8 model's within quant.ActivationError's and outside the f32 one.
func TestBrowserInt8ActivationsMatMul(t *testing.T) {
	url := streamURL(t) + "/llama/spm-f32.gguf"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, format := range []string{"q4-sym-g32", "q8-sym-g32"} {
		t.Run(format, func(t *testing.T) {
			exact, a8 := a8Pair(t, ctx, url, format)
			rng := rand.New(rand.NewPCG(7, 0xa8))
			for _, name := range []string{"blk.0.ffn_down.weight", "output.weight"} {
				w := dequantized(t, ctx, url, format, name)
				held, _ := a8.load.Weight(name)
				if !quant.Int8ActivationsFit(held.Format()) {
					t.Fatalf("%s held as %v: no int8 activations", name, held.Format())
				}
				rows := gpu.GEMVMaxM
				x := make([]float32, rows*w.K)
				for i := range x {
					x[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
				}
				b, err := a8BoundsOf(x, rows, w, held.Format().Bits, exact.Backend.(*gpu.Backend).ComputeF16())
				if err != nil {
					t.Fatal(err)
				}
				got, err := exact.MatMul(name, x, rows)
				if err != nil {
					t.Fatal(err)
				}
				for j, g := range got {
					if d := math.Abs(float64(g) - b.y[j]); !(d <= b.f32[j]) {
						t.Fatalf("%s exact activations: y[%d] = %g, exact %g: |diff| %.3g > f32 bound %.3g", name, j, g, b.y[j], d, b.f32[j])
					}
				}
				if got, err = a8.MatMul(name, x, rows); err != nil {
					t.Fatal(err)
				}
				checkA8(t, name, got, b)
			}
		})
	}
}

// TestBrowserInt8ActivationsEmbed: USE-lite on webgpu with Int8Activations. Its layers run
// GEMMs (B·T ≥ 8 rows, f32 activations); its head (dense over the pooled vector p, one row per
// sentence) is a GEMV with int8 activations. The whole graph run on both models with p and
// u = tanh(dense) as extra outputs bounds each embedding: the dense outputs differ by at most
// Σ|w||Δp| + the kernels' a8Bounds (quant.ActivationError and roundings); tanh moves them no
// more, and each tanh is within the graph suite's op tolerance (backendtest.CheckGraph's
// tol·(|u| + RMS(u)), tol = 2e-4) of the exact one; unit vectors then lie within
// 2‖Δu‖/‖u‖ of each other, plus each normalization's own tolerance (2·tol on a unit vector).
func TestBrowserInt8ActivationsEmbed(t *testing.T) {
	url := streamURL(t) + "/use-lite/"
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const format, tol = "q8-sym-g32", 2e-4
	exact, a8 := a8Pair(t, ctx, url, format)
	w := dequantized(t, ctx, url, format, uselite.NameTanhWeights)
	deq := quant.Dequantize(w)
	held, _ := a8.load.Weight(uselite.NameTanhWeights)
	f16 := exact.Backend.(*gpu.Backend).ComputeF16()
	for _, text := range embedSentences[:3] {
		e, err := exact.Embed(ctx, []string{text})
		if err != nil {
			t.Fatal(err)
		}
		e8, err := a8.Embed(ctx, []string{text})
		if err != nil {
			t.Fatal(err)
		}
		p, u := headValues(t, ctx, exact, text)
		p8, u8 := headValues(t, ctx, a8, text)
		b, err := a8BoundsOf(p8, 1, w, held.Format().Bits, f16)
		if err != nil {
			t.Fatal(err)
		}
		var rms, u2 float64
		for _, v := range u {
			rms, u2 = rms+float64(v*v)/float64(len(u)), u2+float64(v*v)
		}
		rms = math.Sqrt(rms)
		var du2 float64
		for n := range w.N {
			var dp float64 // were the two runs' pooled vectors to differ
			for k := range w.K {
				dp += math.Abs(float64(deq[n*w.K+k]) * float64(p8[k]-p[k]))
			}
			du := dp + b.a8[n] + b.f32[n] + 2*tol*(math.Abs(float64(u[n]))+rms)
			if d := math.Abs(float64(u8[n] - u[n])); !(d <= du) {
				t.Fatalf("%q: tanh(dense)[%d] %g, exact activations %g: |diff| %.3g > bound %.3g", text, n, u8[n], u[n], d, du)
			}
			du2 += du * du
		}
		var dist2 float64
		for n := range e[0] {
			d := float64(e8[0][n] - e[0][n])
			dist2 += d * d
		}
		bound, dist := 2*math.Sqrt(du2/u2)+4*tol, math.Sqrt(dist2)
		if !(dist <= bound) {
			t.Fatalf("%q: ‖Δembedding‖ %.3g > bound %.3g", text, dist, bound)
		}
		if slices.Equal(e[0], e8[0]) {
			t.Fatalf("%q: the same embedding with int8 activations: the int8 GEMV did not run", text)
		}
		t.Logf("%q: ‖Δembedding‖ %.3g (cosine %.6f), bound %.3g", text, dist, 1-dist2/2, bound)
	}
}

// headValues runs m's whole USE-lite graph for one text with the pooled vector (the head's
// dense input) and tanh(dense) as extra outputs.
func headValues(t *testing.T, ctx context.Context, m *Model, text string) (pooled, tanh []float32) {
	t.Helper()
	enc, err := m.arch.encoder(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	b := enc.Tokenize([]string{text})
	g, err := enc.Config.Build(b.B, b.T)
	if err != nil {
		t.Fatal(err)
	}
	for v, n := range g.Nodes {
		if n.Op == graph.OpMeanPool || n.Op == graph.OpTanh {
			if err := g.Output(graph.Value(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	prog, err := m.Backend.(backend.Compiler).Compile(g, m.load)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	out, err := prog.Run(ctx, []graph.Tensor{graph.I32Tensor(b.IDs, b.B, b.T), graph.F32Tensor(b.Mask, b.B, b.T)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("%d outputs, want the embedding, the pooled vector and tanh", len(out))
	}
	return out[1].F32, out[2].F32
}

// TestBrowserInt8ActivationsGenerate: a Llama decoder on webgpu with Int8Activations. Its token
// steps (one row: GEMVs) run with int8 activations: after the same prompt, the next step's
// logits differ from the exact model's (the layers between the GEMVs admit no bound derived
// from one product's: TestBrowserInt8ActivationsMatMul bounds the products on these weights),
// and Generate streams tokens.
func TestBrowserInt8ActivationsGenerate(t *testing.T) {
	url := streamURL(t) + "/llama/spm-q4_0.gguf"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	exact, a8 := a8Pair(t, ctx, url, "q4-sym-g32")
	step := func(m *Model) []float32 {
		dec, err := m.llama.decoder(ctx, m, llama.Options{Context: 64})
		if err != nil {
			t.Fatal(err)
		}
		dec.Reset()
		ids := append([]int32{m.llama.tok.BOS}, m.llama.tok.Encode("Once upon a time", false)...)
		if _, err := dec.Forward(ctx, ids, false); err != nil {
			t.Fatal(err)
		}
		logits, err := dec.Forward(ctx, []int32{ids[len(ids)-1]}, false)
		if err != nil {
			t.Fatal(err)
		}
		return logits[0]
	}
	l, l8 := step(exact), step(a8)
	var diff, norm float64
	for i := range l {
		if math.IsNaN(float64(l8[i])) {
			t.Fatalf("logit %d is NaN", i)
		}
		diff += float64((l8[i] - l[i]) * (l8[i] - l[i]))
		norm += float64(l[i] * l[i])
	}
	if diff == 0 {
		t.Fatal("the same logits with int8 activations: the int8 GEMVs did not run")
	}
	t.Logf("a token step's logits: relative RMS difference %.3g", math.Sqrt(diff/norm))
	var n int
	if err := a8.Generate(ctx, "Once upon a time", GenerateOptions{MaxTokens: 8, Context: 64}, func(Token) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no tokens")
	}
}
