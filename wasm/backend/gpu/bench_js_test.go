//go:build js && wasm

package gpu

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/x448/float16"
)

// syntheticTensor fills an n×k tensor with random codes and scales directly: quantizing 45 M
// floats in wasm would take longer than the benchmark. Values are finite and weight-sized.
func syntheticTensor(rng *rand.Rand, n, k int, f quant.Format) *quant.Tensor {
	t := &quant.Tensor{Name: fmt.Sprintf("bench %dx%d %v", n, k, f), N: n, K: k, Format: f}
	t.Data = make([]byte, n*f.RowStride(k))
	switch f.Bits {
	case 32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			binary.LittleEndian.PutUint32(t.Data[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
		}
	default:
		for i := range t.Data {
			t.Data[i] = byte(rng.Uint32())
		}
	}
	if f.Quantized() {
		g := f.Groups(k)
		t.Scales = make([]byte, n*g*f.Scales.Size())
		for i := 0; i < n*g; i++ {
			v := 0.001 + 0.002*rng.Float32()
			if f.Scales == quant.ScaleF16 {
				binary.LittleEndian.PutUint16(t.Scales[2*i:], float16.Fromfloat32(v).Bits())
			} else {
				binary.LittleEndian.PutUint32(t.Scales[4*i:], math.Float32bits(v))
			}
		}
		t.Zeros = make([]byte, n*f.ZeroStride(k))
	}
	return t
}

// benchFormats are the widths the issue asks for, with the f32 baseline.
var benchFormats = []quant.Format{
	{Bits: 32},
	{Bits: 8, GroupSize: 32},
	{Bits: 4, GroupSize: 32},
	{Bits: 2, GroupSize: 32},
}

var benchShapes = []backendtest.Shape{
	{M: 1, N: 4096, K: 4096},
	{M: 1, N: 11008, K: 4096},
	{M: 1, N: 4096, K: 11008},
	{M: 128, N: 4096, K: 4096},
}

// BenchmarkMatMul reports ms per call (GPU time from timestamp queries when present, else wall
// clock per call including the write of x and the readback) and GB/s of weight bytes, and prints
// one JSON line per case. On SwiftShader these are CPU figures, labelled software.
func BenchmarkMatMul(b *testing.B) {
	be := newBackend(b, Options{Timing: true})
	info := be.AdapterInfo()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, s := range benchShapes {
		kind := "gemv"
		if s.M > GEMVMaxM {
			kind = "gemm"
		}
		for _, f := range benchFormats {
			name := fmt.Sprintf("%s/%dx%dx%d/%v", kind, s.M, s.N, s.K, f)
			b.Run(name, func(b *testing.B) {
				w, err := be.Upload(syntheticTensor(rng, s.N, s.K, f))
				if err != nil {
					b.Fatal(err)
				}
				defer w.Release()
				x := make([]float32, s.M*s.K)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				dst := make([]float32, s.M*s.N)
				// Warm-up: builds the pipeline and bind groups outside the timing.
				if err := be.MatMul(dst, x, w, s.M); err != nil {
					b.Fatal(err)
				}
				var gpu []time.Duration
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					if err := be.MatMul(dst, x, w, s.M); err != nil {
						b.Fatal(err)
					}
					if d := be.LastGPUTime(); d > 0 {
						gpu = append(gpu, d)
					}
				}
				wall := time.Since(start) / time.Duration(b.N)
				b.StopTimer()
				per, source := wall, "wall"
				if len(gpu) > 0 {
					slices.Sort(gpu)
					per, source = gpu[len(gpu)/2], "timestamp-query median"
				}
				ms := per.Seconds() * 1e3
				gbs := float64(w.Bytes()) / per.Seconds() / 1e9
				b.ReportMetric(ms, "ms/call")
				b.ReportMetric(gbs, "GB/s")
				line, _ := json.Marshal(map[string]any{
					"bench": kind, "m": s.M, "n": s.N, "k": s.K, "format": f.String(),
					"ms": ms, "ms_wall": wall.Seconds() * 1e3, "timing": source, "weight_bytes": w.Bytes(), "gbps": gbs,
					"calls": b.N, "adapter": info.Description, "software": info.IsFallbackAdapter,
				})
				fmt.Printf("NIBBLE_BENCH %s\n", line)
			})
		}
	}
}
