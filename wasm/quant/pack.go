package quant

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"
)

// PutCode stores the code q (already in [QMin, QMax]) as element i of a packed bit stream of
// width bits. Signed codes are stored in two's complement, truncated to bits.
func PutCode(dst []byte, bits, i, q int) {
	switch bits {
	case 8:
		dst[i] = byte(q)
	case 4:
		sh := uint(i&1) * 4
		dst[i>>1] = dst[i>>1]&^(0xF<<sh) | byte(q&0xF)<<sh
	case 2:
		sh := uint(i&3) * 2
		dst[i>>2] = dst[i>>2]&^(0x3<<sh) | byte(q&0x3)<<sh
	default:
		panic("quant: PutCode with bits not in {2,4,8}")
	}
}

// Code returns element i of a packed bit stream, sign-extended when signed is true.
func Code(src []byte, bits, i int, signed bool) int {
	var u int
	switch bits {
	case 8:
		u = int(src[i])
	case 4:
		u = int(src[i>>1]>>(uint(i&1)*4)) & 0xF
	case 2:
		u = int(src[i>>2]>>(uint(i&3)*2)) & 0x3
	default:
		panic("quant: Code with bits not in {2,4,8}")
	}
	if signed && u >= 1<<(bits-1) {
		u -= 1 << bits
	}
	return u
}

// Scale returns the scale of group g in row n.
func (t *Tensor) Scale(n, g int) float32 {
	i := n*t.Groups(t.K) + g
	if t.Format.Scales == ScaleF16 {
		return float16.Frombits(binary.LittleEndian.Uint16(t.Scales[2*i:])).Float32()
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(t.Scales[4*i:]))
}

// Zero returns the zero point of group g in row n (0 when symmetric).
func (t *Tensor) Zero(n, g int) int {
	if t.Scheme != Asymmetric || !t.Quantized() {
		return 0
	}
	zs := t.ZeroStride(t.K)
	return Code(t.Zeros[n*zs:(n+1)*zs], t.Bits, g, false)
}

// Q returns the stored code of weight (n, k).
func (t *Tensor) Q(n, k int) int {
	rs := t.RowStride(t.K)
	return Code(t.Data[n*rs:(n+1)*rs], t.Bits, k, t.Scheme == Symmetric)
}

func putScale(dst []byte, typ ScaleType, i int, s float32) {
	if typ == ScaleF16 {
		binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(s).Bits())
		return
	}
	binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(s))
}

// Largest scale magnitudes. A scale past its storage's range would be stored as Inf, and every
// weight of its group would dequantize to NaN (Inf·0) or Inf: a scale saturates instead, and the
// group's outliers clip. For float32 the bound leaves room for s·(q−z), |q−z| < 2⁸, to stay
// finite in the kernels' float32 arithmetic.
const (
	maxScaleF16 = 65504 // the largest finite IEEE half
	maxScaleF32 = math.MaxFloat32 / 256
)

// roundScale returns s as the scale type will store it, so codes are chosen against the scale
// the kernels will actually see: rounded to half for f16, and saturated (see maxScaleF16).
func roundScale(typ ScaleType, s float32) float32 {
	lim := float32(maxScaleF32)
	if typ == ScaleF16 {
		lim = maxScaleF16
	}
	s = max(-lim, min(lim, s)) // +Inf and -Inf (an overflowed hi−lo) saturate too
	if typ == ScaleF16 {
		return float16.Fromfloat32(s).Float32()
	}
	return s
}

// toHalf stores a weight as IEEE half, saturating at ±65504 rather than overflowing to ±Inf.
func toHalf(v float32) uint16 {
	return float16.Fromfloat32(max(-maxScaleF16, min(maxScaleF16, v))).Bits()
}
