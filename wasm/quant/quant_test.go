package quant

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

type golden struct {
	Why        string    `json:"why"`
	N          int       `json:"n"`
	K          int       `json:"k"`
	Bits       int       `json:"bits"`
	Scheme     string    `json:"scheme"`
	Group      int       `json:"group"`
	Scales     string    `json:"scales"`
	W          []float32 `json:"w"`
	Data       []byte    `json:"data"`
	ScaleBytes []byte    `json:"scale_bytes"`
	Zeros      []byte    `json:"zeros"`
	Deq        []float32 `json:"deq"`
}

// TestGolden checks the exact bytes of hand-worked cases (testdata/golden.json explains each).
func TestGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []golden
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		f := Format{Bits: c.Bits, GroupSize: c.Group}
		if c.Scheme == "asym" {
			f.Scheme = Asymmetric
		}
		if c.Scales == "f16" {
			f.Scales = ScaleF16
		}
		q, err := Quantize("golden", c.W, c.N, c.K, f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(q.Data, c.Data) || !slices.Equal(q.Scales, c.ScaleBytes) || !slices.Equal(q.Zeros, orNil(c.Zeros)) {
			t.Errorf("%s\n%v: data %v scales %v zeros %v\nwant data %v scales %v zeros %v", c.Why, f, q.Data, q.Scales, q.Zeros, c.Data, c.ScaleBytes, c.Zeros)
		}
		for i, v := range Dequantize(q) {
			if math.Abs(float64(v-c.Deq[i])) > 1e-6*math.Max(1, math.Abs(float64(c.Deq[i]))) {
				t.Errorf("%s\ndequantized[%d] = %v, want %v", c.Why, i, v, c.Deq[i])
			}
		}
	}
}

func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func randomMatrix(rng *rand.Rand, n, k int) []float32 {
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	return w
}

// allFormats is every quantized combination the package supports, plus f16 and f32 storage.
func allFormats() []Format {
	fs := []Format{{Bits: 16}, {Bits: 32}}
	for _, b := range []int{2, 4, 8} {
		for _, s := range []Scheme{Symmetric, Asymmetric} {
			for _, g := range []int{0, 16, 24, 32, 64, 128, 256} {
				for _, st := range []ScaleType{ScaleF32, ScaleF16} {
					fs = append(fs, Format{Bits: b, Scheme: s, GroupSize: g, Scales: st})
				}
			}
		}
	}
	return fs
}

// TestRoundTrip quantizes random matrices in every format, with K not a multiple of the group,
// and checks sizes, that every code lies in range, and that the error per group is within
// half a step of the group's scale (the rounding bound; clamping cannot exceed it for
// min/max rounding because the extremes map exactly onto codes).
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range allFormats() {
		for _, shape := range [][2]int{{1, 1}, {3, 7}, {5, 100}, {2, 257}, {4, 1000}} {
			n, k := shape[0], shape[1]
			w := randomMatrix(rng, n, k)
			q, err := Quantize("rt", w, n, k, f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Check(); err != nil {
				t.Fatal(err)
			}
			d := Dequantize(q)
			for r := 0; r < n; r++ {
				for c := 0; c < k; c++ {
					want, got := float64(w[r*k+c]), float64(d[r*k+c])
					var bound float64
					switch f.Bits {
					case 32:
						bound = 0
					case 16:
						bound = math.Abs(want)*0x1p-11 + 0x1p-25
					default:
						g := c / f.Group(k)
						code := q.Q(r, c)
						if code < f.QMin() || code > f.QMax() {
							t.Fatalf("%v %d×%d: code %d out of [%d, %d]", f, n, k, code, f.QMin(), f.QMax())
						}
						bound = asymBound(f, q, r, g, w[r*k:(r+1)*k])
					}
					if math.Abs(got-want) > bound {
						t.Fatalf("%v %d×%d: w[%d][%d] = %g → %g, error %g > bound %g", f, n, k, r, c, want, got, math.Abs(got-want), bound)
					}
				}
			}
		}
	}
}

// asymBound is the largest error plain rounding may leave in group g of a row: half a step, plus
// the error of rounding the scale to f16, which moves every code by up to |q−z|·Δs; for
// symmetric int2 the clamp of the opposite extreme can cost one whole step.
func asymBound(f Format, q *Tensor, r, g int, row []float32) float64 {
	s := math.Abs(float64(q.Scale(r, g)))
	lo, hi := g*f.Group(len(row)), min((g+1)*f.Group(len(row)), len(row))
	var maxAbs float64
	for _, v := range row[lo:hi] {
		maxAbs = math.Max(maxAbs, math.Abs(float64(v)))
	}
	steps := 0.5
	if f.Scheme == Symmetric {
		// The far extreme lands on +qmax while the scale was set for -qmin = qmax+1.
		steps = 1
	}
	slack := 1e-6 * maxAbs
	if f.Scales == ScaleF16 {
		slack += maxAbs * 0x1p-10
	}
	return steps*s + slack
}

func TestSearchNeverWorse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range allFormats() {
		if !f.Quantized() {
			continue
		}
		w := randomMatrix(rng, 8, 300)
		plain, _ := Quantize("p", w, 8, 300, f, Options{})
		searched, _ := Quantize("s", w, 8, 300, f, Options{Search: true})
		// Per group: search starts from the plain choice and only accepts improvements.
		dp, ds := Dequantize(plain), Dequantize(searched)
		gl := f.Group(300)
		for r := 0; r < 8; r++ {
			for g := 0; g*gl < 300; g++ {
				var ep, es float64
				for c := g * gl; c < min((g+1)*gl, 300); c++ {
					i := r*300 + c
					ep += sq(float64(dp[i] - w[i]))
					es += sq(float64(ds[i] - w[i]))
				}
				if es > ep*(1+1e-9) {
					t.Fatalf("%v row %d group %d: search error %g > plain %g", f, r, g, es, ep)
				}
			}
		}
		ep, _ := WeightError(w, plain)
		es, _ := WeightError(w, searched)
		if f.Bits <= 4 && es.SQNR <= ep.SQNR {
			t.Errorf("%v: search gained nothing on heavy-tailed data: %.2f dB vs %.2f dB", f, es.SQNR, ep.SQNR)
		}
	}
}

func sq(x float64) float64 { return x * x }

func TestMatMulMatchesFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	n, k, m := 7, 45, 3
	w := randomMatrix(rng, n, k)
	x := randomMatrix(rng, m, k)
	q, _ := Quantize("mm", w, n, k, Format{Bits: 32}, Options{})
	y, err := MatMul(x, m, q)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var acc float64
			for c := 0; c < k; c++ {
				acc += float64(x[i*k+c]) * float64(w[j*k+c])
			}
			if float32(acc) != y[i*n+j] {
				t.Fatalf("y[%d][%d] = %v, want %v", i, j, y[i*n+j], float32(acc))
			}
		}
	}
	if _, err := MatMul(x[:10], m, q); err == nil {
		t.Fatal("MatMul with a short x: want an error")
	}
}

func TestErrors(t *testing.T) {
	for _, f := range []Format{{Bits: 3}, {Bits: 4, GroupSize: 8}, {Bits: 4, GroupSize: 512}, {Bits: 4, GroupSize: 20}, {Bits: 4, Scheme: 7}} {
		if _, err := Quantize("bad", make([]float32, 64), 1, 64, f, Options{}); err == nil {
			t.Errorf("%+v: want an error", f)
		}
	}
	if _, err := Quantize("bad", make([]float32, 63), 1, 64, Q4, Options{}); err == nil {
		t.Error("63 values for 1×64: want an error")
	}
	q, _ := Quantize("ok", make([]float32, 64), 1, 64, Q4, Options{})
	q.Scales = q.Scales[:2]
	if err := q.Check(); err == nil {
		t.Error("truncated scales: Check wants an error")
	}
}

func TestCompare(t *testing.T) {
	e, _ := Compare([]float32{1, 0}, []float32{1, 0})
	if e.RelRMS != 0 || !math.IsInf(e.SQNR, 1) || e.Cosine != 1 {
		t.Fatalf("identical: %v", e)
	}
	e, _ = Compare([]float32{3, 4}, []float32{3, 3})
	if math.Abs(e.RelRMS-0.2) > 1e-12 || math.Abs(e.SQNR-10*math.Log10(25)) > 1e-9 || e.MaxAbs != 1 {
		t.Fatalf("3,4 vs 3,3: %v", e)
	}
	if _, err := Compare([]float32{1}, nil); err == nil {
		t.Fatal("length mismatch: want an error")
	}
}

// TestBytesAreExact checks Bytes against the layout arithmetic for a case worked by hand:
// 10×100 int4 asym group 32 with f16 scales: rows of 50 bytes padded to 52, 4 groups per row →
// 8 scale bytes, 4 zero points → 2 bytes padded to 4.
func TestBytesAreExact(t *testing.T) {
	q, _ := Quantize("b", make([]float32, 1000), 10, 100, Format{Bits: 4, Scheme: Asymmetric, GroupSize: 32, Scales: ScaleF16}, Options{})
	if got, want := q.Bytes(), 10*(52+8+4); got != want {
		t.Fatalf("Bytes() = %d, want %d", got, want)
	}
}
