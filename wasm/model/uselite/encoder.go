package uselite

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// What model.json's graph does (read from its 317 nodes, not guessed), for a batch of sentences
// given as TF.js's sparse `indices` [nnz, 2] (sentence, position) and `values` [nnz] (token ids):
//
//  1. ClipToMaxLength: entries at position ≥ 128 (the `ClipToMaxLength/Less/y` constant) are
//     dropped. Densified with SparseToDense, default −1: the padding mask is id > −1.
//  2. Embedding lookup of the ids (8002×256), plus a sinusoidal timing signal added to the real
//     tokens only: concat(sin(p·inv), cos(p·inv)) with p the token's position and inv the 128
//     inverse timescales the file stores (`AddTimingSignal/TimingSignal/ExpandDims_1`). That sum
//     is then added to the embeddings once more (`TransformerStack/Layer_0/add`): the first
//     layer sees 2·embedding + timing.
//  3. Two pre-norm transformer layers. Each: LayerNorm (eps from the file: 1e-6) → one 1×1 conv
//     to q‖k‖v → heads split (4 heads; 64 dims in layer 0, 128 in layer 1) → q scaled by the
//     file's constant (1/√d) → softmax(q·kᵀ + bias) with bias −1e9 on padded keys → ·v → heads
//     merged → 1×1 conv out. Layer 0 widens 256 → 512: its residual goes through a dense layer
//     (`AdjustResidualInput/dense`). Then LayerNorm → conv1 (ReLU) → conv2 on the real tokens
//     (gathered, then scattered back: padded rows become 0) → residual add.
//  4. Mean over the real tokens (divided by max(length, 1)), a 512×512 dense layer with tanh,
//     and L2 normalization (sum of squares floored at 1e-12).
//
// nibble's graph computes the same function on a padded batch [B, T]: padded positions hold id
// −1 (a zero embedding row) and are excluded from attention keys and from the mean by the mask.
// Their own rows differ from TF's zeros, but no real token and no output reads them.

// Tensor names in model.json's weights manifest.
const (
	apply   = "module_apply_default/Encoder_en/KonaTransformer/"
	encode  = apply + "Encode/"
	stack   = encode + "TransformerStack/"
	kernels = "module/Encoder_en/KonaTransformer/Encode/"

	NameEmbeddings   = "module/Embeddings_en"
	NameTanhWeights  = "module/Encoder_en/hidden_layers/tanh_layer_0/weights"
	NameTanhBias     = "module/Encoder_en/hidden_layers/tanh_layer_0/bias"
	nameL2Eps        = "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y"
	nameMaxLength    = apply + "ClipToMaxLength/Less/y"
	nameTimescales   = stack + "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1"
	nameEps          = stack + "Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x"
	nameHeads        = stack + "Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2"
	maskBiasName     = stack + "Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y"
	maxLayersToProbe = 16
)

// LayerNames are the tensors of transformer layer i.
type LayerNames struct {
	LN1Scale, LN1Bias, QKV, QKVBias, Out, OutBias     string
	Adjust, AdjustBias                                string // in the file only where the layer widens
	LN2Scale, LN2Bias, FFN1, FFN1Bias, FFN2, FFN2Bias string
	QScale, HeadDim                                   string
}

// Layer gives the names of layer i's tensors.
func Layer(i int) LayerNames {
	l := fmt.Sprintf("Layer_%d/TransformerLayer/", i)
	return LayerNames{
		LN1Scale:   encode + l + "layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat",
		LN1Bias:    encode + l + "layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat",
		QKV:        kernels + l + "MultiheadAttention/qkv_transform_single/kernel/part_0",
		QKVBias:    encode + l + "MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat",
		Out:        kernels + l + "MultiheadAttention/output_transform_single/kernel/part_0",
		OutBias:    encode + l + "MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat",
		Adjust:     encode + l + "dense/kernel/ConcatPartitions/concat",
		AdjustBias: encode + l + "dense/bias/ConcatPartitions/concat",
		LN2Scale:   encode + l + "FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat",
		LN2Bias:    encode + l + "FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat",
		FFN1:       stack + l + "FFN/conv1/Tensordot/Reshape_1",
		FFN1Bias:   encode + l + "FFN/conv1/bias/ConcatPartitions/concat",
		FFN2:       stack + l + "FFN/conv2/Tensordot/Reshape_1",
		FFN2Bias:   encode + l + "FFN/conv2/bias/ConcatPartitions/concat",
		QScale:     stack + l + "MultiheadAttention/mul/y",
		HeadDim:    stack + l + "MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3",
	}
}

// ErrNotUSELite says a model's tensors are not those of USE-lite.
var ErrNotUSELite = errors.New("uselite: not a Universal Sentence Encoder Lite model")

// Detect reports whether a TF.js weights manifest's tensor names are USE-lite's.
func Detect(names []string) bool {
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	return has[NameEmbeddings] && has[NameTanhWeights] && has[Layer(0).QKV] && has[nameTimescales]
}

// IsKernel reports whether name is a weight matrix stored [in, out] (TF's x·W, or a 1×1 conv
// kernel [1, 1, in, out]): the loader must hold it transposed, [out][in], so quantization groups
// run along the input dimension as every nibble kernel expects.
func IsKernel(name string) bool {
	if name == NameTanhWeights {
		return true
	}
	if !strings.HasPrefix(name, "module") {
		return false
	}
	return strings.HasSuffix(name, "/kernel/part_0") || strings.HasSuffix(name, "dense/kernel/ConcatPartitions/concat") ||
		strings.HasSuffix(name, "/Tensordot/Reshape_1")
}

// IsConfig reports whether name is a scalar or small constant the graph builder reads as a
// number (eps, head count, scales, timescales): the loader keeps a Go copy of these.
func IsConfig(name string) bool {
	switch name {
	case nameL2Eps, nameMaxLength, nameTimescales, nameEps, nameHeads:
		return true
	}
	return strings.HasSuffix(name, "MultiheadAttention/mul/y") || strings.HasSuffix(name, "split_last_dimension/Reshape/shape/3")
}

// ConfigNames lists the tensors Config reads, for a model of the given layer count.
func ConfigNames(layers int) []string {
	out := []string{nameL2Eps, nameMaxLength, nameTimescales, nameEps, nameHeads}
	for i := 0; i < layers; i++ {
		out = append(out, Layer(i).QScale, Layer(i).HeadDim)
	}
	return out
}

// LayerCount counts the transformer layers a manifest's names describe.
func LayerCount(names []string) int {
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	n := 0
	for n < maxLayersToProbe && has[Layer(n).QKV] {
		n++
	}
	return n
}

// LayerConfig is one transformer layer's hyper-parameters.
type LayerConfig struct {
	In, Width      int // input and output width (they differ where the residual is adjusted)
	Heads, HeadDim int
	FFN            int
	QScale         float32
	Adjust         bool // the residual goes through a dense layer In → Width
}

// Config is everything the graph needs that the file tells.
type Config struct {
	Vocab, Embed int // embedding table [Vocab, Embed]
	MaxLength    int // positions ≥ MaxLength are dropped
	Eps, L2Eps   float32
	Timescales   []float32 // inverse timescales: the timing signal has 2·len of them
	Layers       []LayerConfig
	Out          int // embedding width
}

// Shapes gives a tensor's shape as the file declares it; Values a config tensor's elements.
type (
	Shapes func(name string) ([]int, bool)
	Values func(name string) ([]float32, bool)
)

// ReadConfig reads the hyper-parameters from the model's own tensors, and checks that the
// shapes agree with each other, so a different USE variant fails here, with a reason, rather
// than producing wrong embeddings.
func ReadConfig(shapes Shapes, values Values, layers int) (*Config, error) {
	r := configReader{shapes, values}
	c := &Config{}
	emb, err := r.shape(NameEmbeddings, 2)
	if err != nil {
		return nil, err
	}
	c.Vocab, c.Embed = emb[0], emb[1]
	for _, p := range []struct {
		dst  *float32
		name string
	}{{&c.Eps, nameEps}, {&c.L2Eps, nameL2Eps}} {
		if *p.dst, err = r.scalar(p.name); err != nil {
			return nil, err
		}
	}
	ml, err := r.scalar(nameMaxLength)
	if err != nil {
		return nil, err
	}
	c.MaxLength = int(ml)
	heads, err := r.scalar(nameHeads)
	if err != nil {
		return nil, err
	}
	ts, ok := values(nameTimescales)
	if !ok || 2*len(ts) != c.Embed {
		return nil, notUSELite("timing signal has %d timescales for width %d", len(ts), c.Embed)
	}
	c.Timescales = ts
	width := c.Embed
	if layers == 0 {
		return nil, notUSELite("no transformer layer")
	}
	for i := 0; i < layers; i++ {
		l, err := r.layer(i, width, int(heads))
		if err != nil {
			return nil, err
		}
		c.Layers = append(c.Layers, l)
		width = l.Width
	}
	tw, err := r.shape(NameTanhWeights, 2)
	if err != nil {
		return nil, err
	}
	if tw[0] != width {
		return nil, notUSELite("tanh layer %v after width %d", tw, width)
	}
	c.Out = tw[1]
	return c, nil
}

// notUSELite is an ErrNotUSELite saying why.
func notUSELite(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotUSELite, fmt.Sprintf(format, args...))
}

// configReader reads ReadConfig's tensors: shapes checked for rank, constants for being
// scalars.
type configReader struct {
	shapes Shapes
	values Values
}

func (r configReader) scalar(name string) (float32, error) {
	v, ok := r.values(name)
	if !ok || len(v) != 1 {
		return 0, fmt.Errorf("%w: constant %s missing or not a scalar", ErrNotUSELite, name)
	}
	return v[0], nil
}

func (r configReader) shape(name string, rank int) ([]int, error) {
	s, ok := r.shapes(name)
	for ok && len(s) > rank && s[0] == 1 {
		s = s[1:] // 1×1 conv kernels [1, 1, in, out]
	}
	if !ok || len(s) != rank {
		return nil, fmt.Errorf("%w: tensor %s missing or not rank %d (%v)", ErrNotUSELite, name, rank, s)
	}
	return s, nil
}

// layer reads layer i, whose input is width wide: its kernels' shapes must chain.
func (r configReader) layer(i, width, heads int) (LayerConfig, error) {
	n := Layer(i)
	l := LayerConfig{In: width, Heads: heads}
	qkv, err := r.shape(n.QKV, 2)
	if err != nil {
		return l, err
	}
	out, err := r.shape(n.Out, 2)
	if err != nil {
		return l, err
	}
	f1, err := r.shape(n.FFN1, 2)
	if err != nil {
		return l, err
	}
	if qkv[0] != width || qkv[1]%3 != 0 {
		return l, notUSELite("layer %d: qkv kernel %v for input width %d", i, qkv, width)
	}
	inner := qkv[1] / 3
	hd, err := r.scalar(n.HeadDim)
	if err != nil {
		return l, err
	}
	l.HeadDim = int(hd)
	if l.Heads*l.HeadDim != inner || out[0] != inner {
		return l, notUSELite("layer %d: %d heads × %d ≠ attention width %d (output kernel %v)", i, l.Heads, l.HeadDim, inner, out)
	}
	l.Width = out[1]
	if l.QScale, err = r.scalar(n.QScale); err != nil {
		return l, err
	}
	if adj, ok := r.shapes(n.Adjust); ok {
		if len(adj) != 2 || adj[0] != width || adj[1] != l.Width {
			return l, notUSELite("layer %d: residual dense %v, want [%d %d]", i, adj, width, l.Width)
		}
		l.Adjust = true
	} else if width != l.Width {
		return l, notUSELite("layer %d widens %d → %d with no residual dense layer", i, width, l.Width)
	}
	if f1[0] != l.Width {
		return l, notUSELite("layer %d: FFN kernel %v for width %d", i, f1, l.Width)
	}
	l.FFN = f1[1]
	return l, nil
}

// Timing is the timing signal of positions 0..T−1: [T, Embed]. The product is rounded to
// float32 before sin and cos, as TF computes it.
func (c *Config) Timing(T int) []float32 {
	n := len(c.Timescales)
	out := make([]float32, T*2*n)
	for p := 0; p < T; p++ {
		for i, inv := range c.Timescales {
			a := float64(float32(p) * inv)
			out[p*2*n+i] = float32(math.Sin(a))
			out[p*2*n+n+i] = float32(math.Cos(a))
		}
	}
	return out
}

// Stage is one piece of the encoder that can run as soon as its weights are resident. Stages
// pass the residual stream x [B, T, width] from one to the next.
type Stage struct {
	Graph   *graph.Graph
	Weights []string
}

// Inputs of every graph the package builds: ids [B, T] (int32, −1 for padding) and mask [B, T]
// (1 for a real token, 0 for padding); staged graphs after the first take x [B, T, width] too.
const (
	InputIDs  = "ids"
	InputMask = "mask"
	InputX    = "x"
)

// Build is the whole encoder for a batch bucket: ids, mask → embeddings [B, Out], unit length.
func (c *Config) Build(B, T int) (*graph.Graph, error) {
	return c.segment(fmt.Sprintf("use-lite %d×%d", B, T), B, T, 0, c.NumStages())
}

// NumStages is how many pieces Stages splits the encoder into: the embedding, each layer, the head.
func (c *Config) NumStages() int { return len(c.Layers) + 2 }

// StageName names piece i of Stages: "embed", "layer 0", …, "head".
func (c *Config) StageName(i int) string {
	switch {
	case i == 0:
		return "embed"
	case i <= len(c.Layers):
		return fmt.Sprintf("layer %d", i-1)
	}
	return "head"
}

// Stages splits Build into the embedding, each layer and the head, so a caller can start on
// the first while later weights still stream. Running them in order gives Build's output.
func (c *Config) Stages(B, T int) ([]Stage, error) {
	var out []Stage
	for i := range c.NumStages() {
		g, err := c.Segment(B, T, i, i+1)
		if err != nil {
			return nil, err
		}
		out = append(out, Stage{Graph: g, Weights: g.Weights()})
	}
	return out, nil
}

// Segment is stages lo…hi−1 of Stages as one graph, so pieces that run on the same backend
// pass their activations on inside it. Its inputs: ids [B, T] when lo is 0, else x [B, T,
// width]; then the mask, when any of its stages reads it (all but the embedding). Its output
// is x, or the embeddings when hi is NumStages.
func (c *Config) Segment(B, T, lo, hi int) (*graph.Graph, error) {
	name := c.StageName(lo)
	if hi > lo+1 {
		name += "…" + c.StageName(hi-1)
	}
	return c.segment(fmt.Sprintf("use-lite %s %d×%d", name, B, T), B, T, lo, hi)
}

func (c *Config) segment(name string, B, T, lo, hi int) (*graph.Graph, error) {
	if lo < 0 || hi > c.NumStages() || lo >= hi {
		return nil, fmt.Errorf("use-lite: stages [%d, %d) of %d", lo, hi, c.NumStages())
	}
	g := graph.New(name)
	var x, mask graph.Value
	if lo == 0 {
		x = g.Input(InputIDs, graph.Int32, B, T)
	} else {
		x = g.Input(InputX, graph.Float32, B, T, c.width(lo))
	}
	if hi > 1 {
		mask = g.Input(InputMask, graph.Float32, B, T)
	}
	for i := lo; i < hi; i++ {
		switch {
		case i == 0:
			x = c.embed(g, x)
		case i <= len(c.Layers):
			x = c.layer(g, i-1, x, mask, B, T)
		default:
			x = c.head(g, x, mask)
		}
	}
	if err := g.Output(x); err != nil {
		return nil, err
	}
	return g, nil
}

// width is the residual stream's width entering stage i (i ≥ 1).
func (c *Config) width(i int) int {
	if i == 1 {
		return c.Embed
	}
	return c.Layers[i-2].Width
}

func (c *Config) embed(g *graph.Graph, ids graph.Value) graph.Value {
	T := g.Shape(ids)[1]
	x := g.Gather("embeddings", g.Weight(NameEmbeddings, c.Vocab, c.Embed), ids)
	// The file's graph adds the timing signal to the embeddings (AddTimingSignal), then adds
	// that sum to the embeddings again (TransformerStack/Layer_0/add): 2·e + timing, rounded as
	// TF rounds it.
	timed := g.Add("timing", x, g.Const("timing signal", c.Timing(T), T, c.Embed))
	return g.Add("embeddings+timed", x, timed)
}

func (c *Config) layer(g *graph.Graph, i int, x, mask graph.Value, B, T int) graph.Value {
	l, n := c.Layers[i], Layer(i)
	p := fmt.Sprintf("layer%d/", i)
	inner := l.Heads * l.HeadDim
	vec := func(name string, size int) graph.Value { return g.Weight(name, size) }
	h := g.LayerNorm(p+"ln", x, vec(n.LN1Scale, l.In), vec(n.LN1Bias, l.In), c.Eps)
	qkv := g.Linear(p+"qkv", h, g.Weight(n.QKV, 3*inner, l.In), vec(n.QKVBias, 3*inner))
	heads := func(j int, what string) graph.Value {
		s := g.Slice(p+what, qkv, 2, j*inner, (j+1)*inner)
		return g.Transpose(p+what+"/heads", g.Reshape(p+what+"/split", s, B, T, l.Heads, l.HeadDim), 0, 2, 1, 3)
	}
	q := g.Scale(p+"q/scaled", heads(0, "q"), l.QScale)
	scores := g.MatMul(p+"scores", q, heads(1, "k"), true)
	probs := g.Softmax(p+"probs", scores, g.Reshape(p+"keymask", mask, B, 1, 1, T))
	o := g.MatMul(p+"attend", probs, heads(2, "v"), false)
	o = g.Reshape(p+"merge", g.Transpose(p+"unheads", o, 0, 2, 1, 3), B, T, inner)
	attn := g.Linear(p+"out", o, g.Weight(n.Out, l.Width, inner), vec(n.OutBias, l.Width))
	res := x
	if l.Adjust {
		res = g.Linear(p+"residual", x, g.Weight(n.Adjust, l.Width, l.In), vec(n.AdjustBias, l.Width))
	}
	x = g.Add(p+"attn/residual", res, attn)
	h = g.LayerNorm(p+"ffn/ln", x, vec(n.LN2Scale, l.Width), vec(n.LN2Bias, l.Width), c.Eps)
	h = g.ReLU(p+"ffn/relu", g.Linear(p+"ffn/conv1", h, g.Weight(n.FFN1, l.FFN, l.Width), vec(n.FFN1Bias, l.FFN)))
	h = g.Linear(p+"ffn/conv2", h, g.Weight(n.FFN2, l.Width, l.FFN), vec(n.FFN2Bias, l.Width))
	return g.Add(p+"ffn/residual", x, h)
}

func (c *Config) head(g *graph.Graph, x, mask graph.Value) graph.Value {
	width := g.Shape(x)[2]
	pooled := g.MeanPool("pool", x, mask)
	y := g.Tanh("tanh", g.Linear("dense", pooled, g.Weight(NameTanhWeights, c.Out, width), g.Weight(NameTanhBias, c.Out)))
	return g.L2Normalize("l2", y, c.L2Eps)
}
