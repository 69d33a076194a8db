package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The shader multiplies by the bits 0x3C010204 (gemv_a8.wgsl INV127): the reference must too.
func TestInv127MatchesShader(t *testing.T) {
	if b := math.Float32bits(inv127); b != 0x3C010204 {
		t.Fatalf("float32(1/127) = %#x, gemv_a8.wgsl uses 0x3C010204", b)
	}
}

func TestQuantizeActivations(t *testing.T) {
	x := []float32{
		// block 0: amax 2 → inv 63.5; 1 → 63.5 → 64 (ties to even), −2 → −127, 0.25 → 15.875 → 16
		1, -2, 0.25, 0,
		// block 1: all zero → d 0, codes 0
		0, 0, 0, 0,
		// block 2 (short): amax 127 → inv 1; 2.5 rounds to even 2, −0.5 to 0 (both near)
		2.5, -0.5, 127,
	}
	a, err := QuantizeActivations(x, 1, 11, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []int8{64, -127, 16, 0, 0, 0, 0, 0, 2, 0, 127}
	for i, q := range want {
		if a.Codes[i] != q {
			t.Errorf("code %d of %v = %d, want %d", i, x[i], a.Codes[i], q)
		}
	}
	// 1·63.5 = 63.5 is a tie (near), 2.5 and −0.5 too; 127 is not.
	for i, near := range map[int]bool{0: true, 1: false, 8: true, 9: true, 10: false} {
		if a.Near[i] != near {
			t.Errorf("Near[%d] (x %v) = %v, want %v", i, x[i], a.Near[i], near)
		}
	}
	if d := a.Scales; d[0] != 2*inv127 || d[1] != 0 || d[2] != 127*inv127 {
		t.Errorf("scales %v, want [2/127 0 1]", d)
	}
	if _, err := QuantizeActivations(x, 2, 11, 4); err == nil {
		t.Error("11 values for 2 rows of 11: want an error")
	}
}

// TestMatMulA8Bound checks the documented bound: the int8-activation product is within
// Σ_i |w_i|·d·(½ + 2⁻¹³) of the float one (plus float roundings), and that the bound is not
// vacuous (the error is a sizeable share of it).
func TestMatMulA8Bound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []Format{
		{Bits: 8, GroupSize: 32}, {Bits: 8, Scheme: Asymmetric, GroupSize: 0, Scales: ScaleF16},
		{Bits: 4, GroupSize: 32}, {Bits: 4, Scheme: Asymmetric, GroupSize: 64},
		{Bits: 2, GroupSize: 32, Scales: ScaleF16}, {Bits: 2, Scheme: Asymmetric, GroupSize: 128},
	} {
		const m, n, k = 3, 17, 300
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.02)
		}
		x := make([]float32, m*k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		q, err := Quantize("a8", w, n, k, f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := QuantizeActivations(x, m, k, ActivationBlock(f.Bits))
		if err != nil {
			t.Fatal(err)
		}
		p, err := MatMulA8(a, q)
		if err != nil {
			t.Fatal(err)
		}
		exact, err := MatMul(x, m, q)
		if err != nil {
			t.Fatal(err)
		}
		deq := Dequantize(q)
		act := ActivationError(x, a, q)
		worst := 0.0
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var mag float64
				for kk := 0; kk < k; kk++ {
					mag += math.Abs(float64(deq[j*k+kk]) * float64(x[i*k+kk]))
				}
				// The float product's own roundings: the dequantized weights (2⁻²⁴ each, in act)
				// and y rounded to float32.
				bound := act[i*n+j] + 0x1p-24*math.Abs(float64(exact[i*n+j])) + 0x1p-24*mag + p.Bound(i, j)
				d := math.Abs(p.Y[i*n+j] - float64(exact[i*n+j]))
				if d > bound {
					t.Errorf("%v y[%d][%d]: int8 activations %g, float %g: |diff| %.3g > bound %.3g", f, i, j, p.Y[i*n+j], exact[i*n+j], d, bound)
				}
				worst = max(worst, d/bound)
			}
		}
		if worst < 0.05 {
			t.Errorf("%v: the largest error is %.3g of the bound: the bound is too loose to show anything", f, worst)
		}
		t.Logf("%v: largest error %.2f of the bound", f, worst)
	}
}

func TestInt8ActivationsFit(t *testing.T) {
	for f, want := range map[Format]bool{
		{Bits: 4, GroupSize: 32}: true, {Bits: 4, GroupSize: 16}: false, {Bits: 4}: true,
		{Bits: 8, GroupSize: 16}: true, {Bits: 2, GroupSize: 64}: true, {Bits: 2, GroupSize: 24}: false,
		{Bits: 16}: false, {Bits: 32}: false,
	} {
		if got := Int8ActivationsFit(f); got != want {
			t.Errorf("Int8ActivationsFit(%v) = %v, want %v", f, got, want)
		}
	}
}
