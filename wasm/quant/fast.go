package quant

import (
	"encoding/binary"
	"math"
)

// The plain symmetric path (no Search) is what a streaming load runs on every weight, in wasm,
// on one thread. It computes exactly what quantizeGroup, symmetricGroup and codes compute for
// that case, in one scan and one pack per group with no []int code buffer. Go's wasm code pays
// an indirect jump (br_table) for every branch and a call-sized sequence for float→int, so the
// hot loops have neither:
//   - the NaN/Inf check rides on the max-magnitude scan: on the bits with the sign cleared,
//     every non-finite value compares above every finite one, so the group is finite iff its
//     largest |bits| is below +Inf's. A group that fails goes to the generic path for the error.
//   - rounding is codes' 1.5·2²³ trick, but the integer is read from the sum's low mantissa
//     bits instead of converting back, and clamped there with integer min/max (wasm select).
// Groups whose scale went so wrong that |x/s| may reach 2²² (1/s overflows for a subnormal s),
// or whose length is not a multiple of 8 (only a per-channel group over an odd row), take the
// generic path too, so their bytes stay whatever the reference gives.

const (
	roundMagic = 0x1.8p23 // adding and removing it rounds a float32 to an integer, ties to even
	f32AbsMask = 1<<31 - 1
	f32InfBits = 0x7F800000
)

// fastSymmetric reports whether quantizeSymmetricFast handles format f with options opt.
func fastSymmetric(f Format, opt Options) bool {
	return f.Scheme == Symmetric && !opt.Search && (f.Bits == 2 || f.Bits == 4 || f.Bits == 8)
}

// symmetricGroupFast quantizes one group into its packed bytes dst (len(x)·bits/8) and returns
// its rounded scale. ok is false when the group must take the generic path instead; dst is then
// untouched.
func symmetricGroupFast(x []float32, f Format, dst []byte) (s float32, ok bool) {
	if len(x)%8 != 0 || len(x) > 1<<32-1 {
		return 0, false
	}
	// The first element of largest magnitude, branch-free: Go's wasm code pays an indirect jump
	// for every branch, while max on integers is one select. Ties go to the lower index, whose
	// complement is larger, as the reference's strict > keeps the first.
	var key uint64
	for i, v := range x {
		key = max(key, uint64(math.Float32bits(v)&f32AbsMask)<<32|uint64(^uint32(i)))
	}
	if key>>32 >= f32InfBits {
		return 0, false
	}
	m := x[^uint32(key)]
	qmin, qmax := f.QMin(), f.QMax()
	s = roundScale(f.Scales, m/float32(qmin))
	if s == 0 {
		// Every code is 0 (z), which packs to zero bytes whatever the width.
		clear(dst[:len(x)*f.Bits/8])
		return s, true
	}
	inv := 1 / s
	// Every |x·inv| is at most |m·inv| (rounding is monotonic), so this one check keeps the
	// magic-number rounding exact for the whole group. It fails only when the scale's own
	// rounding went badly wrong (1/s overflows for a subnormal s).
	if math.Float32bits(m*inv)&f32AbsMask >= 0x4A800000 { // 2²²
		return 0, false
	}
	r := rounder{inv: inv, lo: roundBias + uint32(qmin), hi: roundBias + uint32(qmax)}
	switch f.Bits {
	case 4:
		r.pack4(dst[:len(x)/2], x)
	case 8:
		d := dst[:len(x)]
		for i, v := range x {
			d[i] = byte(r.code(v))
		}
	case 2:
		d := dst[:len(x)/4]
		x = x[:4*len(d)]
		for i := range d {
			d[i] = byte(r.code(x[4*i])&3 | r.code(x[4*i+1])&3<<2 | r.code(x[4*i+2])&3<<4 | r.code(x[4*i+3])&3<<6)
		}
	}
	return s, true
}

// roundBias is the bits of 1.5·2²³: y + 1.5·2²³ has bits roundBias + round(y) for |y| < 2²²,
// and the low bits of that are round(y) in two's complement.
const roundBias = 0x4B400000

// rounder turns weights into codes without a branch or a float→int conversion (a call-sized
// sequence in Go's wasm code): scale, round with the magic number, clamp the bits.
type rounder struct {
	inv    float32
	lo, hi uint32 // roundBias + QMin, roundBias + QMax
}

// code returns roundBias + clamp(round(v·inv), QMin, QMax); its low bits are the packed code.
// Clamping after rounding equals the reference's clamping before: rounding is monotonic and
// fixes the integer bounds.
func (r rounder) code(v float32) uint32 {
	return min(max(math.Float32bits(v*r.inv+roundMagic), r.lo), r.hi)
}

// pack4 is the q4 inner loop: eight codes per 32-bit store, low nibble first.
func (r rounder) pack4(d []byte, x []float32) {
	for len(x) >= 8 && len(d) >= 4 {
		binary.LittleEndian.PutUint32(d, r.code(x[0])&0xF|r.code(x[1])&0xF<<4|r.code(x[2])&0xF<<8|r.code(x[3])&0xF<<12|
			r.code(x[4])&0xF<<16|r.code(x[5])&0xF<<20|r.code(x[6])&0xF<<24|r.code(x[7])<<28)
		x, d = x[8:], d[4:]
	}
}
