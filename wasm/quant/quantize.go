package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Options tune how codes are chosen. The zero value is plain min/max rounding.
type Options struct {
	// Search chooses each group's scale (and zero point) to minimise the squared error of the
	// group instead of mapping its extreme value onto the extreme code. It tries a small grid of
	// clipped ranges, then refits the scale by least squares for the chosen codes, as llama.cpp's
	// make_qx_quants does. Slower to quantize, never worse than plain rounding on the group.
	Search bool
}

// Quantize packs the row-major n×k matrix w into format f. Bits 16 and 32 store w as half or
// float32 with no scales.
func Quantize(name string, w []float32, n, k int, f Format, opt Options) (*Tensor, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("quantize %q: %w", name, err)
	}
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("quantize %q: shape %d×%d: both dimensions must be positive", name, n, k)
	}
	if len(w) != n*k {
		return nil, fmt.Errorf("quantize %q: %d values for a %d×%d matrix (want %d)", name, len(w), n, k, n*k)
	}
	t := &Tensor{Name: name, N: n, K: k, Format: f}
	rs := f.RowStride(k)
	t.Data = make([]byte, n*rs)
	switch f.Bits {
	case 32:
		for i, v := range w {
			binary.LittleEndian.PutUint32(t.Data[(i/k)*rs+4*(i%k):], math.Float32bits(v))
		}
		return t, nil
	case 16:
		for i, v := range w {
			binary.LittleEndian.PutUint16(t.Data[(i/k)*rs+2*(i%k):], float16.Fromfloat32(v).Bits())
		}
		return t, nil
	}
	groups, gl := f.Groups(k), f.Group(k)
	zs := f.ZeroStride(k)
	t.Scales = make([]byte, n*groups*f.Scales.Size())
	if f.Scheme == Asymmetric {
		t.Zeros = make([]byte, n*zs)
	}
	codes := make([]int, gl)
	for r := 0; r < n; r++ {
		row := w[r*k : (r+1)*k]
		data := t.Data[r*rs : (r+1)*rs]
		for g := 0; g < groups; g++ {
			lo, hi := g*gl, min((g+1)*gl, k)
			s, z := quantizeGroup(row[lo:hi], f, opt, codes[:hi-lo])
			putScale(t.Scales, f.Scales, r*groups+g, s)
			if f.Scheme == Asymmetric {
				PutCode(t.Zeros[r*zs:(r+1)*zs], f.Bits, g, z)
			}
			for j, q := range codes[:hi-lo] {
				PutCode(data, f.Bits, lo+j, q)
			}
		}
	}
	return t, nil
}

// quantizeGroup chooses a scale, zero point and codes for one group. The returned scale is
// already rounded to the scale type; codes are chosen against that rounded scale.
func quantizeGroup(x []float32, f Format, opt Options, q []int) (float32, int) {
	if f.Scheme == Symmetric {
		return symmetricGroup(x, f, opt, q), 0
	}
	return asymmetricGroup(x, f, opt, q)
}

// assign fills q with the codes nearest x/s + z and returns the squared error they give.
func assign(x []float32, s float32, z, qmin, qmax int, q []int) float64 {
	var sse float64
	if s == 0 {
		for i, v := range x {
			q[i] = z
			sse += float64(v) * float64(v)
		}
		return sse
	}
	inv := 1 / float64(s)
	for i, v := range x {
		c := int(math.RoundToEven(float64(v)*inv)) + z
		c = max(qmin, min(qmax, c))
		q[i] = c
		d := float64(v) - float64(s*float32(c-z))
		sse += d * d
	}
	return sse
}

// refit returns the least-squares scale for fixed codes: Σ x(q−z) / Σ (q−z)².
func refit(x []float32, q []int, z int) float32 {
	var num, den float64
	for i, v := range x {
		c := float64(q[i] - z)
		num += float64(v) * c
		den += c * c
	}
	if den == 0 {
		return 0
	}
	return float32(num / den)
}

func symmetricGroup(x []float32, f Format, opt Options, q []int) float32 {
	qmin, qmax := f.QMin(), f.QMax()
	// The element of largest magnitude, with its sign: mapping it onto qmin (the code with the
	// larger magnitude) uses the whole signed range, as llama.cpp's Q4_0 does.
	var m float32
	for _, v := range x {
		if abs32(v) > abs32(m) {
			m = v
		}
	}
	s := roundScale(f.Scales, m/float32(qmin))
	best := assign(x, s, 0, qmin, qmax, q)
	if !opt.Search || m == 0 {
		return s
	}
	trial := make([]int, len(q))
	try := func(c float32) {
		c = roundScale(f.Scales, c)
		if c == 0 || c == s {
			return
		}
		if e := assign(x, c, 0, qmin, qmax, trial); e < best {
			best, s = e, c
			copy(q, trial)
		}
	}
	nmax := float32(-qmin)
	for is := -9; is <= 9; is++ {
		// Candidate: the extreme maps to a slightly larger or smaller code than qmin, then the
		// scale is refitted to the codes that candidate produced.
		c := m / -(nmax + 0.1*float32(is))
		assign(x, roundScale(f.Scales, c), 0, qmin, qmax, trial)
		try(c)
		try(refit(x, trial, 0))
	}
	// Alternate refit and reassignment while it helps.
	for range 3 {
		c := roundScale(f.Scales, refit(x, q, 0))
		if c == 0 || c == s {
			break
		}
		if e := assign(x, c, 0, qmin, qmax, trial); e < best {
			best, s = e, c
			copy(q, trial)
		} else {
			break
		}
	}
	return s
}

func asymmetricGroup(x []float32, f Format, opt Options, q []int) (float32, int) {
	qmax := f.QMax()
	// The range always holds 0 so that zero weights (and constant groups) stay exact.
	var lo, hi float32
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	zeroFor := func(s float32, lo float32) int {
		if s == 0 {
			return 0
		}
		return max(0, min(qmax, int(math.RoundToEven(float64(-lo/s)))))
	}
	s := roundScale(f.Scales, (hi-lo)/float32(qmax))
	z := zeroFor(s, lo)
	best := assign(x, s, z, 0, qmax, q)
	if !opt.Search || hi == lo {
		return s, z
	}
	trial := make([]int, len(q))
	try := func(c float32, cz int) {
		c = roundScale(f.Scales, c)
		if c <= 0 || cz < 0 || cz > qmax {
			return
		}
		if e := assign(x, c, cz, 0, qmax, trial); e < best {
			best, s, z = e, c, cz
			copy(q, trial)
		}
	}
	// Shrink the range from either end (clipping outliers), refit each candidate's scale to its
	// codes, and try the zero points beside the refitted one. A 4×4 grid keeps this within a
	// few times the cost of plain rounding while catching most of the gain of a finer one.
	shrink := []float32{0, 0.04, 0.1, 0.2}
	for _, a := range shrink {
		for _, b := range shrink {
			l, h := lo*(1-a), hi*(1-b)
			c := roundScale(f.Scales, (h-l)/float32(qmax))
			if c <= 0 {
				continue
			}
			cz := zeroFor(c, l)
			try(c, cz)
			assign(x, c, cz, 0, qmax, trial)
			c = refit(x, trial, cz)
			for dz := -1; dz <= 1; dz++ {
				try(c, cz+dz)
			}
		}
	}
	return s, z
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// DequantizeRow writes row n of t as float32 into dst (len ≥ K). Each weight is s·(q−z) computed
// in float32, exactly as the kernels compute it.
func (t *Tensor) DequantizeRow(n int, dst []float32) {
	rs := t.RowStride(t.K)
	row := t.Data[n*rs : (n+1)*rs]
	switch t.Bits {
	case 32:
		for k := 0; k < t.K; k++ {
			dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(row[4*k:]))
		}
		return
	case 16:
		for k := 0; k < t.K; k++ {
			dst[k] = float16.Frombits(binary.LittleEndian.Uint16(row[2*k:])).Float32()
		}
		return
	}
	gl, signed := t.Group(t.K), t.Scheme == Symmetric
	for g := 0; g*gl < t.K; g++ {
		s, z := t.Scale(n, g), t.Zero(n, g)
		for k := g * gl; k < min((g+1)*gl, t.K); k++ {
			dst[k] = s * float32(Code(row, t.Bits, k, signed)-z)
		}
	}
}

// Dequantize returns the whole matrix as row-major float32.
func Dequantize(t *Tensor) []float32 {
	out := make([]float32, t.N*t.K)
	for n := 0; n < t.N; n++ {
		t.DequantizeRow(n, out[n*t.K:(n+1)*t.K])
	}
	return out
}

// MatMul is the reference product y[m×N] = x[m×K] · dequant(w)ᵀ, accumulated in float64.
func MatMul(x []float32, m int, w *Tensor) ([]float32, error) {
	if m <= 0 {
		return nil, fmt.Errorf("matmul %q: m = %d rows: must be positive", w.Name, m)
	}
	if len(x) != m*w.K {
		return nil, fmt.Errorf("matmul %q: x has %d values, want m×K = %d×%d = %d", w.Name, len(x), m, w.K, m*w.K)
	}
	y := make([]float32, m*w.N)
	row := make([]float32, w.K)
	for n := 0; n < w.N; n++ {
		w.DequantizeRow(n, row)
		for i := 0; i < m; i++ {
			xi := x[i*w.K : (i+1)*w.K]
			var acc float64
			for k, v := range row {
				acc += float64(xi[k]) * float64(v)
			}
			y[i*w.N+n] = float32(acc)
		}
	}
	return y, nil
}
