package nn

import (
	"encoding/binary"
	"fmt"
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
	// Int4Dequantize keeps the int4 constants and the exact dequantizeLinear → gemm path: 4-bit
	// memory, float32 speed minus the per-dispatch dequantize.
	Int4Dequantize Int4Policy = iota
	// Int4Widen requantizes the weight to int8 per-channel at Compile and runs it fused: int8
	// speed, twice the int4 constant bytes, and the int8 rounding on top of the int4 one.
	Int4Widen
	// Int4QDQ writes the int4 weight per-channel in the QDQ form anyway. TFLite does not fuse it;
	// it exists to measure that (bench_js_test.go), not for use.
	Int4QDQ
)

func (p Int4Policy) String() string {
	switch p {
	case Int4Widen:
		return "int4-widen-int8"
	case Int4QDQ:
		return "int4-qdq-unfused"
	}
	return "int4-dequantize"
}

// CompileOptions choose how CompileWith lowers a graph. The zero value is Compile: every op in
// float32, quantized weights through dequantizeLinear, matching the cpu reference to the
// conformance bound.
type CompileOptions struct {
	// Calibration, if set, runs every Linear with an 8-bit weight that it has a range for in
	// TFLite's fusable QDQ form: x quantized to int8 per-tensor with scale In/127, the weight
	// int8 per-channel (requantized at Compile when stored grouped or asymmetric), the bias int32
	// at scale sx·sw[n], the output quantized to int8 with scale Out/127. Anything else runs as
	// in the exact mode.
	Calibration *backend.Calibration
	// Int4 is the QDQ mode's choice for 4- and 2-bit Linear weights.
	Int4 Int4Policy
}

// qmax is the largest int8 code the QDQ scales map a calibrated range to; the symmetric range
// [−127, 127] keeps the zero point 0 for activations and weights alike, which TFLite requires
// of per-channel weights.
const qmax = 127

// actScale is the per-tensor scale of an activation whose calibrated max |value| is r. A zero
// range (a Linear that only ever saw zeros) gets scale 1, which keeps zeros exact.
func actScale(r float32) (float32, error) {
	switch {
	case math.IsNaN(float64(r)) || math.IsInf(float64(r), 0) || r < 0:
		return 0, fmt.Errorf("calibrated range %g is not a finite magnitude", r)
	case r == 0:
		return 1, nil
	}
	return r / qmax, nil
}

// perChannelInt8 requantizes an N×K weight to symmetric int8 with one scale per row, the only
// weight form TFLite fuses into an int8 FULLY_CONNECTED with a per-tensor activation.
func perChannelInt8(name string, w []float32, n, k int, bits int) (*quant.Tensor, error) {
	return quant.Quantize(name, w, n, k, quant.Format{Bits: bits, Scheme: quant.Symmetric}, quant.Options{})
}

// isPerChannelSym reports whether f is already the fused weight form, so its codes are used as
// stored, with no second rounding.
func isPerChannelSym(f quant.Format, bits int) bool {
	return f.Bits == bits && f.Scheme == quant.Symmetric && f.GroupSize == 0
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
