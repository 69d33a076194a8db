// Package backendtest is the one conformance suite every backend runs (as gonum's testblas is
// for BLAS implementations): fresh random inputs each run, the output poisoned before each call,
// shapes that are not multiples of any tile or group, and every format a backend claims.
//
// The oracle is quant.MatMul (float64 accumulation over the same dequantized weights). The
// tolerance is the forward-error bound of float32 accumulation, |ŷ − y| ≤ γ·Σ|x·w|, with
// γ = 3u_p + (K+1)u where u = 2⁻²⁴ and u_p the unit roundoff of the products (2⁻²⁴ for f32
// kernels, 2⁻¹¹ for f16 ones), plus, for half-precision products, the absolute error of
// underflow: each of the three roundings in a product (x to half, the dequantized weight to half,
// the product) may lose up to half the smallest subnormal, η = 2⁻²⁵, so the bound adds
// η·(Σ|x| + Σ|w| + K). It is derived, never tuned until a kernel passes.
package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Shape is one matmul: x is M×K, the weight N×K.
type Shape struct{ M, N, K int }

// Options adapt the suite to a backend.
type Options struct {
	// Supports says whether the backend claims format f; unclaimed formats are skipped and
	// listed in the log. Nil means every format.
	Supports func(f quant.Format) bool
	// ProductEps is the unit roundoff of the products; 0 means float32 (2⁻²⁴). 2⁻¹¹ (IEEE
	// half) also brings half's underflow term into the bound (see the package doc).
	ProductEps float64
	// Shapes overrides DefaultShapes.
	Shapes []Shape
	// Formats overrides AllFormats.
	Formats []quant.Format
}

// DefaultShapes avoid multiples of common tiles (8, 16, 32, 64) and group sizes: odd K leaves
// a short last group, N=1 and M=1 hit the edges, M > 1 takes the GEMM paths.
var DefaultShapes = []Shape{
	{M: 1, N: 1, K: 17},
	{M: 1, N: 67, K: 300},
	{M: 1, N: 130, K: 1000},
	{M: 5, N: 33, K: 257},
	{M: 19, N: 70, K: 529},
}

// AllFormats lists every bits × scheme × group × scale-type combination, plus f16 and f32 storage.
func AllFormats() []quant.Format {
	fs := []quant.Format{{Bits: 32}, {Bits: 16}}
	for _, bits := range []int{2, 4, 8} {
		for _, sch := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
			for _, g := range []int{0, 16, 32, 64, 128, 256} {
				for _, st := range []quant.ScaleType{quant.ScaleF32, quant.ScaleF16} {
					fs = append(fs, quant.Format{Bits: bits, Scheme: sch, GroupSize: g, Scales: st})
				}
			}
		}
	}
	return fs
}

// Seed is the seed of a suite's random draws: NIBBLE_SEED when it is set (to replay the run
// whose log named that seed: NIBBLE_SEED=123 go test …), else the clock. It logs the seed
// under what.
func Seed(t testing.TB, what string) uint64 {
	if s := os.Getenv("NIBBLE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NIBBLE_SEED=%q: %v", s, err)
		}
		t.Logf("%s: seed %d (from NIBBLE_SEED)", what, v)
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("%s: seed %d (NIBBLE_SEED=%d replays it)", what, v, v)
	return v
}

// Run runs the whole suite against b.
func Run(t *testing.T, b backend.Backend, opt Options) {
	rng := rand.New(rand.NewPCG(Seed(t, "backend "+b.Name()+": matmul"), 0x6e6962626c65))
	t.Run("Shapes", func(t *testing.T) { testShapeErrors(t, b) })
	formats, shapes := opt.Formats, opt.Shapes
	if formats == nil {
		formats = AllFormats()
	}
	if shapes == nil {
		shapes = DefaultShapes
	}
	var skipped []string
	for _, f := range formats {
		if opt.Supports != nil && !opt.Supports(f) {
			skipped = append(skipped, f.String())
			continue
		}
		t.Run(f.String(), func(t *testing.T) {
			for _, s := range shapes {
				if err := Check(b, rng, s, f, opt.ProductEps); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if len(skipped) > 0 {
		t.Logf("backend %s does not claim %d formats: %v", b.Name(), len(skipped), skipped)
	}
}

// RandomWeights draws an n×k matrix with per-row scale spread and a few outlier columns, like
// trained weights, so quantization is not tested only on the easy case.
func RandomWeights(rng *rand.Rand, n, k int) []float32 {
	w := make([]float32, n*k)
	outlier := rng.IntN(k)
	for r := 0; r < n; r++ {
		rowScale := 0.02 * math.Exp(rng.NormFloat64()*0.5)
		for c := 0; c < k; c++ {
			v := rng.NormFloat64() * rowScale
			if c == outlier {
				v *= 20
			}
			w[r*k+c] = float32(v)
		}
	}
	return w
}

// Check runs one case: quantize fresh weights, upload, poison dst, multiply, compare with the
// float64 oracle element by element against the derived bound.
func Check(b backend.Backend, rng *rand.Rand, s Shape, f quant.Format, productEps float64) error {
	name := fmt.Sprintf("%s %dx%dx%d", f, s.M, s.N, s.K)
	t, err := quant.Quantize(name, RandomWeights(rng, s.N, s.K), s.N, s.K, f, quant.Options{})
	if err != nil {
		return err
	}
	x := make([]float32, s.M*s.K)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	w, err := b.Upload(t)
	if err != nil {
		return fmt.Errorf("%s: upload: %w", name, err)
	}
	defer w.Release()
	if n, k := w.Shape(); n != s.N || k != s.K || w.Format() != f {
		return fmt.Errorf("%s: uploaded weight reports %d×%d %v", name, n, k, w.Format())
	}
	want, err := quant.MatMul(x, s.M, t)
	if err != nil {
		return err
	}
	dst := make([]float32, s.M*s.N)
	for i := range dst {
		dst[i] = float32(math.NaN())
	}
	if err := b.MatMul(dst, x, w, s.M); err != nil {
		return fmt.Errorf("%s: matmul: %w", name, err)
	}
	return compare(name, x, t, want, dst, s, productEps)
}

func compare(name string, x []float32, t *quant.Tensor, want, got []float32, s Shape, productEps float64) error {
	const u = 0x1p-24
	if productEps == 0 {
		productEps = u
	}
	gamma := 3*productEps + float64(s.K+1)*u
	// Half precision underflows near 6e-5 where float32 does near 1e-38: only then does the
	// absolute term matter.
	var eta float64
	if productEps >= 0x1p-11 {
		eta = 0x1p-25
	}
	deq := quant.Dequantize(t)
	want64 := func(i, n int) float64 { return float64(want[i*s.N+n]) }
	return Within(name, s, got, want64, func(i, n int) float64 {
		var mag, tiny float64
		for k := 0; k < s.K; k++ {
			xv, wv := float64(x[i*s.K+k]), float64(deq[n*s.K+k])
			mag += math.Abs(xv * wv)
			tiny += math.Abs(xv) + math.Abs(wv) + 1
		}
		return gamma*mag + eta*tiny + 1e-30
	})
}

// Within checks got, s.M×s.N outputs, against want within bound, output by output: a NaN or a
// miss fails, and the error names the first miss and how many outputs missed.
func Within(name string, s Shape, got []float32, want, bound func(i, n int) float64) error {
	bad := 0
	var first error
	for i := 0; i < s.M; i++ {
		for n := 0; n < s.N; n++ {
			g, w, b := float64(got[i*s.N+n]), want(i, n), bound(i, n)
			if math.IsNaN(g) || math.Abs(g-w) > b {
				bad++
				if first == nil {
					first = fmt.Errorf("%s: y[%d][%d] = %g, want %g (|diff| %.3g > bound %.3g)", name, i, n, g, w, math.Abs(g-w), b)
				}
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w (%d of %d outputs wrong)", first, bad, s.M*s.N)
	}
	return nil
}

func testShapeErrors(t *testing.T, b backend.Backend) {
	q, err := quant.Quantize("shape-check", make([]float32, 8*40), 8, 40, quant.Q4, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Upload(q)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer w.Release()
	for _, c := range []struct {
		dst, x, m int
	}{{8, 39, 1}, {7, 40, 1}, {16, 40, 2}, {0, 0, 0}} {
		err := b.MatMul(make([]float32, c.dst), make([]float32, c.x), w, c.m)
		if !errors.Is(err, backend.ErrShape) {
			t.Errorf("MatMul(dst %d, x %d, m %d) on 8×40: got %v, want an error wrapping ErrShape", c.dst, c.x, c.m, err)
		}
	}
}
