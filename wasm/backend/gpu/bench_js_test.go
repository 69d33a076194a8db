//go:build js && wasm

package gpu

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
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

// -nibble.reps sets how many dispatches one kernel timing submits (a tenth of it for GEMM).
// Keep it small on SwiftShader, where one 4096×4096 f32 GEMV takes tens of milliseconds.
var benchReps = flag.Int("nibble.reps", 10, "dispatches per kernel timing")

// -nibble.gemv=WGxROWS overrides the GEMV launch shape (threads per workgroup, rows per
// workgroup), to sweep it on a new adapter without a rebuild.
var benchGEMV = flag.String("nibble.gemv", "", "GEMV tuning WGxROWS, e.g. 64x4 (default: DefaultTuning)")

var kernelDone = map[string][2]float64{}

var benchShapes = []backendtest.Shape{
	{M: 1, N: 4096, K: 4096},
	{M: 1, N: 11008, K: 4096},
	{M: 1, N: 4096, K: 11008},
	{M: 128, N: 4096, K: 4096},
}

// BenchmarkMatMul reports, per case, the kernel's ms per call (timestamp queries when present,
// else wall clock, over many dispatches in one submit), GB/s of weight bytes at that speed, and
// the end-to-end ms of MatMul (write x, dispatch, read back); it prints one JSON line per case
// (prefix NIBBLE_BENCH). On SwiftShader these are CPU figures: the line says software: true.
func BenchmarkMatMul(b *testing.B) {
	opt := Options{Timing: true}
	if *benchGEMV != "" {
		tu := DefaultTuning
		if _, err := fmt.Sscanf(*benchGEMV, "%dx%d", &tu.GEMVWorkgroup, &tu.GEMVRows); err != nil {
			b.Fatalf("-nibble.gemv=%q: want WGxROWS: %v", *benchGEMV, err)
		}
		opt.Tuning = &tu
	}
	be := newBackend(b, opt)
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
				// End to end: write x, dispatch, read back (what a caller of MatMul sees).
				if err := be.MatMul(dst, x, w, s.M); err != nil { // warm-up: pipeline, bind groups
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					if err := be.MatMul(dst, x, w, s.M); err != nil {
						b.Fatal(err)
					}
				}
				e2e := time.Since(start) / time.Duration(b.N)
				b.StopTimer()
				// Kernel alone: reps dispatches in one submit, so the per-call overheads and
				// timestamp quantization are divided away. Once per case: the testing package
				// may run this function again with a larger b.N.
				if r, ok := kernelDone[name]; ok {
					b.ReportMetric(r[0], "ms/call")
					b.ReportMetric(r[1], "GB/s")
					b.ReportMetric(e2e.Seconds()*1e3, "ms/matmul-e2e")
					return
				}
				reps := *benchReps
				if s.M > GEMVMaxM {
					reps = max(1, reps/10)
				}
				gpu, wall, err := be.TimeKernel(w, s.M, reps)
				if err != nil {
					b.Fatal(err)
				}
				per, source := wall, fmt.Sprintf("wall clock over %d dispatches in one submit", reps)
				if gpu > 0 {
					per, source = gpu, fmt.Sprintf("timestamp-query over %d dispatches in one pass", reps)
				}
				ms := per.Seconds() * 1e3
				gbs := float64(w.Bytes()) / per.Seconds() / 1e9
				kernelDone[name] = [2]float64{ms, gbs}
				b.ReportMetric(ms, "ms/call")
				b.ReportMetric(gbs, "GB/s")
				b.ReportMetric(e2e.Seconds()*1e3, "ms/matmul-e2e")
				line, _ := json.Marshal(map[string]any{
					"bench": kind, "m": s.M, "n": s.N, "k": s.K, "format": f.String(),
					"ms": ms, "ms_kernel_wall": wall.Seconds() * 1e3, "ms_matmul_e2e": e2e.Seconds() * 1e3, "timing": source, "weight_bytes": w.Bytes(), "gbps": gbs,
					"calls": b.N, "adapter": info.Description, "software": info.IsFallbackAdapter,
				})
				fmt.Printf("NIBBLE_BENCH %s\n", line)
			})
		}
	}
}
