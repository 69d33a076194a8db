// Package backend defines the one interface every compute backend implements: cpu (pure Go),
// gpu (WGSL on WebGPU) and nn (WebNN). A backend holds quantized weights in its own memory and
// multiplies activations with them; the pure-Go quant package is the oracle they all match.
package backend

import (
	"errors"
	"fmt"

	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Backend multiplies activations by weights it holds.
type Backend interface {
	Name() string
	Caps() plan.Caps
	// Upload copies t (already quantized, or f16/f32) into the backend's memory. The caller may
	// drop t afterwards.
	Upload(t *quant.Tensor) (Weight, error)
	// MatMul computes dst[m×N] = x[m×K] · dequant(w)ᵀ.
	MatMul(dst, x []float32, w Weight, m int) error
	Close() error
}

// Weight is a tensor resident in a backend.
type Weight interface {
	Name() string
	Shape() (n, k int)
	Format() quant.Format
	// Bytes is the device memory the weight holds, padding included.
	Bytes() int64
	Release() error
}

// ErrShape is wrapped by every shape error CheckMatMul returns.
var ErrShape = errors.New("backend: shape mismatch")

// CheckMatMul validates the arguments of MatMul so every backend reports shape problems the
// same way, before any device work starts.
func CheckMatMul(dst, x []float32, w Weight, m int) error {
	if w == nil {
		return fmt.Errorf("%w: nil weight", ErrShape)
	}
	n, k := w.Shape()
	switch {
	case m <= 0:
		return fmt.Errorf("%w: %q: m = %d rows, must be positive", ErrShape, w.Name(), m)
	case len(x) != m*k:
		return fmt.Errorf("%w: %q: x has %d values, want m×K = %d×%d = %d", ErrShape, w.Name(), len(x), m, k, m*k)
	case len(dst) != m*n:
		return fmt.Errorf("%w: %q: dst has %d values, want m×N = %d×%d = %d", ErrShape, w.Name(), len(dst), m, n, m*n)
	}
	return nil
}
