package engine

import (
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// FormatAuto keeps the loader's default plan (stream.DefaultPlan) with leading unit dimensions
// squeezed (TF.js stores 1×1 convolution kernels [1, 1, in, out]): q4-sym-g32-f32 for weight
// matrices, GGUF Q4_0/Q8_0 blocks as they are, float32 for the rest.
const FormatAuto = "auto"

// Formats lists the format names the page offers, in the order it offers them. ParseFormat
// accepts more (any valid bits × scheme × group × scale type).
var Formats = []string{
	FormatAuto,
	"q4-sym-g32", "q4-asym-g32", "q4-sym-g128", "q8-sym-g32", "q8-asym-g128",
	"q2-asym-g16", "q4-sym-g32-f16", "q8-sym-pc", "f16", "f32",
}

// ParseFormat reads a format name as quant.Format.String writes it ("q4-sym-g32-f32"), with the
// scale type optional (f32 when absent): "q<bits>-<sym|asym>-<g<size>|pc>[-f16|-f32]", "f16",
// "f32".
func ParseFormat(s string) (quant.Format, error) { return plan.ParseFormat(s) }

// PlanFor returns the plan a load with format name uses: the tensors stream.DefaultPlan would
// quantize (weight matrices) take the named format; everything else (biases, norms, small
// tensors) stays float32. "auto" or "" is stream.DefaultPlan itself.
func PlanFor(name string) (stream.Plan, error) {
	if name == "" || name == FormatAuto {
		return func(t *format.TensorInfo) quant.Format { return stream.DefaultPlan(squeezed(t)) }, nil
	}
	f, err := ParseFormat(name)
	if err != nil {
		return nil, errs.Mark(err, errs.ErrBadArgument)
	}
	return func(t *format.TensorInfo) quant.Format {
		if !isLayer(t) {
			return stream.F32
		}
		return f
	}, nil
}

// isLayer reports whether a tensor is a weight matrix: what the plans quantize and Measure times.
func isLayer(t *format.TensorInfo) bool { return stream.DefaultPlan(squeezed(t)) != stream.F32 }

// squeezed drops leading dimensions of size 1, so a [1, 1, in, out] kernel plans as the
// [in, out] matrix the loader stores it as (rows of the last dimension).
func squeezed(t *format.TensorInfo) *format.TensorInfo {
	c := *t
	for len(c.Shape) > 2 && c.Shape[0] == 1 {
		c.Shape = c.Shape[1:]
	}
	return &c
}
