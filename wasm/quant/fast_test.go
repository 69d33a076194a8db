package quant

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSymmetricFastMatchesGeneric checks the fused plain-symmetric path byte for byte against
// quantizeGroup + packCodes, on random groups and on the edges of its tricks: rounding ties,
// values on and past the clamp, signed zeros, subnormals, scales whose inverse overflows, and
// non-finite weights (which must fall back, not pack).
func TestSymmetricFastMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 7.5, -7.5, 8, -8, 8.5, -8.5,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-39, -1e-39, 1e-38, math.MaxFloat32, -math.MaxFloat32,
		65504, -65504, 1e5, -1e-8, 3e-8, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for _, f := range allFormats() {
		if !fastSymmetric(f, Options{}) {
			continue
		}
		fast := 0
		for trial := range 4000 {
			gl := 8 * (1 + rng.IntN(8))
			x := make([]float32, gl)
			scale := float32(math.Exp(rng.NormFloat64() * 10))
			for i := range x {
				switch rng.IntN(6) {
				case 0:
					x[i] = edges[rng.IntN(len(edges))]
				case 1:
					// An exact tie once divided by a round scale.
					x[i] = (float32(rng.IntN(17)-8) + 0.5) * float32(math.Ldexp(1, rng.IntN(40)-20))
				default:
					x[i] = float32(rng.NormFloat64()) * scale
				}
			}
			if trial%7 == 0 {
				// A group whose largest magnitude is subnormal: 1/s overflows.
				for i := range x {
					x[i] = float32(rng.NormFloat64() * 1e-39)
				}
			}
			want := make([]byte, gl*f.Bits/8)
			q := make([]int, gl)
			var ws float32
			var werr error
			if _, finite := firstNotFinite(x); finite {
				ws, _ = quantizeGroup(x, f, Options{}, q)
				packCodes(want, f.Bits, 0, q)
			} else {
				werr = ErrNotFinite
			}
			got := bytes.Repeat([]byte{0xA5}, len(want))
			gs, ok := symmetricGroupFast(x, f, got)
			if !ok {
				if !bytes.Equal(got, bytes.Repeat([]byte{0xA5}, len(want))) {
					t.Fatalf("%v: fallback wrote into dst", f)
				}
				continue
			}
			if werr != nil {
				t.Fatalf("%v %v: fast path accepted a group the reference rejects: %v", f, x, werr)
			}
			if math.Float32bits(gs) != math.Float32bits(ws) || !bytes.Equal(got, want) {
				t.Fatalf("%v %v:\nscale %v codes %x\nwant  %v codes %x", f, x, gs, got, ws, want)
			}
			fast++
		}
		if fast < 1000 {
			t.Errorf("%v: only %d of 4000 groups took the fast path: the test no longer exercises it", f, fast)
		}
	}
}
