package quant

import "math"

// The scale search (Options.Search). For one group x and codes q the squared error with the
// least-squares scale s = Σx·c / Σc² (c = q − z) is Σx² − (Σx·c)²/Σc², so a candidate scale is
// judged in one pass over the group that sums x·c and c² for the codes it rounds to: no code
// buffer, no second pass for the refit. This is how llama.cpp's make_qx_quants ranks its
// candidates (with unit weights: the error here is the plain squared error the format's decode
// gives). The best candidate's refitted scale, rounded to the scale type, is then assigned codes
// once; plain rounding's choice is kept when it is no worse.
//
// Measured on USE-lite's weights (TestSearchUSELite), the per-group optimum of the squared error
// (a 400-point scale grid with refits per group, per zero point for asymmetric formats) is
// 0.943× plain rounding for q4-sym-g32: the format itself leaves no more, and this search
// reaches it.

// fitSums returns Σx·c and Σc² for c = clamp(round(x·inv), lo, hi), the codes minus the zero
// point, rounded as codes rounds, and false when x·inv may leave the range where that rounding
// is exact (|x·inv| < 2²²; amax is the group's largest magnitude). Like the plain path's
// rounder it has no branch and no float→int conversion, which Go's wasm code pays dearly for.
func fitSums(x []float32, amax, inv float32, lo, hi int) (sxc, scc float64, ok bool) {
	if !(amax*inv < 0x1p22) {
		return 0, 0, false
	}
	r := rounder{inv: inv, lo: roundBias + uint32(lo), hi: roundBias + uint32(hi)}
	var a, b float32
	for _, v := range x {
		c := float32(int32(r.code(v) - roundBias))
		a += v * c
		b += c * c
	}
	return float64(a), float64(b), true
}

// The symmetric candidates map the group's extreme onto −QMin + i·step codes, i in
// −symGrid…symGrid, step = max(symStep, −QMin/64): 0.2 codes for q2 and q4, 2 for q8. A finer or
// wider grid (25 candidates at 0.1) gained nothing on USE-lite; a coarser one (9 at 0.25) lost
// 0.2 % at g128.
const (
	symGrid = 6
	symStep = 0.2
)

// searchSymmetric chooses the scale and codes of a symmetric group whose element of largest
// magnitude is m (≠ 0). q holds plain rounding's codes for scale s0 on entry.
func searchSymmetric(x []float32, f Format, m, s0 float32, q []int) float32 {
	qmin, qmax := f.QMin(), f.QMax()
	nmax := float32(-qmin)
	var bestScore, bestS float64
	step := max(symStep, nmax/64)
	for i := -symGrid; i <= symGrid; i++ {
		inv := -(nmax + float32(i)*step) / m
		sxc, scc, ok := fitSums(x, abs32(m), inv, qmin, qmax)
		if ok && scc > 0 && sxc*sxc/scc > bestScore {
			bestScore, bestS = sxc*sxc/scc, sxc/scc
		}
	}
	s, _ := polish(x, f, s0, float32(bestS), 0, 0, qmin, qmax, q)
	return s
}

// asymShrink are the fractions of the range cut from either end (clipping outliers): 16
// candidates. Also trying the zero points beside each candidate's own (48) gained 0.3 % on q4.
var asymShrink = [...]float32{0, 0.05, 0.12, 0.25}

// searchAsymmetric chooses the scale, zero point and codes of an asymmetric group spanning
// [lo, hi] (lo ≤ 0 ≤ hi, lo < hi); s0, z0 are plain rounding's choice.
func searchAsymmetric(x []float32, f Format, lo, hi, s0 float32, z0 int, q []int) (float32, int) {
	qmax := f.QMax()
	var bestScore, bestS float64
	bestZ := z0
	for _, a := range asymShrink {
		for _, b := range asymShrink {
			l, h := lo*(1-a), hi*(1-b)
			c := (h - l) / float32(qmax)
			if c <= 0 {
				continue
			}
			inv := 1 / c
			z := max(0, min(qmax, int(math.RoundToEven(float64(-l*inv)))))
			sxc, scc, ok := fitSums(x, max(-lo, hi), inv, -z, qmax-z)
			if ok && scc > 0 && sxc > 0 && sxc*sxc/scc > bestScore {
				bestScore, bestS, bestZ = sxc*sxc/scc, sxc/scc, z
			}
		}
	}
	return polish(x, f, s0, float32(bestS), z0, bestZ, 0, qmax, q)
}

// polish compares the starting choice (s0, z0, codes in q) with the candidate (s, z): the
// candidate's scale is rounded to the scale type and assigned codes, then refitted and reassigned
// while that helps. It returns the better scale and zero point, with its codes in q.
func polish(x []float32, f Format, s0, s float32, z0, z, qmin, qmax int, q []int) (float32, int) {
	var buf [256]int
	trial := buf[:0]
	if len(q) <= len(buf) {
		trial = buf[:len(q)]
	} else {
		trial = make([]int, len(q))
	}
	best := assign(x, s0, z0, qmin, qmax, q)
	cur := s0
	for range 3 {
		s = roundScale(f.Scales, s)
		if s == 0 || s == cur && z == z0 {
			break
		}
		e := assign(x, s, z, qmin, qmax, trial)
		if e >= best {
			break
		}
		best, cur, z0 = e, s, z
		copy(q, trial)
		s = refit(x, q, z)
	}
	return cur, z0
}
