package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// decoder is a GGUF Llama decoder read once into float32 and held on the cpu backend, so that
// decoders with any per-tensor formats can be run without reading the file again: what
// measures the decoder's sensitivity and its plans natively.
type decoder struct {
	cfg   *llama.Config
	tok   *llama.Tokenizer
	order []string // the weights the decoder reads, in file order
	rows  map[string]heldRows
	f32   backend.WeightMap // uploaded once: the weights a trial does not change
	b     *cpu.Backend
	quant quant.Options
}

type heldRows struct {
	n, k int
	w    []float32
}

// recorder is the cpu backend keeping what it was given: the file's tensors as stored.
type recorder struct {
	*cpu.Backend
	order []string
	got   map[string]*quant.Tensor
}

func (r *recorder) Upload(q *quant.Tensor) (backend.Weight, error) {
	r.order = append(r.order, q.Name)
	r.got[q.Name] = q
	return r.Backend.Upload(q)
}

// openDecoder reads a GGUF decoder as the tests do (llama.ReadGGUF) and keeps each weight's
// values as float32 rows.
func openDecoder(file string) (*decoder, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	rec := &recorder{Backend: cpu.New(), got: map[string]*quant.Tensor{}}
	f, err := llama.ReadGGUF(bufio.NewReaderSize(fh, 1<<20), rec)
	if err != nil {
		return nil, err
	}
	d := &decoder{cfg: f.Config, tok: f.Tokenizer, order: rec.order, rows: map[string]heldRows{}, f32: f.Weights, b: rec.Backend}
	for _, name := range rec.order {
		q := rec.got[name]
		d.rows[name] = heldRows{q.N, q.K, quant.Dequantize(q)}
		if q.Bits != 32 {
			// A quantized file's tensors are held as their float32 values, the reference.
			d.f32[name].Release()
			if d.f32[name], err = d.upload(name, quant.Format{Bits: 32}); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

func (d *decoder) upload(name string, f quant.Format) (backend.Weight, error) {
	r := d.rows[name]
	q, err := quant.Quantize(name, r.w, r.n, r.k, f, d.quant)
	if err != nil {
		return nil, fmt.Errorf("%s as %s: %w", name, f, err)
	}
	return d.b.Upload(q)
}

// tensors lists the decoder's tensors as the planner sees them.
func (d *decoder) tensors() []plan.Tensor {
	out := make([]plan.Tensor, 0, len(d.order))
	for _, name := range d.order {
		r := d.rows[name]
		out = append(out, plan.NewTensor(name, []int{r.n, r.k}))
	}
	return out
}

// prompts tokenizes texts as a prompt is (BOS first), each cut to at most limit tokens.
func (d *decoder) prompts(texts []string, limit int) [][]int32 {
	out := make([][]int32, len(texts))
	for i, s := range texts {
		ids := append([]int32{d.tok.BOS}, d.tok.Encode(s, false)...)
		out[i] = ids[:min(len(ids), limit, d.cfg.Context)]
	}
	return out
}

// logits runs every prompt from an empty cache with the tensors in the formats formatOf names
// (the rest float32) and returns each prompt's logits at every position; bytes is what the
// weights occupy.
func (d *decoder) logits(ctx context.Context, formatOf map[string]quant.Format, prompts [][]int32) (out [][][]float32, bytes int64, err error) {
	ws := backend.WeightMap{}
	for _, name := range d.order {
		w := d.f32[name]
		if f, ok := formatOf[name]; ok && f.Bits != 32 {
			if w, err = d.upload(name, f); err != nil {
				return nil, 0, err
			}
			defer w.Release()
		}
		ws[name] = w
		bytes += w.Bytes()
	}
	m, err := llama.New(d.cfg, d.b, ws, llama.Options{})
	if err != nil {
		return nil, 0, err
	}
	defer m.Release()
	out = make([][][]float32, len(prompts))
	for i, p := range prompts {
		m.Reset()
		rows, err := m.Forward(ctx, p, true)
		if err != nil {
			return nil, 0, err
		}
		out[i] = make([][]float32, len(rows))
		for t, r := range rows {
			out[i][t] = append([]float32(nil), r...)
		}
	}
	return out, bytes, nil
}

// divergence is how far one run's logits are from the reference's on the same prompts, over
// every next-token position (teacher-forced: both read the prompt's tokens, not their own).
type divergence struct {
	KL        []float64 // per prompt: mean over positions of KL(p_ref ‖ p), nats
	AbsLogit  float64   // mean |Δ logit| over every position and vocabulary entry
	Agree     int       // positions whose argmax matches the reference's
	Positions int
}

func (v divergence) meanKL() (mean, worst float64) {
	for _, k := range v.KL {
		mean += k / float64(len(v.KL))
		worst = max(worst, k)
	}
	return mean, worst
}

func compareLogits(ref, got [][][]float32) divergence {
	v := divergence{KL: make([]float64, len(ref))}
	var absSum float64
	var absN int
	for i := range ref {
		for t := range ref[i] {
			r, g := ref[i][t], got[i][t]
			v.KL[i] += quanteval.KL(r, g) / float64(len(ref[i]))
			for j := range r {
				absSum += math.Abs(float64(g[j] - r[j]))
			}
			absN += len(r)
			if argmax(r) == argmax(g) {
				v.Agree++
			}
			v.Positions++
		}
	}
	v.AbsLogit = absSum / float64(max(absN, 1))
	return v
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// decoderSensitivity lowers each weight matrix alone to each candidate format and records the
// per-prompt KL divergence from the fp32 decoder's next-token distributions.
func (d *decoder) sensitivity(ctx context.Context, model string, prompts [][]int32, cands []quant.Format, progress func(name string, l plan.Loss)) (*plan.Sensitivity, error) {
	ref, _, err := d.logits(ctx, nil, prompts)
	if err != nil {
		return nil, err
	}
	s := &plan.Sensitivity{Model: model, Metric: "KL(p_fp32 ‖ p) of the next token, nats, mean over a prompt's positions", Samples: len(prompts)}
	for _, t := range d.tensors() {
		if !t.Matrix {
			continue
		}
		ts := plan.TensorSensitivity{Name: t.Name, Shape: t.Shape}
		for _, f := range cands {
			got, _, err := d.logits(ctx, map[string]quant.Format{t.Name: f}, prompts)
			if err != nil {
				return nil, err
			}
			v := compareLogits(ref, got)
			l := plan.Loss{Format: f.String(), Bytes: t.Bytes(f), PerSample: v.KL}
			l.Mean, l.Worst = v.meanKL()
			ts.Formats = append(ts.Formats, l)
			if progress != nil {
				progress(t.Name, l)
			}
		}
		s.Tensors = append(s.Tensors, ts)
	}
	return s, nil
}

// decoderRow is one plan measured on the evaluation prompts.
type decoderRow struct {
	Policy     string
	Bytes      int64
	Reduction  float64
	MeanKL     float64
	WorstKL    float64 // the worst prompt's mean KL
	AbsLogit   float64
	Top1       float64 // fraction of positions whose argmax matches fp32's
	Predicted  float64 // the plan's predicted worst loss (−1: none)
	PlanBudget int64
}

// evaluateDecoder makes each policy's plan for the decoder and measures it on prompts. A
// policy name may also be a format (a uniform plan), or "mixed@NAME": the mixed policy under a
// budget of NAME's bytes.
func (d *decoder) evaluate(ctx context.Context, prompts [][]int32, sens *plan.Sensitivity, names []string, budget int64, maxLoss float64) ([]decoderRow, error) {
	ref, _, err := d.logits(ctx, nil, prompts)
	if err != nil {
		return nil, err
	}
	var rows []decoderRow
	planFor := func(name string, budget int64) (*plan.Plan, error) {
		pol, err := policyOrFormat(name)
		if err != nil {
			return nil, err
		}
		if pol.Mixed && maxLoss > 0 {
			pol.MaxLoss = maxLoss
		}
		return plan.Make(plan.Request{Tensors: d.tensors(), Policy: pol, Sensitivity: sens, Budget: budget})
	}
	for _, name := range names {
		b := budget
		label := name
		if base, ok := strings.CutPrefix(name, "mixed@"); ok {
			p, err := planFor(base, 0)
			if err != nil {
				return nil, err
			}
			b, name = p.Bytes, "mixed"
			label = fmt.Sprintf("mixed, budget = %s's bytes", base)
		}
		p, err := planFor(name, b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		formats := map[string]quant.Format{}
		for _, c := range p.Tensors {
			formats[c.Name] = c.Format
		}
		got, bytes, err := d.logits(ctx, formats, prompts)
		if err != nil {
			return nil, err
		}
		if bytes != p.Bytes {
			return nil, fmt.Errorf("%s: the plan says %d bytes, the cpu backend holds %d", label, p.Bytes, bytes)
		}
		v := compareLogits(ref, got)
		r := decoderRow{Policy: label, Bytes: p.Bytes, Reduction: p.ReductionPct(), AbsLogit: v.AbsLogit,
			Top1: float64(v.Agree) / float64(v.Positions), Predicted: -1, PlanBudget: b}
		r.MeanKL, r.WorstKL = v.meanKL()
		if p.Predicted != nil {
			r.Predicted = p.Predicted.WorstLoss
		}
		rows = append(rows, r)
		if os.Getenv("PLAN_TABLE") != "" {
			fmt.Println(p.Table())
		}
	}
	return rows, nil
}

// policyOrFormat is a named policy, or a uniform plan when name is a format.
func policyOrFormat(name string) (plan.Policy, error) {
	pol, err := plan.PolicyByName(name)
	if err == nil {
		return pol, nil
	}
	if f, ferr := plan.ParseFormat(name); ferr == nil {
		return plan.Uniform(f), nil
	}
	return pol, err
}

func printDecoderTable(w io.Writer, rows []decoderRow) {
	fmt.Fprintf(w, "| policy | bytes | reduction | mean KL | worst prompt KL | mean abs Δ logit | top-1 agreement | predicted worst KL |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		pred := "–"
		if r.Predicted >= 0 {
			pred = fmt.Sprintf("%.4f", r.Predicted)
		}
		fmt.Fprintf(w, "| %s | %d | %.1f %% | %.4f | %.4f | %.4f | %.1f %% | %s |\n", r.Policy, r.Bytes, r.Reduction, r.MeanKL, r.WorstKL, r.AbsLogit, 100*r.Top1, pred)
	}
}
