package quant

import (
	"fmt"
	"math"
)

// Error compares an approximation against a reference. All sums run in float64.
type Error struct {
	RelRMS float64 // ‖got − ref‖₂ / ‖ref‖₂
	MaxAbs float64 // max |got − ref|
	Cosine float64 // cosine similarity of got and ref (1 when both are zero)
	SQNR   float64 // 10·log10(‖ref‖² / ‖got − ref‖²) in dB; +Inf when exact
}

func (e Error) String() string {
	return fmt.Sprintf("relRMS %.3g  maxAbs %.3g  cos %.6f  SQNR %.2f dB", e.RelRMS, e.MaxAbs, e.Cosine, e.SQNR)
}

// Compare measures got against ref. They must have the same length.
func Compare(ref, got []float32) (Error, error) {
	if len(ref) != len(got) {
		return Error{}, fmt.Errorf("compare: reference has %d values, approximation %d", len(ref), len(got))
	}
	var sig, noise, dot, gg, maxAbs float64
	for i, r := range ref {
		rv, gv := float64(r), float64(got[i])
		d := gv - rv
		sig += rv * rv
		noise += d * d
		dot += rv * gv
		gg += gv * gv
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	e := Error{MaxAbs: maxAbs}
	switch {
	case sig > 0:
		e.RelRMS = math.Sqrt(noise / sig)
	case noise > 0:
		e.RelRMS = math.Inf(1)
	}
	switch {
	case noise == 0:
		e.SQNR = math.Inf(1)
	default:
		e.SQNR = 10 * math.Log10(sig/noise)
	}
	switch {
	case sig == 0 && gg == 0:
		e.Cosine = 1
	case sig == 0 || gg == 0:
		e.Cosine = 0
	default:
		e.Cosine = dot / math.Sqrt(sig*gg)
	}
	return e, nil
}

// WeightError quantizes nothing: it measures how far t's dequantized weights are from w.
func WeightError(w []float32, t *Tensor) (Error, error) {
	return Compare(w, Dequantize(t))
}
