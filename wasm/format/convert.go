package format

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/x448/float16"
)

// Float32 decodes every element to float32 in row-major order. Integers convert by value (large
// int32/int64 lose precision), Bool gives 0 or 1, TF.js affine tensors give q·Scale + Min, and
// Q4_0/Q8_0 blocks are dequantized exactly as ggml does.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.checkData(); err != nil {
		return nil, err
	}
	dst := make([]float32, t.NumElements())
	return dst, t.DecodeFloat32(dst)
}

// DecodeFloat32 is Float32 into a caller's slice of exactly NumElements values.
func (t *Tensor) DecodeFloat32(dst []float32) error {
	if err := t.checkData(); err != nil {
		return err
	}
	if int64(len(dst)) != t.NumElements() {
		return fmt.Errorf("format: tensor %q: decode into %d values, want %d", t.Name, len(dst), t.NumElements())
	}
	b := t.Data
	if a := t.Affine; a != nil {
		for i := range dst {
			var q float64
			switch t.DType {
			case U8:
				q = float64(b[i])
			case U16:
				q = float64(binary.LittleEndian.Uint16(b[2*i:]))
			default:
				return fmt.Errorf("format: tensor %q: %w: affine dequantization of %v", t.Name, ErrUnsupported, t.DType)
			}
			v := q*a.Scale + a.Min
			if a.Int {
				v = math.Round(v)
			}
			dst[i] = float32(v)
		}
		return nil
	}
	switch t.DType {
	case F32:
		for i := range dst {
			dst[i] = f32frombits(b[4*i:])
		}
	case F16:
		decodeF16(dst, b)
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(b[i]))
		}
	case U8, Bool:
		for i := range dst {
			dst[i] = float32(b[i])
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = float32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(binary.LittleEndian.Uint64(b[8*i:]))
		}
	case F8E4M3:
		for i := range dst {
			dst[i] = e4m3(b[i])
		}
	case F8E5M2:
		tab := f16Table()
		for i := range dst {
			dst[i] = tab[uint16(b[i])<<8]
		}
	case Q8_0:
		DecodeQ8_0(dst, b)
	case Q4_0:
		DecodeQ4_0(dst, b)
	default:
		return fmt.Errorf("format: tensor %q: %w: data type %v", t.Name, ErrUnsupported, t.DType)
	}
	return nil
}

// decodeF16 is the streaming loader's hot loop (every fp16 weight passes through it, in wasm on
// one thread): four halves per 64-bit load, with the slices resliced to whole quads so the
// compiler drops the per-element bounds checks that a Uint16(b[2*i:]) per value costs.
func decodeF16(dst []float32, b []byte) {
	tab := f16Table()
	n := len(dst) &^ 3
	quads, b4 := dst[:n], b[:2*n]
	for i := 0; i+4 <= len(quads); i += 4 {
		u := binary.LittleEndian.Uint64(b4[2*i:])
		d := quads[i : i+4 : i+4]
		d[0] = tab[uint16(u)]
		d[1] = tab[uint16(u>>16)]
		d[2] = tab[uint16(u>>32)]
		d[3] = tab[uint16(u>>48)]
	}
	for i := n; i < len(dst); i++ {
		dst[i] = tab[binary.LittleEndian.Uint16(b[2*i:])]
	}
}

// checkData makes sure Data is exactly as long as the shape and type say, so the decoders below
// can index without bounds surprises even on hand-built Tensors.
func (t *Tensor) checkData() error {
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = int64(d)
	}
	lim := (&Limits{MaxDims: len(dims) + 1}).withDefaults()
	_, _, size, err := checkShape(dims, t.DType, &lim)
	if err != nil {
		return fmt.Errorf("format: tensor %q: %w", t.Name, err)
	}
	if t.Affine != nil {
		_, es := t.DType.blockShape()
		size = t.NumElements() * es
	}
	if int64(len(t.Data)) != size {
		return fmt.Errorf("format: tensor %q: %w: %d bytes of data for %v %v (want %d)", t.Name, ErrCorrupt, len(t.Data), t.DType, t.Shape, size)
	}
	return nil
}

// f16Table maps every half-precision bit pattern to its float32 value. 256 KiB, built on first
// use: a table lookup is several times faster than converting bit fields per element, and f16
// checkpoints are the common case.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return &t
})

// e4m3 decodes float8 e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is
// subnormal, and all-ones exponent and mantissa is NaN (the format has no infinities).
func e4m3(v byte) float32 {
	e, m := int(v>>3)&0xF, float64(v&7)
	var x float64
	switch {
	case e == 15 && m == 7:
		return float32(math.NaN())
	case e == 0:
		x = m / 8 * math.Ldexp(1, -6)
	default:
		x = (1 + m/8) * math.Ldexp(1, e-7)
	}
	if v&0x80 != 0 {
		x = -x
	}
	return float32(x)
}

// DecodeQ8_0 dequantizes whole Q8_0 blocks from src into dst (len(dst) a multiple of 32).
func DecodeQ8_0(dst []float32, src []byte) {
	tab := f16Table()
	for b := 0; b < len(dst)/BlockElems; b++ {
		blk := (*[Q8_0BlockBytes]byte)(src[b*Q8_0BlockBytes:])
		out := (*[BlockElems]float32)(dst[b*BlockElems:])
		d := tab[uint16(blk[0])|uint16(blk[1])<<8]
		for j := range out {
			out[j] = d * float32(int8(blk[2+j]))
		}
	}
}

// DecodeQ4_0 dequantizes whole Q4_0 blocks from src into dst (len(dst) a multiple of 32).
func DecodeQ4_0(dst []float32, src []byte) {
	tab := f16Table()
	for b := 0; b < len(dst)/BlockElems; b++ {
		// Fixed-size views let the compiler drop the bounds checks in the inner loop.
		blk := (*[Q4_0BlockBytes]byte)(src[b*Q4_0BlockBytes:])
		out := (*[BlockElems]float32)(dst[b*BlockElems:])
		d := tab[uint16(blk[0])|uint16(blk[1])<<8]
		for j := 0; j < 16; j++ {
			q := blk[2+j]
			out[j] = d * float32(int(q&0xF)-8)
			out[j+16] = d * float32(int(q>>4)-8)
		}
	}
}

// Quant returns the tensor as a quant.Tensor of N rows of K, K being the innermost dimension and
// N the product of the others (1 for a vector). Q4_0 and Q8_0 map losslessly onto symmetric int4
// and int8 with groups of 32 and f16 scales; F16 and F32 map onto Bits 16 and 32. Other types
// return ErrUnsupported: quantize their Float32 values instead.
func (t *Tensor) Quant() (*quant.Tensor, error) {
	if err := t.checkData(); err != nil {
		return nil, err
	}
	if len(t.Shape) == 0 || t.NumElements() == 0 {
		return nil, fmt.Errorf("format: tensor %q: shape %v is not a matrix or vector with elements", t.Name, t.Shape)
	}
	if t.Affine != nil {
		return nil, fmt.Errorf("format: tensor %q: %w: affine %v has no quant layout", t.Name, ErrUnsupported, t.DType)
	}
	k := t.Shape[len(t.Shape)-1]
	n := int(t.NumElements()) / k
	if err := t.checkFinite(k); err != nil {
		return nil, err
	}
	q := &quant.Tensor{Name: t.Name, N: n, K: k}
	switch t.DType {
	case F32, F16:
		bits, es := 32, 4
		if t.DType == F16 {
			bits, es = 16, 2
		}
		q.Format = quant.Format{Bits: bits}
		rs := q.RowStride(k)
		if rs == k*es {
			q.Data = t.Data
			return q, nil
		}
		// Odd-length f16 rows are padded to 4 bytes in quant's layout.
		q.Data = make([]byte, n*rs)
		for r := 0; r < n; r++ {
			copy(q.Data[r*rs:], t.Data[r*k*es:(r+1)*k*es])
		}
		return q, nil
	case Q8_0:
		q.Format = quant.Format{Bits: 8, Scheme: quant.Symmetric, GroupSize: BlockElems, Scales: quant.ScaleF16}
	case Q4_0:
		q.Format = quant.Format{Bits: 4, Scheme: quant.Symmetric, GroupSize: BlockElems, Scales: quant.ScaleF16}
	default:
		return nil, fmt.Errorf("format: tensor %q: %w: %v has no lossless quant layout", t.Name, ErrUnsupported, t.DType)
	}
	blocks := n * k / BlockElems
	rs := q.RowStride(k) // k is a multiple of 32, so rows need no padding
	q.Data = make([]byte, n*rs)
	q.Scales = make([]byte, 2*blocks)
	for b := 0; b < blocks; b++ {
		if t.DType == Q8_0 {
			blk := t.Data[b*Q8_0BlockBytes : (b+1)*Q8_0BlockBytes]
			copy(q.Scales[2*b:], blk[:2])
			copy(q.Data[b*BlockElems:], blk[2:])
			continue
		}
		blk := t.Data[b*Q4_0BlockBytes : (b+1)*Q4_0BlockBytes]
		copy(q.Scales[2*b:], blk[:2])
		// GGUF: byte j = element j (low) | element j+16 (high), unsigned with offset 8.
		// nibble: byte i = element 2i (low) | element 2i+1 (high), signed two's complement.
		// q−8 in 4-bit two's complement is q XOR 8.
		// So output byte i < 8 pairs the low nibbles of source bytes 2i and 2i+1, output byte
		// 8+i their high nibbles, and XOR 0x88 flips both codes at once.
		out := q.Data[b*BlockElems/2 : (b+1)*BlockElems/2]
		src := blk[2:]
		for i := range 8 {
			a, c := src[2*i], src[2*i+1]
			out[i] = (a&0x0F | c<<4) ^ 0x88
			out[8+i] = (a>>4 | c&0xF0) ^ 0x88
		}
	}
	return q, nil
}

// checkFinite rejects the NaN and infinite values Quant would map as they are: F32 and F16
// elements, and the f16 scales of Q4_0 and Q8_0 blocks (a NaN scale makes its 32 weights NaN).
// Decoded types are checked where they are quantized (quant.QuantizeRows).
func (t *Tensor) checkFinite(k int) error {
	// step is the bytes from one checked value to the next, at is its position, mask its
	// exponent bits (all ones: NaN or Inf).
	var step, elems int
	var mask uint32
	switch t.DType {
	case F32:
		step, elems, mask = 4, 1, 0x7F800000
	case F16:
		step, elems, mask = 2, 1, 0x7C00
	case Q8_0:
		step, elems, mask = Q8_0BlockBytes, BlockElems, 0x7C00
	case Q4_0:
		step, elems, mask = Q4_0BlockBytes, BlockElems, 0x7C00
	default:
		return nil
	}
	b := t.Data
	for i := 0; i+step <= len(b); i += step {
		v := uint32(b[i]) | uint32(b[i+1])<<8
		if step == 4 {
			v |= uint32(b[i+2])<<16 | uint32(b[i+3])<<24
		}
		if v&mask == mask {
			e := i / step * elems
			what := "value"
			if elems > 1 {
				what = "block scale"
			}
			return fmt.Errorf("format: tensor %q: row %d column %d: %w: %w: %s %#x is NaN or infinite", t.Name, e/k, e%k, ErrCorrupt, quant.ErrNotFinite, what, v)
		}
	}
	return nil
}
