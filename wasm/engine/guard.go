package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// ErrGuard says a backend's kernel gave wrong numbers on the load's probe. It is an
// errs.ErrUnsupported: the device cannot run that variant correctly.
var ErrGuard = errs.New(errs.ErrUnsupported, "guard: a kernel's result differs from the cpu reference")

// guardBound is the largest relative RMS error a probe may show: f16 products (shader-f16)
// and reordered f32 sums stay near 1e-3; a wrong kernel is off by order one.
const guardBound = 1e-2

// guardFault, set by tests only, corrupts a probe's result for the given format, as a broken
// kernel would.
var guardFault func(f quant.Format, dst []float32)

// guardAll, set by tests only, probes on the cpu backend too (natively there is no other).
var guardAll bool

// guardUploader probes each distinct weight format the first time the backend holds one: a
// seeded input through the backend's kernel against the Go reference computed from the same
// quantized tensor, so a kernel that is wrong on this device is caught at load, not in the
// page's results. On a mismatch the tensor is held as float32 (another kernel) and probed
// again, and the model's notes and plan say so; with a backend the caller pinned, the load
// fails instead.
type guardUploader struct {
	up     stream.Uploader
	b      backend.Backend
	pinned bool
	pl     *planned
	// int8Activations: the backend's GEMVs round their activations to int8 per block
	// (WebGPU with Options.Int8Activations), so a probe compares with the product of the
	// rounded activations (activationsAsRounded).
	int8Activations bool

	mu    sync.Mutex
	seen  map[quant.Format]error // probed formats: nil if they passed
	notes []string
}

func newGuard(up stream.Uploader, b backend.Backend, pinned bool, pl *planned) *guardUploader {
	return &guardUploader{up: up, b: b, pinned: pinned, pl: pl, seen: map[quant.Format]error{}}
}

func (g *guardUploader) Upload(t *quant.Tensor) (backend.Weight, error) {
	// A hybrid load checks whole stages against the cpu instead (hybrid.go): a wrong kernel
	// moves its stage to another backend.
	if g.b.Name() == "cpu" && !guardAll || g.b.Name() == BackendHybrid || !t.Format.Quantized() && t.Format.Bits != 16 || t.N < 2 {
		return g.up.Upload(t)
	}
	g.mu.Lock()
	bad, probed := g.seen[t.Format]
	g.mu.Unlock()
	if bad == nil {
		w, err := g.up.Upload(t)
		if err != nil || probed {
			return w, err
		}
		if bad = g.probe(t, w); bad == nil {
			g.mu.Lock()
			g.seen[t.Format] = nil
			g.mu.Unlock()
			return w, nil
		}
		w.Release()
		g.mu.Lock()
		g.seen[t.Format] = bad
		g.notes = append(g.notes, bad.Error())
		g.mu.Unlock()
	}
	if g.pinned {
		return nil, fmt.Errorf("%w (the backend was asked for by name, so nibble does not move the tensor: choose another format or backend \"auto\")", bad)
	}
	f32 := &quant.Tensor{Name: t.Name, N: t.N, K: t.K, Format: quant.Format{Bits: 32}}
	q, err := quant.Quantize(t.Name, quant.Dequantize(t), t.N, t.K, f32.Format, quant.Options{})
	if err != nil {
		return nil, err
	}
	w, err := g.up.Upload(q)
	if err != nil {
		return nil, err
	}
	if err := g.probe(q, w); err != nil {
		w.Release()
		return nil, fmt.Errorf("%w; float32 too: %w", bad, err)
	}
	g.pl.moved(t.Name, q.Format, "guard: "+t.Format.String()+" kernel failed its probe, held as f32")
	return w, nil
}

// probe runs one seeded row through the backend and compares it with the Go reference.
func (g *guardUploader) probe(t *quant.Tensor, w backend.Weight) error {
	rng := rand.New(rand.NewPCG(uint64(t.K), uint64(t.N)))
	x := make([]float32, t.K)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	got := make([]float32, t.N)
	for i := range got {
		got[i] = float32(math.NaN()) // poisoned: a kernel that writes nothing fails
	}
	if err := g.b.MatMul(got, x, w, 1); err != nil {
		// A backend that runs this format only inside whole graphs has no standalone kernel
		// to probe: say so rather than call it wrong.
		g.mu.Lock()
		g.notes = append(g.notes, fmt.Sprintf("guard: %s not probed on %s (%v)", t.Format, g.b.Name(), err))
		g.mu.Unlock()
		return nil
	}
	if guardFault != nil {
		guardFault(t.Format, got)
	}
	xr, how := x, ""
	if g.int8Activations && quant.Int8ActivationsFit(t.Format) {
		var err error
		if xr, err = activationsAsRounded(x, t.Format.Bits); err != nil {
			return err
		}
		how = " with int8 activations"
	}
	want, err := quant.MatMul(xr, 1, t)
	if err != nil {
		return err
	}
	e, err := quant.Compare(want, got)
	if err != nil || !(e.RelRMS <= guardBound) {
		return fmt.Errorf("%w: %s%s on %s, probe through %q: relative error %.3g > %.0e", ErrGuard, t.Format, how, g.b.Name(), t.Name, e.RelRMS, guardBound)
	}
	g.mu.Lock()
	g.notes = append(g.notes, fmt.Sprintf("guard: %s%s on %s matches the cpu reference (relative error %.2g)", t.Format, how, g.b.Name(), e.RelRMS))
	g.mu.Unlock()
	return nil
}

// Notes say which kernels failed their probe.
func (g *guardUploader) Notes() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.notes...)
}

// activationsAsRounded is x as a GEMV with int8 activations sees it: each block's codes times its
// scale (quant.QuantizeActivations). The rounding alone moves a Gaussian probe's product by
// ~0.5 % (relative RMS), half of guardBound; against the rounded activations a right kernel
// is off by its float roundings only, and a wrong one still by order one. Where the device turned
// the mode down (no packed dot products), the f32 kernel stays within that 0.5 %.
func activationsAsRounded(x []float32, bits int) ([]float32, error) {
	a, err := quant.QuantizeActivations(x, 1, len(x), quant.ActivationBlock(bits))
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(x))
	for k, c := range a.Codes {
		out[k] = a.Scales[k/a.Block] * float32(c)
	}
	return out, nil
}
