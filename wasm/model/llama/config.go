package llama

import (
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// Meta looks up GGUF metadata; *format.GGUFReader is one.
type Meta interface {
	Meta(key string) (any, bool)
}

// Config is what a Llama-family file states about its shape.
type Config struct {
	Layers     int
	Hidden     int // embedding_length
	FFN        int // feed_forward_length
	Heads      int
	KVHeads    int
	HeadDim    int // rope.dimension_count, = Hidden/Heads
	Vocab      int
	Context    int     // context_length: the longest sequence the model was trained for
	Eps        float32 // attention.layer_norm_rms_epsilon
	RopeBase   float32 // rope.freq_base (10000 when absent, as llama.cpp assumes)
	RopeScale  float32 // positions multiply by this (1/rope.scaling.factor for linear scaling)
	FreqFactor []float32
	// Tied is true when the file has no output.weight: the head is token_embd.
	Tied bool
}

// Tensor names in a GGUF Llama file.
const (
	TokenEmbd  = "token_embd.weight"
	OutputNorm = "output_norm.weight"
	Output     = "output.weight"
	RopeFreqs  = "rope_freqs.weight"
)

// LayerTensor is the name of a per-layer tensor ("attn_q", "ffn_down", ...).
func LayerTensor(i int, name string) string { return fmt.Sprintf("blk.%d.%s.weight", i, name) }

var layerTensors = []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"}

// ReadConfig reads the configuration from the file's metadata and checks its tensors against it:
// every tensor a layer needs, with the shape the metadata implies. An error says which key or
// tensor is missing or inconsistent (errs.ErrFormat), or what the file asks for that this package
// does not run (errs.ErrUnsupported).
func ReadConfig(m Meta, tensors []format.TensorInfo) (*Config, error) {
	arch, ok := m.Meta("general.architecture")
	if !ok {
		return nil, errs.Mark(fmt.Errorf("llama: the file has no general.architecture"), errs.ErrFormat)
	}
	if arch != "llama" {
		return nil, errs.Mark(fmt.Errorf("llama: general.architecture is %q: only \"llama\" runs as a decoder", arch), errs.ErrUnsupported)
	}
	r := metaReader{m: m}
	c := &Config{
		Layers:  r.int("llama.block_count", true),
		Hidden:  r.int("llama.embedding_length", true),
		FFN:     r.int("llama.feed_forward_length", true),
		Heads:   r.int("llama.attention.head_count", true),
		Context: r.int("llama.context_length", true),
	}
	c.KVHeads = r.int("llama.attention.head_count_kv", false)
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	c.Eps = r.float("llama.attention.layer_norm_rms_epsilon", true, 0)
	c.RopeBase = r.float("llama.rope.freq_base", false, 10000)
	if r.err != nil {
		return nil, r.err
	}
	if c.Heads <= 0 || c.Hidden%c.Heads != 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0 {
		return nil, errs.Mark(fmt.Errorf("llama: %d heads, %d KV heads, embedding_length %d: heads must divide it and KV heads the heads", c.Heads, c.KVHeads, c.Hidden), errs.ErrFormat)
	}
	c.HeadDim = c.Hidden / c.Heads
	if d := r.int("llama.rope.dimension_count", false); d != 0 && d != c.HeadDim {
		return nil, errs.Mark(fmt.Errorf("llama: llama.rope.dimension_count %d with head size %d: partial rotary embedding is not supported", d, c.HeadDim), errs.ErrUnsupported)
	}
	if c.HeadDim%2 != 0 {
		return nil, errs.Mark(fmt.Errorf("llama: head size %d is odd", c.HeadDim), errs.ErrFormat)
	}
	c.RopeScale = 1
	if typ, ok := m.Meta("llama.rope.scaling.type"); ok && typ != "none" {
		if typ != "linear" {
			return nil, errs.Mark(fmt.Errorf("llama: llama.rope.scaling.type %q: only linear scaling (and rope_freqs) is supported", typ), errs.ErrUnsupported)
		}
		f := r.float("llama.rope.scaling.factor", true, 0)
		if r.err != nil || !(f > 0) {
			return nil, errs.Mark(fmt.Errorf("llama: linear rope scaling needs a positive llama.rope.scaling.factor (%v)", r.err), errs.ErrFormat)
		}
		c.RopeScale = 1 / f
	}
	shapes := map[string][]int{}
	for _, t := range tensors {
		shapes[t.Name] = t.Shape
	}
	emb, ok := shapes[TokenEmbd]
	if !ok {
		return nil, errs.Mark(fmt.Errorf("llama: tensor %s is missing", TokenEmbd), errs.ErrFormat)
	}
	if len(emb) != 2 || emb[1] != c.Hidden {
		return nil, errs.Mark(fmt.Errorf("llama: %s is %v, want [vocab, %d]", TokenEmbd, emb, c.Hidden), errs.ErrFormat)
	}
	c.Vocab = emb[0]
	if v := r.int("llama.vocab_size", false); v != 0 && v != c.Vocab {
		return nil, errs.Mark(fmt.Errorf("llama: llama.vocab_size %d, %s has %d rows", v, TokenEmbd, c.Vocab), errs.ErrFormat)
	}
	_, hasOut := shapes[Output]
	c.Tied = !hasOut
	kv := c.KVHeads * c.HeadDim
	want := map[string][]int{OutputNorm: {c.Hidden}}
	if hasOut {
		want[Output] = []int{c.Vocab, c.Hidden}
	}
	for i := 0; i < c.Layers; i++ {
		for name, s := range map[string][]int{
			"attn_norm": {c.Hidden}, "attn_q": {c.Hidden, c.Hidden}, "attn_k": {kv, c.Hidden}, "attn_v": {kv, c.Hidden},
			"attn_output": {c.Hidden, c.Hidden}, "ffn_norm": {c.Hidden}, "ffn_gate": {c.FFN, c.Hidden},
			"ffn_up": {c.FFN, c.Hidden}, "ffn_down": {c.Hidden, c.FFN},
		} {
			want[LayerTensor(i, name)] = s
		}
	}
	for name, s := range want {
		got, ok := shapes[name]
		if !ok {
			return nil, errs.Mark(fmt.Errorf("llama: tensor %s is missing (llama.block_count is %d)", name, c.Layers), errs.ErrFormat)
		}
		if fmt.Sprint(got) != fmt.Sprint(s) {
			return nil, errs.Mark(fmt.Errorf("llama: tensor %s is %v, the metadata implies %v", name, got, s), errs.ErrFormat)
		}
	}
	if s, ok := shapes[RopeFreqs]; ok && (len(s) != 1 || s[0] != c.HeadDim/2) {
		return nil, errs.Mark(fmt.Errorf("llama: %s is %v, want [%d]", RopeFreqs, s, c.HeadDim/2), errs.ErrFormat)
	}
	return c, nil
}

// HasRopeFreqs reports whether the file scales rope frequencies per pair (Llama 3.1+); the
// loader then sets FreqFactor from that tensor's values.
func HasRopeFreqs(tensors []format.TensorInfo) bool {
	for _, t := range tensors {
		if t.Name == RopeFreqs {
			return true
		}
	}
	return false
}

// Tensors lists the tensors the decoder reads (rope_freqs aside: its values go in Config).
func (c *Config) Tensors() []string {
	out := []string{TokenEmbd}
	for i := 0; i < c.Layers; i++ {
		for _, n := range layerTensors {
			out = append(out, LayerTensor(i, n))
		}
	}
	out = append(out, OutputNorm)
	if !c.Tied {
		out = append(out, Output)
	}
	return out
}

// Rope gives the cos and sin tables [len(pos), HeadDim/2] for the positions, as ggml computes
// them (ggml_rope_cache_init): in float32, the angle of pair i stepped by multiplying by
// base^(−2/HeadDim), divided by the pair's frequency factor. Computing them the same way keeps
// nibble's logits within float32 rounding of llama.cpp's.
func (c *Config) Rope(pos []int) (cos, sin []float32) {
	half := c.HeadDim / 2
	cos, sin = make([]float32, len(pos)*half), make([]float32, len(pos)*half)
	step := float32(math.Pow(float64(c.RopeBase), -2/float64(c.HeadDim)))
	for t, p := range pos {
		theta := float32(p)
		for i := 0; i < half; i++ {
			th := theta
			if c.FreqFactor != nil {
				th /= c.FreqFactor[i]
			}
			th *= c.RopeScale
			cos[t*half+i] = float32(math.Cos(float64(th)))
			sin[t*half+i] = float32(math.Sin(float64(th)))
			theta *= step
		}
	}
	return cos, sin
}

// metaReader reads typed metadata, keeping the first error.
type metaReader struct {
	m   Meta
	err error
}

func (r *metaReader) missing(key string) {
	if r.err == nil {
		r.err = errs.Mark(fmt.Errorf("llama: metadata key %s is missing", key), errs.ErrFormat)
	}
}

func (r *metaReader) int(key string, required bool) int {
	v, ok := r.m.Meta(key)
	if !ok {
		if required {
			r.missing(key)
		}
		return 0
	}
	switch x := v.(type) {
	case uint32:
		return int(x)
	case int32:
		return int(x)
	case uint64:
		return int(x)
	case int64:
		return int(x)
	case uint16:
		return int(x)
	case uint8:
		return int(x)
	}
	if r.err == nil {
		r.err = errs.Mark(fmt.Errorf("llama: metadata %s is a %T, want an integer", key, v), errs.ErrFormat)
	}
	return 0
}

func (r *metaReader) float(key string, required bool, def float32) float32 {
	v, ok := r.m.Meta(key)
	if !ok {
		if required {
			r.missing(key)
		}
		return def
	}
	switch x := v.(type) {
	case float32:
		return x
	case float64:
		return float32(x)
	}
	if r.err == nil {
		r.err = errs.Mark(fmt.Errorf("llama: metadata %s is a %T, want a float", key, v), errs.ErrFormat)
	}
	return def
}
