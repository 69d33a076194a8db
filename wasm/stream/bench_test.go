package stream

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// BenchmarkLoad streams an in-memory fp16 model into q4 on the CPU backend; MB/s is of the fp16
// input, to compare with a network's rate.
func BenchmarkLoad(b *testing.B) {
	m := makeModel(b, false, 1, []spec{{"w", format.F16, []int{2048, 2048}}})
	b.SetBytes(int64(len(m.file)))
	for b.Loop() {
		l := Start(context.Background(), cpu.New(), Options{}, m.source((&memServer{data: m.file}).open))
		if _, err := l.Result(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStages splits one chunk's work: the sha256 every byte of a file with a manifest
// passes through, fp16 decode, then quantize (MB/s of fp16 input). In wasm (one thread) the
// load's rate is about the harmonic sum of the three.
func BenchmarkStages(b *testing.B) {
	const rows, k = 256, 2048
	v := values(1, rows, k)
	raw := encode(format.F16, v)
	chunk := format.Tensor{TensorInfo: format.TensorInfo{Name: "w", DType: format.F16, Shape: []int{rows, k}, Size: int64(len(raw))}, Data: raw}
	dst := make([]float32, rows*k)
	b.Run("sha256", func(b *testing.B) {
		h := sha256.New()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			h.Write(raw)
		}
	})
	b.Run("decode-f16", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			chunk.DecodeFloat32(dst)
		}
	})
	b.Run("quantize-q4", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			quant.Quantize("w", dst, rows, k, quant.Q4, quant.Options{})
		}
	})
}
