package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/x448/float16"
)

// Options tune how codes are chosen. The zero value is plain min/max rounding.
type Options struct {
	// Search chooses each group's scale (and zero point) to minimise the squared error of the
	// group instead of mapping its extreme value onto the extreme code: candidate scales
	// (clipped ranges) are ranked by the error their codes give with a least-squares scale, as
	// llama.cpp's make_qx_quants ranks them, and the best is refitted (search.go). Same bytes,
	// same decode; never worse than plain rounding on the group. On USE-lite it reaches the
	// per-group optimum for q4 (0.943× plain rounding's rel RMS for q4-sym-g32), at about a
	// tenth of plain rounding's speed.
	Search bool
}

// Quantize packs the row-major n×k matrix w into format f. Bits 16 and 32 store w as half or
// float32 with no scales.
func Quantize(name string, w []float32, n, k int, f Format, opt Options) (*Tensor, error) {
	t, err := NewTensor(name, n, k, f)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if len(w) != n*k {
		return nil, fmt.Errorf("quantize %q: %d values for a %d×%d matrix (want %d)", name, len(w), n, k, n*k)
	}
	if err := QuantizeRows(t, 0, w, opt); err != nil {
		return nil, err
	}
	return t, nil
}

// NewTensor allocates a zeroed n×k tensor in format f, ready for QuantizeRows.
func NewTensor(name string, n, k int, f Format) (*Tensor, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("tensor %q: shape %d×%d: both dimensions must be positive", name, n, k)
	}
	t := &Tensor{Name: name, N: n, K: k, Format: f, Data: make([]byte, n*f.RowStride(k))}
	if f.Quantized() {
		t.Scales = make([]byte, n*f.Groups(k)*f.Scales.Size())
		if f.Scheme == Asymmetric {
			t.Zeros = make([]byte, n*f.ZeroStride(k))
		}
	}
	return t, nil
}

// TensorBytes is what Bytes will report for an n×k tensor in format f, before it exists.
func (f Format) TensorBytes(n, k int) int {
	size := n * f.RowStride(k)
	if f.Quantized() {
		size += n*f.Groups(k)*f.Scales.Size() + n*f.ZeroStride(k)
	}
	return size
}

// QuantizeRows quantizes len(w)/K whole rows into t starting at row row0, so a loader can fill
// a tensor chunk by chunk with no intermediate tensor. The result is byte-identical to
// quantizing the whole matrix at once: groups never span rows.
func QuantizeRows(t *Tensor, row0 int, w []float32, opt Options) error {
	if err := t.Check(); err != nil {
		return err
	}
	k, f := t.K, t.Format
	if len(w)%k != 0 {
		return fmt.Errorf("quantize %q: %d values are not whole rows of %d", t.Name, len(w), k)
	}
	n := len(w) / k
	if row0 < 0 || row0+n > t.N {
		return fmt.Errorf("quantize %q: rows %d–%d outside the tensor's %d rows", t.Name, row0, row0+n, t.N)
	}
	rs := f.RowStride(k)
	switch f.Bits {
	case 32, 16:
		for r := 0; r < n; r++ {
			if c, ok := firstNotFinite(w[r*k : (r+1)*k]); !ok {
				return notFinite(t.Name, row0+r, c, w[r*k+c])
			}
			row := t.Data[(row0+r)*rs:]
			if f.Bits == 32 {
				for c, v := range w[r*k : (r+1)*k] {
					binary.LittleEndian.PutUint32(row[4*c:], math.Float32bits(v))
				}
				continue
			}
			for c, v := range w[r*k : (r+1)*k] {
				binary.LittleEndian.PutUint16(row[2*c:], toHalf(v))
			}
		}
		return nil
	}
	groups, gl := f.Groups(k), f.Group(k)
	zs := f.ZeroStride(k)
	fast := fastSymmetric(f, opt)
	var codes []int
	for r := 0; r < n; r++ {
		row := w[r*k : (r+1)*k]
		data := t.Data[(row0+r)*rs : (row0+r+1)*rs]
		for g := 0; g < groups; g++ {
			lo, hi := g*gl, min((g+1)*gl, k)
			if fast {
				if s, ok := symmetricGroupFast(row[lo:hi], f, data[lo*f.Bits/8:]); ok {
					putScale(t.Scales, f.Scales, (row0+r)*groups+g, s)
					continue
				}
			}
			if codes == nil {
				codes = make([]int, gl)
			}
			if c, ok := firstNotFinite(row[lo:hi]); !ok {
				return notFinite(t.Name, row0+r, lo+c, row[lo+c])
			}
			s, z := quantizeGroup(row[lo:hi], f, opt, codes[:hi-lo])
			putScale(t.Scales, f.Scales, (row0+r)*groups+g, s)
			if f.Scheme == Asymmetric {
				PutCode(t.Zeros[(row0+r)*zs:(row0+r+1)*zs], f.Bits, g, z)
			}
			packCodes(data, f.Bits, lo, codes[:hi-lo])
		}
	}
	return nil
}

// packCodes writes codes starting at element start, which is byte-aligned: groups are multiples
// of 8 weights, so every group starts on a whole byte for 2, 4 and 8 bits. A trailing partial
// byte only happens at the end of a row, where the remaining bits are padding and set to zero.
func packCodes(dst []byte, bits, start int, q []int) {
	switch bits {
	case 8:
		d := dst[start : start+len(q)]
		for i, c := range q {
			d[i] = byte(c)
		}
	case 4:
		d := dst[start/2:]
		i := 0
		for ; i+2 <= len(q); i += 2 {
			d[i/2] = byte(q[i]&0xF) | byte(q[i+1]&0xF)<<4
		}
		if i < len(q) {
			d[i/2] = byte(q[i] & 0xF)
		}
	case 2:
		d := dst[start/4:]
		i := 0
		for ; i+4 <= len(q); i += 4 {
			d[i/4] = byte(q[i]&3) | byte(q[i+1]&3)<<2 | byte(q[i+2]&3)<<4 | byte(q[i+3]&3)<<6
		}
		if i < len(q) {
			var b byte
			for j := i; j < len(q); j++ {
				b |= byte(q[j]&3) << (2 * uint(j-i))
			}
			d[i/4] = b
		}
	}
}

// quantizeGroup chooses a scale, zero point and codes for one group of finite weights. The
// returned scale is already rounded to the scale type; codes are chosen against that rounded
// scale.
func quantizeGroup(x []float32, f Format, opt Options, q []int) (float32, int) {
	if f.Scheme == Symmetric {
		return symmetricGroup(x, f, opt, q), 0
	}
	return asymmetricGroup(x, f, opt, q)
}

// ErrNotFinite (an errs.ErrFormat) is wrapped when a weight is NaN or infinite, in every format,
// float32 and f16 included: no scale can represent it, and a model that holds one computes NaN.
var ErrNotFinite = errs.New(errs.ErrFormat, "quant: weight is not finite")

// firstNotFinite returns the index of the first NaN or ±Inf in x, and false, if there is one.
func firstNotFinite(x []float32) (int, bool) {
	for i, v := range x {
		// With the sign cleared, every non-finite value's bits are at least +Inf's.
		if math.Float32bits(v)&f32AbsMask >= f32InfBits {
			return i, false
		}
	}
	return 0, true
}

func notFinite(tensor string, row, col int, v float32) error {
	return fmt.Errorf("quantize %q: row %d column %d: %w: %v (the file holds a NaN or infinite weight)", tensor, row, col, ErrNotFinite, v)
}

// assign fills q with the codes nearest x/s + z and returns the squared error they give.
func assign(x []float32, s float32, z, qmin, qmax int, q []int) float64 {
	codes(x, s, z, qmin, qmax, q)
	var sse float64
	for i, v := range x {
		d := float64(v) - float64(s*float32(q[i]-z))
		sse += d * d
	}
	return sse
}

// codes fills q with clamp(round(x/s) + z): the one rounding rule every path uses, so plain and
// searched quantization agree on the codes for a given scale.
func codes(x []float32, s float32, z, qmin, qmax int, q []int) {
	if s == 0 {
		for i := range x {
			q[i] = z
		}
		return
	}
	inv := 1 / s
	// Clamp before rounding so the magic-number rounding below stays exact (|y| < 2²²).
	lo, hi := float32(qmin-z-1), float32(qmax-z+1)
	for i, v := range x {
		y := v * inv
		if y < lo {
			y = lo
		} else if y > hi {
			y = hi
		}
		// Adding and removing 1.5·2²³ rounds a float32 to the nearest integer, ties to even,
		// without a call: Go evaluates float32 expressions in float32.
		c := int((y+0x1.8p23)-0x1.8p23) + z
		q[i] = max(qmin, min(qmax, c))
	}
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
	if !opt.Search || m == 0 {
		codes(x, s, 0, qmin, qmax, q)
		return s
	}
	return searchSymmetric(x, f, m, s, q)
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
	if !opt.Search || hi == lo {
		codes(x, s, z, 0, qmax, q)
		return s, z
	}
	return searchAsymmetric(x, f, lo, hi, s, z, q)
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
