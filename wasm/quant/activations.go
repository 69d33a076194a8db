package quant

import (
	"fmt"
	"math"
)

// Int8 activations: the reference of the GPU's GEMV with activations rounded to int8 per block
// (shaders/gemv_a8.wgsl, the WebGPU backend's Options.Int8Activations), the precision mode that
// lets a GEMV use packed 4×8-bit integer dot products.

// ActivationBlock is how many activations share one int8 scale for weights of bits bits: one
// vec4<u32> load of a row of 8-bit codes (16), else 32.
func ActivationBlock(bits int) int {
	if bits == 8 {
		return 16
	}
	return 32
}

// Int8ActivationsFit reports whether weights of format f can run with int8 activations: codes
// (2, 4 or 8 bits) whose groups are whole activation blocks, or per-channel, so that every block
// meets one weight scale.
func Int8ActivationsFit(f Format) bool {
	if !f.Quantized() {
		return false
	}
	return f.GroupSize == 0 || f.GroupSize%ActivationBlock(f.Bits) == 0
}

// NearHalf bounds how far a GPU's x·inv may lie from the reference's, relative to |x·inv|: the
// GPU's 127/amax is within 2.5 ULP of the quotient (WGSL's division; the reference's within 0.5),
// so the two differ by 3·2⁻²³ at most, and the GPU may round the product before the rounding add
// (2⁻²⁴): 3.5·2⁻²³ < 2⁻²¹. A code whose x·inv lies that close to a half-integer may round
// either way on a GPU.
const NearHalf = 0x1p-21

// tinyBlock is the amax below which a block quantizes to zeros (127/amax would overflow).
const tinyBlock = 0x1p-120

// inv127 is float32(1/127), the float a block's amax is multiplied by for its scale.
var inv127 = float32(1.0 / 127)

// Int8Rows are M rows of K activations quantized to int8 in blocks of Block elements from
// each row's start (the last block short). For a block with amax = max |x_i|:
//
//	d   = float32(amax · float32(1/127))
//	inv = float32(127 / amax), 0 where amax < 2⁻¹²⁰
//	q_i = roundHalfEven(x_i · inv), the product exact
//
// so |q_i| ≤ 127 and, on a GPU whose division is within 2.5 ULP, |x_i − d·q_i| ≤ d·(½ + 2⁻¹³)
// (½ from the rounding, 2⁻¹³ > 127·3.5·2⁻²³ + 2⁻¹⁷ from the scales' roundings) where amax ≥ 2⁻¹²⁰.
// A product with these activations is then within Σ_i |w_i|·d·(½ + 2⁻¹³) of the exact one,
// plus the kernels' float rounding (A8Product.Bound).
type Int8Rows struct {
	M, K, Block int
	Codes       []int8    // M×K
	Scales      []float32 // M×Blocks(): d of each block
	// Near marks the codes a GPU may round the other way (by one): x·inv within
	// NearHalf·|x·inv| of a half-integer.
	Near []bool
}

// Blocks is the number of blocks per row.
func (a *Int8Rows) Blocks() int { return (a.K + a.Block - 1) / a.Block }

// QuantizeActivations quantizes x (m rows of k) to int8 in blocks of block elements.
func QuantizeActivations(x []float32, m, k, block int) (*Int8Rows, error) {
	if m <= 0 || k <= 0 || block <= 0 || len(x) != m*k {
		return nil, fmt.Errorf("quantize activations: %d values for m = %d rows of k = %d (block %d): want m·k > 0 values and block > 0", len(x), m, k, block)
	}
	a := &Int8Rows{M: m, K: k, Block: block, Codes: make([]int8, m*k), Near: make([]bool, m*k)}
	nb := a.Blocks()
	a.Scales = make([]float32, m*nb)
	for i := 0; i < m; i++ {
		for b := 0; b < nb; b++ {
			lo, hi := i*k+b*block, i*k+min((b+1)*block, k)
			var amax float32
			for _, v := range x[lo:hi] {
				amax = max(amax, abs32(v))
			}
			a.Scales[i*nb+b] = amax * inv127
			var inv float32
			if amax >= tinyBlock {
				inv = 127 / amax
			}
			for j := lo; j < hi; j++ {
				v := float64(x[j]) * float64(inv) // exact: 24 × 24 bits
				a.Codes[j] = int8(math.RoundToEven(v))
				a.Near[j] = math.Abs(v-math.Floor(v)-0.5) <= NearHalf*math.Abs(v)
			}
		}
	}
	return a, nil
}

// A8Product is the reference product of int8 activations with quantized weights: per output,
// Σ over blocks of s·d·Σ q_i·(c_i − z) (the integer sums exact, the rest in float64), and what
// bounds a kernel's distance from it.
type A8Product struct {
	M, N, Blocks int
	Y            []float64 // M×N
	// Mag is Σ over blocks of |s·d·Σ q_i·(c_i − z)|: what the kernel's float roundings scale.
	Mag []float64
	// Near is Σ over the Near codes of |s·d·(c_i − z)|: what one code rounded the other way
	// changes.
	Near []float64
}

// MatMulA8 is the reference of the int8-activation GEMV: a's rows times w's rows.
func MatMulA8(a *Int8Rows, w *Tensor) (*A8Product, error) {
	if a.K != w.K {
		return nil, fmt.Errorf("matmul a8 %q: activations have K = %d, weights %d", w.Name, a.K, w.K)
	}
	if !Int8ActivationsFit(w.Format) || a.Block != ActivationBlock(w.Bits) {
		return nil, fmt.Errorf("matmul a8 %q: %v with activation blocks of %d: want codes whose groups are whole blocks of %d", w.Name, w.Format, a.Block, ActivationBlock(w.Bits))
	}
	nb := a.Blocks()
	p := &A8Product{M: a.M, N: w.N, Blocks: nb, Y: make([]float64, a.M*w.N), Mag: make([]float64, a.M*w.N), Near: make([]float64, a.M*w.N)}
	rs, gl, signed := w.RowStride(w.K), w.Group(w.K), w.Scheme == Symmetric
	c := make([]int64, w.K)
	for n := 0; n < w.N; n++ {
		row := w.Data[n*rs : (n+1)*rs]
		for k := range c {
			c[k] = int64(Code(row, w.Bits, k, signed) - w.Zero(n, k/gl))
		}
		for i := 0; i < a.M; i++ {
			var y, mag, near float64
			for b := 0; b < nb; b++ {
				lo, hi := b*a.Block, min((b+1)*a.Block, w.K)
				sd := float64(w.Scale(n, lo/gl)) * float64(a.Scales[i*nb+b])
				var s int64
				for k := lo; k < hi; k++ {
					s += int64(a.Codes[i*a.K+k]) * c[k]
					if a.Near[i*a.K+k] {
						near += math.Abs(sd * float64(c[k]))
					}
				}
				y += sd * float64(s)
				mag += math.Abs(sd * float64(s))
			}
			p.Y[i*w.N+n], p.Mag[i*w.N+n], p.Near[i*w.N+n] = y, mag, near
		}
	}
	return p, nil
}

// Bound is how far a float32 kernel's output (i, n) may lie from Y: each block's term is
// s·d (one rounding) times an exact integer sum, added with one rounding (an fma), and the Blocks
// terms summed in any order (Blocks − 1 roundings): (Blocks + 2)·2⁻²⁴·Mag, plus Near for codes
// rounded the other way.
func (p *A8Product) Bound(i, n int) float64 {
	j := i*p.N + n
	return float64(p.Blocks+2)*0x1p-24*p.Mag[j] + p.Near[j] + 1e-30
}

// ActivationError is the documented bound of what rounding the activations to int8 changes in
// a product with w (a.K == w.K), per output (M×N): Σ_i |w_i|·e_i with e_i = d·(½ + 2⁻¹³) of
// x_i's block, or |x_i| where the block's amax is below 2⁻¹²⁰ (quantized to zeros). A kernel's
// float roundings come on top (A8Product.Bound, backendtest's f32 bound).
func ActivationError(x []float32, a *Int8Rows, w *Tensor) []float64 {
	out := make([]float64, a.M*w.N)
	nb := a.Blocks()
	e := make([]float64, a.K)
	row := make([]float32, w.K)
	for i := 0; i < a.M; i++ {
		for k := range e {
			if d := a.Scales[i*nb+k/a.Block]; d >= tinyBlock*inv127 {
				e[k] = float64(d) * (0.5 + 0x1p-13)
			} else {
				e[k] = math.Abs(float64(x[i*a.K+k]))
			}
		}
		for n := 0; n < w.N; n++ {
			w.DequantizeRow(n, row)
			var s float64
			for k, v := range row {
				// DequantizeRow rounds s·(q−z) to float32: 2⁻²⁴ of it at most.
				s += math.Abs(float64(v)) * (1 + 0x1p-24) * e[k]
			}
			out[i*w.N+n] = s
		}
	}
	return out
}
