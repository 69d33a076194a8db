//go:build js && wasm

// Command quanttest is the page of tools/quanttest: a js/wasm program that a browser runner
// (wasmbrowsertest for Chromium, tools/browser/firefox for Firefox) starts in a real page. It
// reads its Job from the URL in NIBBLE_QUANTTEST_JOB, runs every platform × format through
// wasm/engine (and the peers asked for, in the same page), and writes one line per event to
// stdout, which both runners relay: "quanttest:probe {...}", "quanttest:result {...}",
// "quanttest:progress text", "quanttest:fatal text". It lives under wasm/ because the TF.js
// reference (wasm/internal/tfjsref) is internal to the library.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

func main() {
	if err := run(); err != nil {
		emit("fatal", oneLine(err.Error()))
		os.Exit(1)
	}
	emit("done", "")
}

func emit(kind string, v any) {
	switch v := v.(type) {
	case string:
		fmt.Printf("quanttest:%s %s\n", kind, v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			b, _ = json.Marshal(err.Error())
		}
		fmt.Printf("quanttest:%s %s\n", kind, b)
	}
}

func progress(format string, args ...any) { emit("progress", fmt.Sprintf(format, args...)) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// get fetches url whole (net/http is fetch on js/wasm).
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func run() error {
	ctx := context.Background()
	jobURL := os.Getenv("NIBBLE_QUANTTEST_JOB")
	if jobURL == "" {
		return fmt.Errorf("NIBBLE_QUANTTEST_JOB is not set: start this page with go run ./tools/quanttest run")
	}
	var job quanteval.Job
	b, err := get(ctx, jobURL)
	if err == nil {
		err = json.Unmarshal(b, &job)
	}
	if err != nil {
		return fmt.Errorf("reading the job: %w", err)
	}
	dev := engine.Probe()
	emit("probe", dev)
	platforms, missing := choose(job.Platforms, dev)
	for _, m := range missing {
		emit("result", quanteval.Result{Model: job.ModelName, Runtime: "nibble", Platform: m.name, Error: m.why})
	}
	var peers peerSet
	for _, p := range platforms {
		ref, outs := runPlatform(ctx, &job, dev, p)
		if slices.Contains(job.Compare, "tfjs") {
			peers.tfjs(ctx, &job, p, ref)
		}
		if slices.Contains(job.Compare, "ort") {
			peers.ort(ctx, &job, dev, p, ref, outs)
		}
	}
	return nil
}

// ortWhy is the ONNX Runtime Web row of a model with no ONNX export: wasm/graph/onnx exports
// USE-lite's graph (tools/quanttest does, natively); the other models are not exported.
const ortWhy = "not measured: ONNX Runtime Web runs ONNX graphs and only USE-lite is exported (wasm/graph/onnx); " +
	"per-layer MatMulNBits (4-bit, block 32) against nibble's matmul of the same weights is make bench-ort"

type missingPlatform struct{ name, why string }

// choose expands "all" to what the browser offers and checks the platforms named explicitly.
func choose(asked []string, dev *engine.Devices) (out []string, missing []missingPlatform) {
	offered := map[string]string{"cpu": ""}
	if dev.WebGPU.Available {
		offered["webgpu"] = ""
	}
	if dev.WebNN.Available {
		offered["webnn"] = ""
	}
	why := map[string]string{
		"webgpu": "webgpu is not available in this browser: " + dev.WebGPU.Error,
		"webnn":  "webnn is not available in this browser: " + dev.WebNN.Error,
	}
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range asked {
		switch p {
		case "all":
			for _, q := range []string{"webgpu", "webnn", "cpu"} {
				if _, ok := offered[q]; ok {
					add(q)
				}
			}
		case "auto":
			add("auto")
		default:
			if _, ok := offered[p]; ok {
				add(p)
			} else {
				missing = append(missing, missingPlatform{p, oneLine(why[p])})
			}
		}
	}
	return out, missing
}

// runPlatform loads the fp32 reference and then every format on one platform; it returns the
// reference (nil embeddings when the model embeds nothing or the reference failed) and the
// embeddings of every format that gave some, for peers holding the same weights.
func runPlatform(ctx context.Context, job *quanteval.Job, dev *engine.Devices, platform string) (*reference, map[string][][]float32) {
	formats := append([]string{"f32"}, job.Formats...)
	for _, p := range job.Policies {
		formats = append(formats, policyPrefix+p)
	}
	var ref *reference
	embs := map[string][][]float32{}
	done := map[string]bool{}
	for _, f := range formats {
		if done[f] {
			continue
		}
		done[f] = true
		r, out := runOne(ctx, job, dev, platform, f, ref)
		if out != nil && out.emb != nil && r.Error == "" {
			embs[f] = out.emb
		}
		if f == "f32" {
			ref = &reference{name: "nibble f32 on " + r.Platform, platform: r.Platform, f32Bytes: r.F32Bytes}
			if out != nil {
				ref.out, ref.gen = out.emb, out.gen
			}
			if !slices.Contains(job.Formats, "f32") {
				continue // the reference only: not a row the user asked for
			}
		}
		emit("result", r)
	}
	return ref, embs
}

type reference struct {
	name, platform string
	out            [][]float32
	f32Bytes       int64
	gen            *generation // a decoder's reference
}

// policyPrefix marks a configuration that the precision planner chooses (Options.Policy)
// rather than one format for every matrix.
const policyPrefix = "policy:"

// outputs are what a configuration produced, kept when it is the f32 reference.
type outputs struct {
	emb [][]float32 // an embedding model's vectors, one per text
	gen *generation // a decoder's greedy tokens
}

func runOne(ctx context.Context, job *quanteval.Job, dev *engine.Devices, platform, format string, ref *reference) (quanteval.Result, *outputs) {
	r := quanteval.Result{Model: job.ModelName, Runtime: "nibble", Platform: platform, Format: format}
	opt := engine.Options{Backend: platform, Format: format}
	if pol, ok := strings.CutPrefix(format, policyPrefix); ok {
		r.Policy, opt.Format, opt.Policy = pol, "", pol
	} else if q, err := engine.ParseFormat(format); err == nil {
		r.Bits, r.GroupSize = q.Bits, q.GroupSize
		if q.Bits < 16 {
			r.Scheme = "sym"
			if q.Scheme == quant.Asymmetric {
				r.Scheme = "asym"
			}
		}
	}
	if why := fits(job, dev, platform, format); why != "" {
		r.Error = fmt.Sprintf("%s at %s does not fit on %s: %s", job.ModelName, format, platform, why)
		return r, nil
	}
	progress("%s %s: loading", platform, format)
	start := time.Now()
	off := false
	opt.Cache = &off
	m, err := engine.Load(ctx, job.Model, opt)
	if err != nil {
		r.Error = oneLine(err.Error())
		return r, nil
	}
	defer m.Release()
	r.Platform = m.Backend.Name()
	describe(&r, m)
	if m.Arch() == engine.ArchLlama {
		return r, &outputs{gen: runDecoder(ctx, job, &r, m, ref)}
	}
	var out [][]float32
	if m.Arch() != "" {
		// Embed at once: the early stages run while later weights still stream (first output).
		out, err = m.Embed(ctx, job.Texts)
	}
	if err == nil {
		err = m.Wait(ctx)
	}
	if err != nil {
		r.Error = oneLine(err.Error())
		return r, nil
	}
	p := m.Progress()
	r.LoadMS, r.FirstOutputMS = p.ElapsedMS, p.FirstOutputMS
	mem := m.Memory()
	r.F32Bytes, r.WeightBytes, r.ReductionPct = mem.F32Bytes, mem.ResidentBytes, mem.ReductionPct
	r.PeakHeldMiB = float64(mem.PeakHeldBytes) / (1 << 20)
	describe(&r, m) // again: backends note the paths they took as weights arrived
	r.Plan = plan(m)
	planned(&r, m)
	if m.Arch() == "" {
		measureLayers(ctx, &r, m, job.Runs)
		return r, nil
	}
	progress("%s %s: loaded in %.0f ms, timing %d runs", r.Platform, format, r.LoadMS, job.Runs)
	loaded := time.Now()
	one := job.Texts[:1]
	ms, err := timeRuns(job.Runs, func() error { _, err := m.Embed(ctx, one); return err })
	if err != nil {
		r.Error = oneLine(err.Error())
		return r, &outputs{emb: out}
	}
	r.Runs, r.LatencyMedianMS, r.LatencyP90MS = len(ms), quanteval.Percentile(ms, 50), quanteval.Percentile(ms, 90)
	t0 := time.Now()
	if _, err := m.Embed(ctx, job.Texts); err != nil {
		r.Error = oneLine(err.Error())
		return r, &outputs{emb: out}
	}
	r.BatchMS, r.BatchTexts = msSince(t0), len(job.Texts)
	progress("%s %s: %.1f s in all: load and the set's first embedding %.1f s, warm-up and %d runs %.1f s, batch %.1f s",
		r.Platform, format, time.Since(start).Seconds(), loaded.Sub(start).Seconds(), job.Runs, t0.Sub(loaded).Seconds(), r.BatchMS/1000)
	compare(&r, ref, out)
	return r, &outputs{emb: out}
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// timeRuns runs f once untimed (the first call compiles the length bucket's graph) and then
// runs times.
func timeRuns(runs int, f func() error) ([]float64, error) {
	if err := f(); err != nil {
		return nil, err
	}
	ms := make([]float64, 0, runs)
	for range runs {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		ms = append(ms, msSince(t0))
	}
	return ms, nil
}

func compare(r *quanteval.Result, ref *reference, out [][]float32) {
	if ref == nil || ref.out == nil {
		return
	}
	a, err := quanteval.Compare(ref.out, out)
	if err != nil {
		r.Notes = append(r.Notes, err.Error())
		return
	}
	r.Reference = ref.name
	r.CosineMean, r.CosineMin, r.RelRMS, r.RankingAgreement = a.CosineMean, a.CosineMin, a.RelRMS, a.Ranking
}

// fits checks the natively measured need against what the browser said about the platform.
func fits(job *quanteval.Job, dev *engine.Devices, platform, format string) string {
	need, ok := job.Need[format]
	if !ok {
		return ""
	}
	var maxBind int64
	if platform == "webgpu" && dev.WebGPU.Available {
		maxBind = min(dev.WebGPU.Limits["maxStorageBufferBindingSize"], dev.WebGPU.Limits["maxBufferSize"])
	}
	return quanteval.Fits(need, maxBind, job.MemoryLimit)
}

// describe fills the adapter, the verdict and the features from the backend's own report.
func describe(r *quanteval.Result, m *engine.Model) {
	c := m.Backend.Caps()
	r.Adapter = c.Adapter
	r.Hardware = !c.Software
	switch {
	case c.Backend == "webgpu" && c.Software:
		r.Verdict = "software adapter (a CPU emulating the GPU): not a hardware figure"
	case c.Backend == "webgpu":
		r.Verdict = "real hardware GPU"
	case c.Backend == "webnn" && c.Software:
		r.Verdict = "software: WebNN on the CPU"
	case c.Backend == "webnn":
		r.Verdict = "real hardware (WebNN " + c.Adapter + ")"
	default:
		r.Verdict = "software: Go on the CPU (one wasm thread)"
	}
	var f []string
	if c.F16 {
		f = append(f, "f16")
	}
	if c.Subgroups {
		f = append(f, "subgroups")
	}
	if c.TimestampQuery {
		f = append(f, "timestamp-query")
	}
	if len(c.WeightBits) > 0 {
		f = append(f, fmt.Sprintf("weights %v bits", c.WeightBits))
	}
	r.Features = f
	r.Notes = slices.Compact(append(r.Notes[:0], m.Notes()...))
}

// planned adds what the planner says of a policy row's plan: the policy it resolved to ("auto"
// names its tier), the predicted worst loss, and its notes (a fallback to rules is one).
func planned(r *quanteval.Result, m *engine.Model) {
	p := m.Plan()
	if p == nil || r.Policy == "" {
		return
	}
	r.PlanPolicy = p.Policy
	if p.Predicted != nil {
		r.PredictedLoss = p.Predicted.WorstLoss
	}
	r.Notes = append(r.Notes, p.Notes...)
}

// plan groups the resident tensors by the format the backend holds them in.
func plan(m *engine.Model) []quanteval.Group {
	idx := map[string]int{}
	var out []quanteval.Group
	for _, t := range m.Tensors() {
		i, ok := idx[t.Format]
		if !ok {
			i = len(out)
			idx[t.Format] = i
			out = append(out, quanteval.Group{Format: t.Format})
		}
		out[i].Tensors++
		out[i].Bytes += t.Bytes
	}
	return out
}

// measureLayers reports a model the engine cannot run whole (weights only) by its layers:
// latency summed over the weight matrices, error of each product against the file's float32
// weights (the worst layer).
func measureLayers(ctx context.Context, r *quanteval.Result, m *engine.Model, runs int) {
	progress("%s %s: weights only, measuring each layer", r.Platform, r.Format)
	layers, err := m.Measure(ctx, engine.MeasureOptions{Runs: max(runs, 1)})
	if err != nil {
		r.Error = oneLine(err.Error())
		return
	}
	r.Reference = "float32 weights of the file (per layer, worst)"
	r.CosineMean, r.CosineMin = 1, 1
	for _, l := range layers {
		if l.Error != "" {
			r.Notes = append(r.Notes, l.Name+": "+l.Error)
			continue
		}
		r.LatencyMedianMS += l.MedianMS
		r.LatencyP90MS += l.MedianMS
		r.CosineMin = min(r.CosineMin, l.Cosine)
		r.RelRMS = max(r.RelRMS, l.RelRMS)
	}
	r.CosineMean = r.CosineMin
	r.Runs = max(runs, 1)
	r.Notes = append(r.Notes, fmt.Sprintf("latency: %d weight matrices, one product each (m=1), medians summed", len(layers)))
}
