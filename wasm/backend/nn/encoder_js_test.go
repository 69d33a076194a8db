//go:build js && wasm

package nn

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// encoder is a USE-lite-shaped sentence encoder on synthetic weights: pre-norm transformer
// layers (LayerNorm, one qkv Linear, masked softmax attention, out Linear, LayerNorm, ReLU FFN),
// masked mean pooling, a tanh dense layer and L2 normalization. The tests and the benchmark of
// the exact, dequantizeLinear and QDQ modes all run it.
type encoder struct {
	B, T, D, H, F, Layers int
	Weights               quant.Format
}

// useLite is the size the issue measures at: width 512, FFN 1536, 16 tokens, two layers of 4
// heads (USE-lite's second layer).
func useLite(batch int, f quant.Format) encoder {
	return encoder{B: batch, T: 16, D: 512, H: 4, F: 1536, Layers: 2, Weights: f}
}

func (e encoder) String() string {
	return fmt.Sprintf("encoder B%d T%d D%d F%d L%d %v", e.B, e.T, e.D, e.F, e.Layers, e.Weights)
}

// build returns the graph (backendtest.Encoder with USE-lite's dense layer) and its weights.
// Matrices have Gaussian rows of varied scale around unit gain, so activations keep their size
// layer to layer and attention logits stay of order one, as in a trained encoder.
// (backendtest.RandomWeights' outlier column, scaled to unit gain in a 64-wide layer, makes
// every attention row one-hot: a test of softmax saturation, not of int8 arithmetic.)
func (e encoder) build(rng *rand.Rand) (*graph.Graph, map[string]*quant.Tensor, error) {
	g := graph.New(e.String())
	emb, _, ws := backendtest.Encoder{B: e.B, T: e.T, D: e.D, H: e.H, F: e.F, Layers: e.Layers, Dense: true}.Build(g, gaussianWeights{rng, e.Weights})
	return g, ws, g.Output(emb)
}

// gaussianWeights are the encoder's weights: matrices with N(0, 1) rows scaled by
// exp(0.3·N(0, 1))/√k, in format f; vectors mean + 0.1·N(0, 1) in float32.
type gaussianWeights struct {
	rng *rand.Rand
	f   quant.Format
}

func (w gaussianWeights) Matrix(name string, n, k int) *quant.Tensor {
	v := make([]float32, n*k)
	for r := 0; r < n; r++ {
		s := math.Exp(0.3*w.rng.NormFloat64()) / math.Sqrt(float64(k))
		for c := 0; c < k; c++ {
			v[r*k+c] = float32(s * w.rng.NormFloat64())
		}
	}
	return backendtest.MustQuantize(name, v, n, k, w.f)
}

func (w gaussianWeights) Vector(name string, n int, mean float64) *quant.Tensor {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + 0.1*w.rng.NormFloat64())
	}
	return backendtest.MustQuantize(name, v, 1, n, quant.Format{Bits: 32})
}

// inputs are token embeddings N(0, 1) with sentences of random length 1…T (the rest padding).
func (e encoder) inputs(rng *rand.Rand) []graph.Tensor {
	x := make([]float32, e.B*e.T*e.D)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	m := make([]float32, e.B*e.T)
	for b := 0; b < e.B; b++ {
		for t := 0; t < 1+rng.IntN(e.T); t++ {
			m[b*e.T+t] = 1
		}
	}
	return []graph.Tensor{graph.F32Tensor(x, e.B, e.T, e.D), graph.F32Tensor(m, e.B, e.T)}
}

// upload puts weights on b and releases them when the test ends.
func upload(t testing.TB, b backend.Backend, ws map[string]*quant.Tensor) backend.WeightMap {
	t.Helper()
	m := backend.WeightMap{}
	for name, q := range ws {
		w, err := b.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		m[name] = w
	}
	t.Cleanup(func() {
		for _, w := range m {
			w.Release()
		}
	})
	return m
}

// cpuRun runs g on the reference with the same weights.
func cpuRun(t testing.TB, g *graph.Graph, ws map[string]*quant.Tensor, in []graph.Tensor) []graph.Tensor {
	t.Helper()
	ref := cpu.New()
	p, err := ref.Compile(g, upload(t, ref, ws))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	out, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// relRMS is ‖got − want‖ / ‖want‖.
func relRMS(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		s += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / s)
}

// minCosine is the smallest cosine between matching rows of width d.
func minCosine(got, want []float32, d int) float64 {
	lo := 1.0
	for r := 0; r+d <= len(want); r += d {
		var gw, gg, ww float64
		for i := r; i < r+d; i++ {
			gw += float64(got[i]) * float64(want[i])
			gg += float64(got[i]) * float64(got[i])
			ww += float64(want[i]) * float64(want[i])
		}
		lo = min(lo, gw/math.Sqrt(gg*ww))
	}
	return lo
}
