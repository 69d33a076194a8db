package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// MeasureOptions tune Measure. Field names are the JS API's.
type MeasureOptions struct {
	M         int    `json:"m"`         // activation rows; default 1 (a decode step)
	Runs      int    `json:"runs"`      // timed runs per layer after one warm-up; default 5
	MaxLayers int    `json:"maxLayers"` // default 64
	Seed      uint64 `json:"seed"`
	// OnLayer, if set, is called with each layer's result as soon as it is measured.
	OnLayer func(LayerResult) `json:"-"`
}

// LayerResult is one weight matrix measured on the model's backend.
type LayerResult struct {
	Name     string `json:"name"`
	N        int    `json:"n"`
	K        int    `json:"k"`
	M        int    `json:"m"`
	Format   string `json:"format"`
	Bytes    int64  `json:"bytes"`
	F32Bytes int64  `json:"f32Bytes"`
	// MedianMS and MinMS time Model.MatMul end to end as the caller sees it: activations in,
	// dispatch, result read back.
	MedianMS float64 `json:"medianMs"`
	MinMS    float64 `json:"minMs"`
	Runs     int     `json:"runs"`
	// Error of the backend's result against the float32 weights of the file, accumulated in
	// float64 (quant.MatMul): quantization error and kernel rounding together.
	RelRMS float64 `json:"relRms"`
	Cosine float64 `json:"cosine"`
	MaxAbs float64 `json:"maxAbs"`
	Error  string  `json:"error,omitempty"`
}

// Measure times every weight matrix on the model's backend and compares each product with a
// float32 reference. The reference streams the model's files a second time with a float32 plan;
// each tensor is multiplied as it arrives and dropped, so the full-precision model is never held.
func (m *Model) Measure(ctx context.Context, opt MeasureOptions) ([]LayerResult, error) {
	if err := m.Wait(ctx); err != nil {
		return nil, err
	}
	if opt.M <= 0 {
		opt.M = 1
	}
	if opt.Runs <= 0 {
		opt.Runs = 5
	}
	if opt.MaxLayers <= 0 {
		opt.MaxLayers = 64
	}
	layers := m.layerInfos()
	if len(layers) > opt.MaxLayers {
		layers = layers[:opt.MaxLayers]
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6e6962626c65))
	xs := map[string][]float32{}
	for _, t := range layers {
		n, k, ok := m.Shape(t.Name)
		if !ok || n == 0 {
			continue
		}
		x := make([]float32, opt.M*k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		xs[t.Name] = x
	}
	refs, err := Reference(ctx, m.Spec, xs, opt.M)
	if err != nil {
		return nil, fmt.Errorf("float32 reference: %w", err)
	}
	var out []LayerResult
	for _, t := range layers {
		x, ok := xs[t.Name]
		if !ok {
			continue
		}
		r := m.measureLayer(ctx, t, x, refs[t.Name], opt)
		if opt.OnLayer != nil {
			opt.OnLayer(r)
		}
		out = append(out, r)
	}
	return out, nil
}

func (m *Model) measureLayer(ctx context.Context, t format.TensorInfo, x, ref []float32, opt MeasureOptions) LayerResult {
	n, k, _ := m.Shape(t.Name)
	r := LayerResult{Name: t.Name, N: n, K: k, M: opt.M, Format: m.plan(&t).String(), F32Bytes: 4 * t.NumElements()}
	if w, ok := m.load.Weight(t.Name); ok {
		r.Bytes = w.Bytes()
	}
	y, err := m.MatMul(t.Name, x, opt.M) // warm-up: pipelines and graphs are built on first use
	if err != nil {
		r.Error = err.Error()
		return r
	}
	times := make([]float64, 0, opt.Runs)
	for range opt.Runs {
		if ctx.Err() != nil {
			r.Error = ctx.Err().Error()
			return r
		}
		t0 := time.Now()
		if y, err = m.MatMul(t.Name, x, opt.M); err != nil {
			r.Error = err.Error()
			return r
		}
		times = append(times, ms(time.Since(t0)))
	}
	slices.Sort(times)
	r.Runs, r.MinMS, r.MedianMS = len(times), times[0], median(times)
	if ref == nil {
		r.Error = "no reference (tensor missing from the second stream)"
		return r
	}
	e, err := quant.Compare(ref, y)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if math.IsNaN(e.RelRMS) || math.IsNaN(e.Cosine) || math.IsInf(e.MaxAbs, 0) || math.IsNaN(e.MaxAbs) {
		// JSON has no NaN: report it as an error, not as a number.
		r.Error = "the result holds NaN or Inf"
		return r
	}
	r.RelRMS, r.Cosine, r.MaxAbs = e.RelRMS, e.Cosine, e.MaxAbs
	return r
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Reference streams spec's files with every tensor kept as float32 and returns, for each name in
// xs, quant.MatMul(xs[name], m, W) (float64 accumulation). Each tensor is dropped once multiplied.
func Reference(ctx context.Context, spec *Spec, xs map[string][]float32, m int) (map[string][]float32, error) {
	ref := &refUploader{xs: xs, m: m, out: map[string][]float32{}}
	plan, up := heldLayout(spec, func(*format.TensorInfo) quant.Format { return stream.F32 }, ref)
	l := stream.Start(ctx, up, stream.Options{Plan: plan, Reader: spec.Reader}, spec.Sources...)
	defer l.Release()
	if _, err := l.Result(ctx); err != nil {
		return nil, err
	}
	ref.mu.Lock()
	defer ref.mu.Unlock()
	if ref.err != nil {
		return nil, ref.err
	}
	return ref.out, nil
}

// refUploader multiplies each float32 tensor it is handed and keeps only the product.
type refUploader struct {
	xs  map[string][]float32
	m   int
	mu  sync.Mutex
	out map[string][]float32
	err error
}

func (u *refUploader) Upload(t *quant.Tensor) (backend.Weight, error) {
	if x, ok := u.xs[t.Name]; ok {
		y, err := quant.MatMul(x, u.m, t)
		u.mu.Lock()
		if err != nil && u.err == nil {
			u.err = fmt.Errorf("%s: %w", t.Name, err)
		}
		u.out[t.Name] = y
		u.mu.Unlock()
	}
	return dropped{name: t.Name, n: t.N, k: t.K, f: t.Format}, nil
}

// dropped is the Weight the reference loader gets: the tensor itself is already gone.
type dropped struct {
	name string
	n, k int
	f    quant.Format
}

func (d dropped) Name() string         { return d.name }
func (d dropped) Shape() (int, int)    { return d.n, d.k }
func (d dropped) Format() quant.Format { return d.f }
func (d dropped) Bytes() int64         { return 0 }
func (d dropped) Release() error       { return nil }
