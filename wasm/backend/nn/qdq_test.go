package nn

import (
	"math"
	"testing"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestPerChannelSym checks the fused weight form: positive scales, codes within ±qmax, a row
// already of the form kept exactly, an all-zero row harmless, every row within half a step.
func TestPerChannelSym(t *testing.T) {
	w := []float32{
		0.5, -1, 0.25, 1, // max 1: a row of the form at scale 1/127 after the next line
		0, 0, 0, 0,
		-3, 2.9, 0.001, -0.5,
	}
	for i := 0; i < 4; i++ {
		w[i] = float32(math.Round(float64(w[i])*127)) / 127
	}
	for _, bits := range []int{8, 4} {
		codes, scales, exact := perChannelSym(w, 3, 4, bits)
		qmax := float32(int(1)<<(bits-1) - 1)
		if exact {
			t.Errorf("bits %d: row 2 cannot be exact", bits)
		}
		for r, s := range scales {
			if !(s > 0) {
				t.Fatalf("bits %d row %d: scale %g, want > 0", bits, r, s)
			}
			for c := 0; c < 4; c++ {
				q := float32(codes[r*4+c])
				if q > qmax || q < -qmax {
					t.Fatalf("bits %d: code %g outside ±%g", bits, q, qmax)
				}
				if d := math.Abs(float64(q*s - w[r*4+c])); d > float64(s)/2*(1+1e-6) {
					t.Fatalf("bits %d [%d,%d]: %g·%g is %g from %g", bits, r, c, q, s, d, w[r*4+c])
				}
			}
		}
	}
	if _, _, exact := perChannelSym(w[:8], 2, 4, 8); !exact {
		t.Error("rows already per-channel int8 (and zeros) should come back exactly")
	}
}

// TestPackCodes checks the int4 packing WebNN reads: element 2i in the low nibble.
func TestPackCodes(t *testing.T) {
	got := packCodes(make([]byte, 3), []int8{1, -2, 7, -7, 3}, 4)
	want := []byte{0xe1, 0x97, 0x03}
	if string(got) != string(want) {
		t.Fatalf("packed % x, want % x", got, want)
	}
	if w := widenInt4(got, 5); string(w) != string([]byte{1, 0xfe, 7, 0xf9, 3}) {
		t.Fatalf("widened % x", w)
	}
}

// TestQuantizeBias checks bias codes land within half an accumulator step of the bias.
func TestQuantizeBias(t *testing.T) {
	bias := []float32{0.3, -1.7, 0, 1e-9}
	sw := []float32{0.01, 0.02, 0.5, 0.001}
	q, s := quantizeBias(bias, 0.05, sw)
	for i := range bias {
		if s[i] != 0.05*sw[i] {
			t.Fatalf("scale %d = %g", i, s[i])
		}
		if d := math.Abs(float64(q[i])*float64(s[i]) - float64(bias[i])); d > float64(s[i])/2 {
			t.Fatalf("bias %d: %d·%g is %g from %g", i, q[i], s[i], d, bias[i])
		}
	}
}

// TestRopeInvFreq checks the table against the reference's per-pair exponent.
func TestRopeInvFreq(t *testing.T) {
	f := ropeInvFreq(10000, 10)
	if len(f) != 5 || f[0] != 1 || math.Abs(float64(f[1])-math.Pow(10000, -0.2)) > 1e-7 {
		t.Fatalf("inv freq %v", f)
	}
}

// TestFloatBytes checks f16 and f32 constant bytes decode as the planner wrote them.
func TestFloatBytes(t *testing.T) {
	q, err := quant.Quantize("b", []float32{1.5, -2, 0.25}, 1, 3, quant.Format{Bits: 16}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := planFloat(q, "float16", PathF16Cast, "")
	if got := floatBytes(l.CodeBytes, true); got[0] != 1.5 || got[1] != -2 || got[2] != 0.25 {
		t.Fatalf("f16 %v", got)
	}
}
