//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/wasm/internal/tfjsref"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// peerSet keeps what a peer measured per backend, so that one TF.js run serves every platform
// that maps to its backend (cpu and webnn both compare with TF.js wasm).
type peerSet struct {
	runs map[string]*peerRun
}

type peerRun struct {
	res quanteval.Result
	out [][]float32
}

// tfjsBackend is the TF.js backend beside a nibble platform: the same adapter for WebGPU, the
// CPU (TF.js's fastest CPU path, wasm) otherwise.
func tfjsBackend(platform string) string {
	if platform == "webgpu" {
		return "webgpu"
	}
	return "wasm"
}

func (s *peerSet) tfjs(ctx context.Context, job *quanteval.Job, platform string, ref *reference) {
	b := tfjsBackend(platform)
	if s.runs == nil {
		s.runs = map[string]*peerRun{}
	}
	pr := s.runs[b]
	if pr == nil {
		pr = &peerRun{}
		pr.res, pr.out = runTFJS(ctx, job, b)
		s.runs[b] = pr
	}
	r := pr.res
	r.Platform = platform
	r.Notes = append([]string(nil), r.Notes...)
	if r.Error == "" {
		if ref != nil {
			r.F32Bytes, r.WeightBytes = ref.f32Bytes, ref.f32Bytes
		}
		compare(&r, ref, pr.out)
	}
	emit("result", r)
}

func runTFJS(ctx context.Context, job *quanteval.Job, backend string) (quanteval.Result, [][]float32) {
	r := quanteval.Result{Model: job.ModelName, Runtime: "tfjs " + tfjsref.Version, PeerBackend: backend, Format: "f32", Bits: 32}
	fail := func(err error) (quanteval.Result, [][]float32) {
		r.Error = oneLine(err.Error())
		return r, nil
	}
	if job.Vendor == "" {
		return fail(fmt.Errorf("no TF.js vendor URL in the job"))
	}
	if !strings.HasSuffix(job.Model, "model.json") && !strings.HasSuffix(job.Model, "/") {
		return fail(fmt.Errorf("TF.js runs a TF.js model.json; %s is not one", job.Model))
	}
	base := strings.TrimSuffix(job.Model, "model.json")
	progress("tfjs %s: loading TF.js and the model", backend)
	tok, err := tokenizer(ctx, base+"vocab.json")
	if err != nil {
		return fail(err)
	}
	ids := make([][]int32, len(job.Texts))
	for i, s := range job.Texts {
		ids[i] = tok.Encode(s)
	}
	t0 := time.Now()
	if err := tfjsref.Load(ctx, job.Vendor); err != nil {
		return fail(err)
	}
	if err := tfjsref.SetBackend(ctx, backend); err != nil {
		return fail(err)
	}
	// TF.js loads the model on its first call: that call is both the load and the first output.
	out, err := tfjsref.Embed(ctx, base+"model.json", ids)
	if err != nil {
		return fail(err)
	}
	r.LoadMS = msSince(t0)
	r.FirstOutputMS = r.LoadMS
	ms, err := timeRuns(job.Runs, func() error { _, err := tfjsref.Embed(ctx, base+"model.json", ids[:1]); return err })
	if err != nil {
		return fail(err)
	}
	r.Runs, r.LatencyMedianMS, r.LatencyP90MS = len(ms), quanteval.Percentile(ms, 50), quanteval.Percentile(ms, 90)
	t1 := time.Now()
	if _, err := tfjsref.Embed(ctx, base+"model.json", ids); err != nil {
		return fail(err)
	}
	r.BatchMS, r.BatchTexts = msSince(t1), len(ids)
	if f, err := tfjsref.Describe(ctx); err == nil {
		r.Adapter = f.String()
		r.Hardware = backend == "webgpu" && !f.Adapter.IsFallbackAdapter
		if backend == "webgpu" && f.Adapter.IsFallbackAdapter {
			r.Verdict = "software adapter (a CPU emulating the GPU): not a hardware figure"
		} else if backend == "webgpu" {
			r.Verdict = "real hardware GPU"
		} else {
			r.Verdict = fmt.Sprintf("software: TF.js wasm on the CPU, %d thread(s)", f.WasmThreads)
		}
	}
	r.Notes = append(r.Notes, "load and first output are one call: TF.js fetches the whole model, then runs it; f32 bytes are the file's")
	return r, out
}

func tokenizer(ctx context.Context, url string) (*uselite.Tokenizer, error) {
	b, err := get(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("use-lite vocabulary: %w", err)
	}
	return uselite.NewTokenizer(b)
}
