//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// generation is a decoder configuration's output: its greedy continuation of the job's prompt,
// and for each position of the reference's continuation the token it predicts next.
type generation struct {
	pieces []string // the greedy tokens' texts
	next   []int32  // next[i]: the token predicted after Prompt + pieces[:i] of the reference
}

// runDecoder times greedy generation and measures top-1 agreement with the reference. The
// engine gives tokens, not logits, so agreement is teacher-forced by re-prompting: position i
// is the prompt followed by the reference's first i token texts, run through both models with
// one token to generate. Both sides see the same re-encoded text, so tokenizer round trips
// cancel out.
func runDecoder(ctx context.Context, job *quanteval.Job, r *quanteval.Result, m *engine.Model, ref *reference) *generation {
	if err := m.Wait(ctx); err != nil {
		r.Error = oneLine(err.Error())
		return nil
	}
	p := m.Progress()
	r.LoadMS = p.ElapsedMS
	mem := m.Memory()
	r.F32Bytes, r.WeightBytes, r.ReductionPct = mem.F32Bytes, mem.ResidentBytes, mem.ReductionPct
	r.PeakHeldMiB = float64(mem.PeakHeldBytes) / (1 << 20)
	describe(r, m)
	r.Plan = plan(m)
	planned(r, m)
	greedy := engine.GenerateOptions{MaxTokens: job.Tokens}
	// The first call builds the decoder and its KV cache: untimed, as the embedding's warm-up.
	t0 := time.Now()
	if err := m.Generate(ctx, job.Prompt, engine.GenerateOptions{MaxTokens: 1}, func(engine.Token) error { return nil }); err != nil {
		r.Error = oneLine(err.Error())
		return nil
	}
	r.FirstOutputMS = r.LoadMS + msSince(t0)
	progress("%s %s: loaded in %.0f ms, generating %d tokens × %d runs", r.Platform, r.Format, r.LoadMS, job.Tokens, job.Runs)
	g := &generation{}
	var prefill, decode, total []float64
	for run := range job.Runs {
		var first time.Duration
		n := 0
		t0 := time.Now()
		err := m.Generate(ctx, job.Prompt, greedy, func(t engine.Token) error {
			if n == 0 {
				first = time.Since(t0)
			}
			n++
			if run == 0 {
				g.pieces = append(g.pieces, t.Text)
			}
			return nil
		})
		if err != nil {
			r.Error = oneLine(err.Error())
			return nil
		}
		all := time.Since(t0)
		r.GeneratedTokens = n
		prefill = append(prefill, float64(job.PromptTokens)/first.Seconds())
		if n > 1 {
			decode = append(decode, float64(n-1)/(all-first).Seconds())
		}
		total = append(total, float64(all.Microseconds())/1000)
	}
	r.PromptTokens = job.PromptTokens
	r.PrefillTokPerS = quanteval.Percentile(prefill, 50)
	r.DecodeTokPerS = quanteval.Percentile(decode, 50)
	r.Runs, r.LatencyMedianMS, r.LatencyP90MS = len(total), quanteval.Percentile(total, 50), quanteval.Percentile(total, 90)
	r.KVCacheBytes, _, _ = m.KVCache()
	r.Notes = append(r.Notes, fmt.Sprintf("latency: the whole generation (%d prompt tokens, %d generated, greedy)", job.PromptTokens, r.GeneratedTokens))

	pieces := g.pieces
	if ref != nil && ref.gen != nil {
		pieces = ref.gen.pieces
	}
	for i := range pieces {
		prompt := job.Prompt + strings.Join(pieces[:i], "")
		id := int32(-1)
		err := m.Generate(ctx, prompt, engine.GenerateOptions{MaxTokens: 1}, func(t engine.Token) error { id = t.ID; return nil })
		if err != nil {
			r.Error = oneLine(err.Error())
			return nil
		}
		g.next = append(g.next, id)
	}
	if ref == nil || ref.gen == nil {
		return g // this is the reference
	}
	same := 0
	for i, id := range g.next {
		if i < len(ref.gen.next) && id == ref.gen.next[i] {
			same++
		}
	}
	r.Reference = ref.name + " (greedy tokens, teacher-forced)"
	r.Top1Positions = len(ref.gen.next)
	if r.Top1Positions > 0 {
		r.Top1Agreement = float64(same) / float64(r.Top1Positions)
	}
	return g
}
