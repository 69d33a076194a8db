package quant

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// Issue 16: one weight of 1e6 made its whole group NaN under f16 scales (the scale overflowed to
// Inf, and Inf·0 is NaN). Scales now saturate at the largest finite value of their type, so the
// outlier clips and everything stays finite.
func TestScaleOverflowSaturates(t *testing.T) {
	f16 := float32(65504)
	for _, c := range []struct {
		format Format
		vals   []float32
	}{
		{Format{Bits: 4, Scheme: Symmetric, GroupSize: 32, Scales: ScaleF16}, spike(32, 1e6)},
		{Format{Bits: 4, Scheme: Asymmetric, GroupSize: 0, Scales: ScaleF16}, spike(32, 7.7e14)},
		{Format{Bits: 8, Scheme: Symmetric, GroupSize: 16, Scales: ScaleF16}, spike(48, -3e9)},
		{Format{Bits: 2, Scheme: Asymmetric, GroupSize: 16, Scales: ScaleF16}, spike(16, 1e6)},
		// float32 scales overflow too when a group spans most of float32's range.
		{Format{Bits: 4, Scheme: Asymmetric, GroupSize: 16, Scales: ScaleF32}, append(spike(8, 3e38), spike(8, -3e38)...)},
		{Format{Bits: 8, Scheme: Symmetric, GroupSize: 16, Scales: ScaleF32}, spike(16, -math.MaxFloat32)},
		{Format{Bits: 16}, spike(8, 1e6)},
	} {
		for _, search := range []bool{false, true} {
			q, err := Quantize("w", c.vals, 1, len(c.vals), c.format, Options{Search: search})
			if err != nil {
				t.Fatalf("%v: %v", c.format, err)
			}
			got := Dequantize(q)
			for i, v := range got {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%v search=%v: dequantized[%d] = %v from %v", c.format, search, i, v, c.vals[i])
				}
			}
			if c.format.Scales == ScaleF16 && c.format.Quantized() {
				for g := range q.Groups(q.K) {
					if s := q.Scale(0, g); s > f16 || s < -f16 {
						t.Fatalf("%v: scale %v beyond f16", c.format, s)
					}
				}
			}
		}
	}
	// The outlier clips to the largest weight the saturated scale reaches, with its sign.
	q, err := Quantize("w", spike(32, 1e6), 1, 32, Format{Bits: 4, Scheme: Symmetric, GroupSize: 32, Scales: ScaleF16}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := Dequantize(q)[0]; got != 8*f16 {
		t.Fatalf("1e6 under q4-sym f16 scales dequantizes to %v, want 8·65504 = %v", got, 8*f16)
	}
	if q, _ := Quantize("w", spike(8, -1e6), 1, 8, Format{Bits: 16}, Options{}); Dequantize(q)[0] != -f16 {
		t.Fatalf("-1e6 stored as f16 reads back %v, want -65504", Dequantize(q)[0])
	}
}

// spike is n small weights with v first.
func spike(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = 0.01 * float32(i%5-2)
	}
	out[0] = v
	return out
}

// Issue 16: NaN and Inf passed the non-quantizing formats (f32, f16) unremarked. Every format now
// fails with ErrNotFinite (an errs.ErrFormat) naming the tensor, the row and the column.
func TestNotFiniteNamed(t *testing.T) {
	for _, f := range []Format{{Bits: 32}, {Bits: 16}, Q4, {Bits: 8, Scheme: Asymmetric, GroupSize: 16}} {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
			w := make([]float32, 3*40)
			w[2*40+17] = bad
			_, err := Quantize("blk.0.ffn_up.weight", w, 3, 40, f, Options{})
			if !errors.Is(err, ErrNotFinite) || !errors.Is(err, errs.ErrFormat) {
				t.Fatalf("%v with %v: err = %v, want ErrNotFinite (errs.ErrFormat)", f, bad, err)
			}
			for _, want := range []string{`"blk.0.ffn_up.weight"`, "row 2", "column 17"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v: %q does not say %s", f, err, want)
				}
			}
		}
	}
}
