package format

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"
)

// Encoders from float32 to the stored types, used by tools/mkmodel and by tests. Each writes
// len(src) elements (whole blocks for Q4_0 and Q8_0) into dst, which must be large enough.

// EncodeF32 stores src as little-endian float32.
func EncodeF32(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// EncodeF16 stores src as IEEE half, rounding to nearest even.
func EncodeF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
	}
}

// EncodeBF16 stores src as bfloat16 (the top half of float32), rounding to nearest even; NaNs
// stay NaN.
func EncodeBF16(dst []byte, src []float32) {
	for i, v := range src {
		b := math.Float32bits(v)
		if v != v {
			b |= 1 << 22 // keep a quiet NaN from rounding into infinity
		} else {
			b += 0x7FFF + (b>>16)&1
		}
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(b>>16))
	}
}

// EncodeQ8_0 quantizes src (a multiple of 32 values) to Q8_0 blocks: d = max|x|/127, q = round(x/d).
func EncodeQ8_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/BlockElems; b++ {
		x := src[b*BlockElems : (b+1)*BlockElems]
		blk := dst[b*Q8_0BlockBytes : (b+1)*Q8_0BlockBytes]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(blk, float16.Fromfloat32(d).Bits())
		for j, v := range x {
			blk[2+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
}

// EncodeQ4_0 quantizes src (a multiple of 32 values) to Q4_0 blocks the way ggml does: the value
// of largest magnitude, with its sign, maps onto code 0 (−8·d), so d = −that/8, and
// q = min(15, ⌊x/d + 8.5⌋).
func EncodeQ4_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/BlockElems; b++ {
		x := src[b*BlockElems : (b+1)*BlockElems]
		blk := dst[b*Q4_0BlockBytes : (b+1)*Q4_0BlockBytes]
		var amax, m float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, m = a, v
			}
		}
		d := m / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(blk, float16.Fromfloat32(d).Bits())
		code := func(v float32) byte {
			return byte(min(15, max(0, int(v*id+8.5))))
		}
		for j := 0; j < 16; j++ {
			blk[2+j] = code(x[j]) | code(x[j+16])<<4
		}
	}
}
