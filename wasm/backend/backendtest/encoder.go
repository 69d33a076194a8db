package backendtest

import (
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Encoder is a transformer sentence encoder the shape of Universal Sentence Encoder Lite's:
// Layers pre-norm layers of width D (LayerNorm, one qkv Linear, H heads of softmax attention
// under a key padding mask, an out Linear, LayerNorm, a ReLU FFN of width F), then masked mean
// pooling, an optional dense layer, tanh and L2 normalization, over B sequences of T tokens.
// The conformance block case, the WebNN tests and benchmark and the WebGPU benchmark all build
// it, each with its own weights (EncoderWeights).
type Encoder struct {
	B, T, D, H, F, Layers int
	// Dense adds USE-lite's D×D dense layer between pooling and tanh.
	Dense bool
}

// EncoderWeights draws an encoder's weights: Matrix a [n, k] weight matrix in the source's
// format, Vector a float32 [n] vector. mean is what a trained layer's vector centres on (1 for
// a LayerNorm gain, 0 for a bias); a source may ignore it.
type EncoderWeights interface {
	Matrix(name string, n, k int) *quant.Tensor
	Vector(name string, n int, mean float64) *quant.Tensor
}

// Build adds the encoder to g: inputs "x" [B, T, D] float32 token embeddings and "mask" [B, T]
// (1 for a token, 0 for padding). It returns the embedding ("l2", [B, D]), the last layer's
// hidden states ([B, T, D]) and the weights drawn, by name; the caller picks the outputs.
// Weights are drawn in a fixed order (layer by layer, each matrix before its bias), so a
// seeded source gives the same encoder every time. Layer l's weights are named "layer<l>/…".
func (e Encoder) Build(g *graph.Graph, src EncoderWeights) (embedding, hidden graph.Value, weights map[string]*quant.Tensor) {
	w := drawn{g: g, src: src, t: map[string]*quant.Tensor{}}
	B, T, D := e.B, e.T, e.D
	x := g.Input("x", graph.Float32, B, T, D)
	mask := g.Input("mask", graph.Float32, B, T)
	keys := g.Reshape("keymask", mask, B, 1, 1, T)
	for l := 0; l < e.Layers; l++ {
		x = e.layer(w, fmt.Sprintf("layer%d/", l), x, keys)
	}
	pooled := g.MeanPool("pool", x, mask)
	if e.Dense {
		pooled = g.Linear("dense", pooled, w.matrix("dense", D, D), w.vector("dense.b", D, 0))
	}
	return g.L2Normalize("l2", g.Tanh("tanh", pooled), 1e-12), x, w.t
}

// layer is one pre-norm encoder layer over x [B, T, D], its weights and nodes named p+"…".
func (e Encoder) layer(w drawn, p string, x, keys graph.Value) graph.Value {
	g := w.g
	B, T, D, H, F := e.B, e.T, e.D, e.H, e.F
	Dh := D / H
	h := g.LayerNorm(p+"ln1", x, w.vector(p+"ln1.g", D, 1), w.vector(p+"ln1.b", D, 0), 1e-6)
	qkv := g.Linear(p+"qkv", h, w.matrix(p+"qkv", 3*D, D), w.vector(p+"qkv.b", 3*D, 0))
	heads := func(i int) graph.Value {
		s := g.Slice(fmt.Sprint(p, "split", i), qkv, 2, i*D, (i+1)*D)
		return g.Transpose(fmt.Sprint(p, "heads", i), g.Reshape(fmt.Sprint(p, "r", i), s, B, T, H, Dh), 0, 2, 1, 3)
	}
	q := g.Scale(p+"q", heads(0), float32(1/math.Sqrt(float64(Dh))))
	probs := g.Softmax(p+"probs", g.MatMul(p+"scores", q, heads(1), true), keys)
	o := g.Reshape(p+"merge", g.Transpose(p+"unheads", g.MatMul(p+"attend", probs, heads(2), false), 0, 2, 1, 3), B, T, D)
	x = g.Add(p+"res1", x, g.Linear(p+"out", o, w.matrix(p+"out", D, D), w.vector(p+"out.b", D, 0)))
	h = g.LayerNorm(p+"ln2", x, w.vector(p+"ln2.g", D, 1), w.vector(p+"ln2.b", D, 0), 1e-6)
	h = g.ReLU(p+"relu", g.Linear(p+"ffn1", h, w.matrix(p+"ffn1", F, D), w.vector(p+"ffn1.b", F, 0)))
	return g.Add(p+"res2", x, g.Linear(p+"ffn2", h, w.matrix(p+"ffn2", D, F), w.vector(p+"ffn2.b", D, 0)))
}

// drawn adds each weight its source draws to the graph and keeps it by name.
type drawn struct {
	g   *graph.Graph
	src EncoderWeights
	t   map[string]*quant.Tensor
}

func (w drawn) matrix(name string, n, k int) graph.Value {
	w.t[name] = w.src.Matrix(name, n, k)
	return w.g.Weight(name, n, k)
}

func (w drawn) vector(name string, n int, mean float64) graph.Value {
	w.t[name] = w.src.Vector(name, n, mean)
	return w.g.Weight(name, n)
}
