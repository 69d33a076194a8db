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

// qmax is the largest weight code: per-channel weights are symmetric in [−127, 127] (TFLite
// requires their zero point to be 0).
const qmax = 127

// actQuant maps a calibrated interval onto the int8 codes for an activation: scale and zero
// point with lo → −128 and hi → 127, the interval first widened to hold 0 so that 0 (padding,
// ReLU's floor) is exact. An asymmetric interval such as a ReLU output [0, m] gets steps of m/255,
// half what a symmetric ±m would give. An empty interval (a Linear that only saw zeros) gets
// scale 1, zero point 0.
func actQuant(r backend.Interval) (scale float32, zero int8, err error) {
	lo, hi := float64(min(r.Min, 0)), float64(max(r.Max, 0))
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 0, fmt.Errorf("calibrated interval [%g, %g] is not finite", r.Min, r.Max)
	}
	if hi == lo {
		return 1, 0, nil
	}
	s := float32((hi - lo) / 255)
	z := math.RoundToEven(-128 - lo/float64(s))
	return s, int8(max(-128, min(127, z))), nil
}

// perChannelInt8 requantizes an N×K weight to symmetric int8 with one scale per row, the only
// weight form TFLite fuses into an int8 FULLY_CONNECTED with a per-tensor activation. A row's
// range is set by its largest weight, and one outlier column stretches it for the whole row
// (a grouped format confined it to one group), so the scale is searched for the least squared
// error rather than mapped from the maximum.
func perChannelInt8(name string, w []float32, n, k int, bits int) (*quant.Tensor, error) {
	return quant.Quantize(name, w, n, k, quant.Format{Bits: bits, Scheme: quant.Symmetric}, quant.Options{Search: true})
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
