package quant

import (
	"math/rand/v2"
	"testing"
)

// Benchmarks report MB/s of float32 input (quantize) or float32 output (dequantize), so they
// compare directly with memory bandwidth and with the loader's download rate.
func BenchmarkQuantize(b *testing.B) {
	n, k := 256, 4096
	w := randomMatrix(rand.New(rand.NewPCG(7, 8)), n, k)
	for _, c := range []struct {
		f      Format
		search bool
	}{
		{Format{Bits: 4, GroupSize: 32}, false},
		{Format{Bits: 4, GroupSize: 32}, true},
		{Format{Bits: 4, Scheme: Asymmetric, GroupSize: 32}, false},
		{Format{Bits: 4, Scheme: Asymmetric, GroupSize: 32}, true},
		{Format{Bits: 8, GroupSize: 128}, false},
		{Format{Bits: 2, GroupSize: 32, Scales: ScaleF16}, false},
		{Format{Bits: 16}, false},
	} {
		name := c.f.String()
		if c.search {
			name += "-search"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(4 * n * k))
			for b.Loop() {
				if _, err := Quantize("bench", w, n, k, c.f, Options{Search: c.search}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDequantize(b *testing.B) {
	n, k := 256, 4096
	w := randomMatrix(rand.New(rand.NewPCG(9, 10)), n, k)
	for _, f := range []Format{{Bits: 2, GroupSize: 32}, {Bits: 4, GroupSize: 32}, {Bits: 4, Scheme: Asymmetric, GroupSize: 128}, {Bits: 8, GroupSize: 32}, {Bits: 16}} {
		q, _ := Quantize("bench", w, n, k, f, Options{})
		dst := make([]float32, k)
		b.Run(f.String(), func(b *testing.B) {
			b.SetBytes(int64(4 * n * k))
			for b.Loop() {
				for r := 0; r < n; r++ {
					q.DequantizeRow(r, dst)
				}
			}
		})
	}
}
