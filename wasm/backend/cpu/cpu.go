// Package cpu is the pure-Go backend: it keeps weights packed and dequantizes one row at a time
// inside the matmul, so it holds the same bytes a GPU would. It works everywhere, including
// in the browser when neither WebGPU nor WebNN is available.
package cpu

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Backend is safe for concurrent use.
type Backend struct{ workers int }

// New returns a CPU backend using up to GOMAXPROCS goroutines per matmul.
func New() *Backend { return &Backend{workers: runtime.GOMAXPROCS(0)} }

var _ backend.Backend = (*Backend)(nil)

func (b *Backend) Name() string { return "cpu" }

func (b *Backend) Caps() plan.Caps {
	return plan.Caps{
		Backend:    "cpu",
		Adapter:    fmt.Sprintf("Go %s/%s, %d goroutines", runtime.GOOS, runtime.GOARCH, b.workers),
		Software:   true,
		F16:        true,
		WeightBits: []int{2, 4, 8, 16, 32},
	}
}

type weight struct{ t *quant.Tensor }

func (w *weight) Name() string         { return w.t.Name }
func (w *weight) Shape() (n, k int)    { return w.t.N, w.t.K }
func (w *weight) Format() quant.Format { return w.t.Format }
func (w *weight) Bytes() int64         { return int64(w.t.Bytes()) }
func (w *weight) Release() error       { w.t = nil; return nil }

// Upload keeps a reference to t; the caller must not modify it afterwards.
func (b *Backend) Upload(t *quant.Tensor) (backend.Weight, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("cpu upload: %w", err)
	}
	return &weight{t: t}, nil
}

// MatMul accumulates in float32, as the GPU kernels do; rows of the weight are split across
// goroutines so each dequantized row is reused for all m activation rows.
func (b *Backend) MatMul(dst, x []float32, w backend.Weight, m int) error {
	if err := backend.CheckMatMul(dst, x, w, m); err != nil {
		return err
	}
	cw, ok := w.(*weight)
	if !ok || cw.t == nil {
		return fmt.Errorf("cpu matmul: weight %q was not uploaded to this backend or was released", w.Name())
	}
	t := cw.t
	workers := max(1, min(b.workers, t.N/16))
	var wg sync.WaitGroup
	for part := range workers {
		lo, hi := part*t.N/workers, (part+1)*t.N/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := make([]float32, t.K)
			for n := lo; n < hi; n++ {
				t.DequantizeRow(n, row)
				for i := 0; i < m; i++ {
					dst[i*t.N+n] = dot(x[i*t.K:(i+1)*t.K], row)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

func dot(a, b []float32) float32 {
	// Four partial sums shorten the dependency chain; the error stays within float32 bounds.
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func (b *Backend) Close() error { return nil }
