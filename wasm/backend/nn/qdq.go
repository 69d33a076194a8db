package nn

import (
	"encoding/binary"
	"math"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Int4Policy says what the QDQ mode does with a Linear whose weight has 4 (or 2) bits. Chromium's
// TFLite backend fuses gemm only when the weight's codes have the activation's type (int8), and
// quantizeLinear cannot produce int4 activations, so no int4 form is fused (graph_builder_tflite.cc:
// "Support int4 quantization for b operand" is a TODO there).
type Int4Policy uint8

const (
	// Int4Widen (the default) requantizes the weight to int8 per-channel at Compile and runs it
	// fused: int8 speed, the graph holds int8 bytes (about twice the int4 ones), and the int8
	// rounding comes on top of the int4 one. Measured on the USE-lite-sized encoder it is 15×
	// faster than Int4Dequantize for one sentence (bench_js_test.go).
	Int4Widen Int4Policy = iota
	// Int4Dequantize keeps the int4 constants and the exact dequantizeLinear → gemm path: 4-bit
	// memory, float32 product plus a dequantize of the whole weight on every dispatch.
	Int4Dequantize
	// Int4QDQ writes the int4 weight per-channel in the QDQ form anyway. TFLite does not fuse it;
	// it exists to measure that (bench_js_test.go), not for use.
	Int4QDQ
)

func (p Int4Policy) String() string {
	switch p {
	case Int4Dequantize:
		return "int4-dequantize"
	case Int4QDQ:
		return "int4-qdq-unfused"
	}
	return "int4-widen-int8"
}

// CompileOptions choose how CompileWith lowers a graph. The zero value is Compile: every op in
// float32, quantized weights through dequantizeLinear, matching the cpu reference to the
// conformance bound.
type CompileOptions struct {
	// Calibration, if set, runs every Linear with a quantized weight that it has a range for in
	// TFLite's fusable QDQ form: x quantized to int8 per-tensor over its calibrated interval
	// (Interval.Int8), the weight int8 per-channel symmetric (perChannelSym), the bias int32 at
	// scale sx·sw[n], the output quantized to int8 over its interval. Anything else runs as in
	// the exact mode; the program's notes say which and why.
	Calibration *backend.Calibration
	// Int4 is the QDQ mode's choice for 4- and 2-bit Linear weights; the zero value widens them.
	Int4 Int4Policy
}

// perChannelSym quantizes an N×K weight (row-major) the only way TFLite fuses into an int8
// FULLY_CONNECTED with a per-tensor activation: symmetric, one positive scale per row, codes in
// [−qmax, qmax] with qmax = 2^(bits−1) − 1, so the zero point is 0. quant's symmetric formats may
// store a negative scale with −2^(bits−1) codes (the extreme value's sign picks the scale's);
// TFLite rejects negative scales ("Failed to allocate tensors"), so fused weights always come
// from here. A row already of this form (codes·scale with its largest |code| = qmax) comes back
// with the same codes; exact reports whether every row did.
func perChannelSym(w []float32, n, k, bits int) (codes []int8, scales []float32, exact bool) {
	codes, scales, exact = make([]int8, n*k), make([]float32, n), true
	for r := 0; r < n; r++ {
		s, ex := symRow(w[r*k:(r+1)*k], bits, codes[r*k:(r+1)*k])
		scales[r], exact = s, exact && ex
	}
	return codes, scales, exact
}

// symRow is one row of perChannelSym: its codes written into codes, its scale, and whether the
// row was already of the form. It allocates nothing (qdqWeight calls it for every row of a
// vocabulary-sized head).
func symRow(row []float32, bits int, codes []int8) (scale float32, exact bool) {
	qmax := float64(int(1)<<(bits-1) - 1)
	var m float32
	for _, v := range row {
		m = max(m, float32(math.Abs(float64(v))))
	}
	s := float32(1) // an all-zero row: any positive scale, codes 0
	if m > 0 {
		s = float32(float64(m) / qmax)
	}
	exact = true
	for c, v := range row {
		q := max(-qmax, min(qmax, math.RoundToEven(float64(v)/float64(s))))
		codes[c] = int8(q)
		if float32(q)*s != v {
			exact = false
		}
	}
	return s, exact
}

// packCodes lays int8 codes out into dst as a WebNN constant of bits 8 (one a byte) or 4 (two a
// byte, element 2i in the low nibble, densely across rows) and returns dst.
func packCodes(dst []byte, codes []int8, bits int) []byte {
	for i, q := range codes {
		quant.PutCode(dst, bits, i, int(q))
	}
	return dst
}

// quantizeBias turns a float bias into the int32 codes TFLite's int8 FULLY_CONNECTED adds to its
// accumulator: bias[n] ≈ q[n]·sx·sw[n]. The rounding error is half a step of the accumulator,
// far below the int8 output step. scales returns those sx·sw[n] for the dequantizeLinear that
// carries the bias into the gemm.
func quantizeBias(bias []float32, sx float32, sw []float32) (q []int32, scales []float32) {
	q = make([]int32, len(bias))
	scales = make([]float32, len(bias))
	for i, b := range bias {
		s := sx * sw[i]
		scales[i] = s
		v := math.RoundToEven(float64(b) / float64(s))
		q[i] = int32(max(math.MinInt32, min(math.MaxInt32, v)))
	}
	return q, scales
}

// le32Floats decodes little-endian float32s (a layout's scales, a float constant).
func le32Floats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// widenInt4 unpacks n int4 codes (two a byte, low nibble first) into one int8 a byte, for
// gather, which takes int8 tables but not int4.
func widenInt4(packed []byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		v := packed[i/2] >> (4 * (i % 2)) & 0xf
		out[i] = byte(int8(v<<4) >> 4)
	}
	return out
}

// floatBytes decodes a float constant's bytes (float32, or float16 widened) to Go values.
func floatBytes(b []byte, f16Data bool) []float32 {
	if f16Data {
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = f16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out
	}
	return le32Floats(b)
}

// ropeInvFreq is base^(−2i/Dh) for the Dh/2 pairs of a head, computed in float64 as the
// reference does and rounded once to float32.
func ropeInvFreq(base float32, dh int) []float32 {
	out := make([]float32, dh/2)
	for i := range out {
		out[i] = float32(math.Pow(float64(base), -2*float64(i)/float64(dh)))
	}
	return out
}
