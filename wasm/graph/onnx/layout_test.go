package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/wasm/quant"
)

func randomTensor(t *testing.T, rng *rand.Rand, n, k int, f quant.Format) *quant.Tensor {
	t.Helper()
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * 0.05
	}
	q, err := quant.Quantize("w", w, n, k, f, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// The conversion must not change one bit of any dequantized weight: ORT's (code − zero)·scale
// over the converted bytes equals nibble's s·(q − z) over the original ones, exactly.
func TestToORTExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		for _, scales := range []quant.ScaleType{quant.ScaleF32, quant.ScaleF16} {
			for _, group := range []int{16, 32, 64, 128} {
				// K: whole blocks (fast path), an odd number of blocks (zero-point padding),
				// a short last block (ORT's padded blob), an odd K (nibble row padding).
				for _, k := range []int{256, 96, 40, 77} {
					f := quant.Format{Bits: 4, Scheme: scheme, GroupSize: group, Scales: scales}
					name := fmt.Sprintf("%s/k%d", f, k)
					t.Run(name, func(t *testing.T) {
						q := randomTensor(t, rng, 7, k, f)
						o, err := ToORT(q)
						if err != nil {
							t.Fatal(err)
						}
						blocks := (k + group - 1) / group
						if o.Blocks != blocks || o.BlobSize != group/2 || len(o.B) != 7*blocks*group/2 || len(o.Scales) != 7*blocks {
							t.Fatalf("layout: blocks %d blob %d len(B) %d len(scales) %d", o.Blocks, o.BlobSize, len(o.B), len(o.Scales))
						}
						if scheme == quant.Symmetric && o.ZeroPoints != nil {
							t.Fatal("symmetric weights must use ORT's default zero point, not a zero_points input")
						}
						if scheme == quant.Asymmetric && len(o.ZeroPoints) != 7*((blocks+1)/2) {
							t.Fatalf("zero_points: %d bytes, want N·ceil(blocks/2) = %d", len(o.ZeroPoints), 7*((blocks+1)/2))
						}
						want, got := quant.Dequantize(q), o.Dequantize()
						for i := range want {
							if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
								t.Fatalf("weight (%d,%d): ORT layout gives %v, nibble %v", i/k, i%k, got[i], want[i])
							}
						}
						// Blob padding must dequantize to zero (code = zero point).
						for n := 0; n < 7; n++ {
							for kk := k; kk < blocks*group; kk++ {
								z := ortDefaultZero4
								if o.ZeroPoints != nil {
									z = quant.Code(o.ZeroPoints[n*((blocks+1)/2):], 4, kk/group, false)
								}
								if c := quant.Code(o.B[n*blocks*group/2:], 4, kk, false); c != z {
									t.Fatalf("row %d padding element %d: code %d, want the zero point %d", n, kk, c, z)
								}
							}
						}
					})
				}
			}
		}
	}
}

// Element 2i is the low nibble, and a symmetric code q is stored as q+8.
func TestToORTNibbleOrder(t *testing.T) {
	q := &quant.Tensor{Name: "w", N: 1, K: 32, Format: quant.Q4, Data: make([]byte, 16), Scales: make([]byte, 4)}
	binary.LittleEndian.PutUint32(q.Scales, math.Float32bits(1))
	quant.PutCode(q.Data, 4, 0, -8)
	quant.PutCode(q.Data, 4, 1, 7)
	quant.PutCode(q.Data, 4, 2, 0)
	quant.PutCode(q.Data, 4, 3, -1)
	o, err := ToORT(q)
	if err != nil {
		t.Fatal(err)
	}
	// element 0: −8+8 = 0 (low), element 1: 7+8 = 15 (high) → 0xF0; elements 2, 3: 8, 7 → 0x78.
	if o.B[0] != 0xF0 || o.B[1] != 0x78 || o.B[2] != 0x88 {
		t.Fatalf("first bytes % x, want f0 78 88", o.B[:3])
	}
}

func TestToORTRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []quant.Format{
		{Bits: 8, GroupSize: 32},
		{Bits: 4, GroupSize: 0},
		{Bits: 4, GroupSize: 48},
	} {
		if _, err := ToORT(randomTensor(t, rng, 2, 96, f)); err == nil {
			t.Errorf("%s: converted, want an error", f)
		}
	}
}
