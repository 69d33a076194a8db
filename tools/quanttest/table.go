//go:build !(js && wasm)

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// writeTable prints the results for people: one row per configuration, then per platform what
// ran it and the plans, then the trade-off of a sweep.
func writeTable(w io.Writer, rs []quanteval.Result) {
	if len(rs) == 0 {
		return
	}
	runs := 0
	for _, r := range rs {
		runs = max(runs, r.Runs)
	}
	if isDecoder(rs) {
		writeDecoderTable(w, rs, runs)
	} else {
		writeEmbeddingTable(w, rs, runs)
	}
	for _, r := range rs {
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s %s %s: %s\n", r.Platform, runtimeName(r), r.Format, r.Error)
		} else if r.NotRun != "" {
			fmt.Fprintf(w, "  not run: %s %s: %s\n", r.Platform, runtimeName(r), r.NotRun)
		}
	}
	for _, r := range rs {
		if r.SameWeights != "" {
			fmt.Fprintf(w, "  same weights: %s %s %s against %s: cosine mean %.6f, min %.6f\n", r.Platform, runtimeName(r), r.Format, r.SameWeights, r.SameWeightsCosineMean, r.SameWeightsCosineMin)
		}
	}
	writeAdapters(w, rs)
	if !isDecoder(rs) {
		writeTradeoff(w, rs) // its axes are embedding cosine and ranking
	}
}

// isDecoder says whether the rows are a decoder's (generation figures, no embeddings).
func isDecoder(rs []quanteval.Result) bool {
	for _, r := range rs {
		if r.GeneratedTokens > 0 {
			return true
		}
	}
	return false
}

func writeDecoderTable(w io.Writer, rs []quanteval.Result, runs int) {
	prompt, gen := 0, 0
	for _, r := range rs {
		prompt, gen = max(prompt, r.PromptTokens), max(gen, r.GeneratedTokens)
	}
	fmt.Fprintf(w, "\n%s in %s: %d prompt tokens prefilled, %d generated greedily (median of %d runs after a warm-up); top-1: share of the fp32 run's greedy tokens this configuration predicts too, teacher-forced by re-prompting (the engine exposes tokens, not logits: no logit error)\n\n", rs[0].Model, rs[0].Browser, prompt, gen, runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "platform\truntime\tformat\tf32\theld\tsaved\tKV cache\tload ms\tprefill tok/s\tdecode tok/s\tms med\ttop-1\tverdict\t")
	for _, r := range rs {
		if r.Error != "" || r.NotRun != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\n", r.Platform, runtimeName(r), r.Format, notMeasured(r))
			continue
		}
		top1 := "ref"
		if r.Reference != "" {
			top1 = fmt.Sprintf("%.0f%% of %d", 100*r.Top1Agreement, r.Top1Positions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.1f\t%s\t%s\t\n",
			r.Platform, runtimeName(r), r.Format, quanteval.Bytes(r.F32Bytes), quanteval.Bytes(r.WeightBytes), pct(r.ReductionPct),
			quanteval.Bytes(r.KVCacheBytes), r.LoadMS, r.PrefillTokPerS, r.DecodeTokPerS, r.LatencyMedianMS, top1, verdictShort(r))
	}
	tw.Flush()
}

func writeEmbeddingTable(w io.Writer, rs []quanteval.Result, runs int) {
	fmt.Fprintf(w, "\n%s in %s: error against the fp32 run on the same platform in the same browser; latency of one text after a warm-up (median / p90 of %d runs)\n\n", rs[0].Model, rs[0].Browser, runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "platform\truntime\tformat\tf32\theld\tsaved\tload ms\tfirst out ms\tms med\tms p90\tbatch ms\tcos mean\tcos min\trel RMS\tNN kept\tverdict\t")
	for _, r := range rs {
		if r.Error != "" || r.NotRun != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Platform, runtimeName(r), r.Format, notMeasured(r))
			continue
		}
		cos, lo, rms, nn := "ref", "ref", "ref", "ref"
		if r.Reference != "" && !(r.Runtime == "nibble" && r.Format == "f32") {
			cos, lo, rms = fmt.Sprintf("%.5f", r.CosineMean), fmt.Sprintf("%.5f", r.CosineMin), fmt.Sprintf("%.2g", r.RelRMS)
			nn = fmt.Sprintf("%.0f%%", 100*r.RankingAgreement)
		} else if r.Reference == "" && r.Runtime != "nibble" {
			cos, lo, rms, nn = "-", "-", "-", "-"
		}
		batch := "-"
		if r.BatchTexts > 0 {
			batch = fmt.Sprintf("%.0f (%d)", r.BatchMS, r.BatchTexts)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Platform, runtimeName(r), r.Format, quanteval.Bytes(r.F32Bytes), quanteval.Bytes(r.WeightBytes), pct(r.ReductionPct),
			r.LoadMS, r.FirstOutputMS, r.LatencyMedianMS, r.LatencyP90MS, batch, cos, lo, rms, nn, verdictShort(r))
	}
	tw.Flush()
}

// writeAdapters says what ran each platform, then the plans.
func writeAdapters(w io.Writer, rs []quanteval.Result) {
	seen := map[string]bool{}
	for _, r := range rs {
		key := r.Platform + "/" + runtimeName(r) + "/" + strings.Join(r.Features, ",")
		if r.Error != "" || r.NotRun != "" || seen[key] {
			continue
		}
		if len(seen) == 0 {
			fmt.Fprintln(w, "\nWhat ran each platform:")
		}
		seen[key] = true
		fmt.Fprintf(w, "  %-7s %-18s %s — %s", r.Platform, runtimeName(r), r.Adapter, r.Verdict)
		if len(r.Features) > 0 {
			fmt.Fprintf(w, "; features: %s", strings.Join(r.Features, ", "))
		}
		fmt.Fprintln(w)
	}
	header := "\nPlans (tensors by the format the backend holds them in):"
	for _, r := range rs {
		if r.Error == "" && len(r.Plan) > 0 {
			if header != "" {
				fmt.Fprintln(w, header)
				header = ""
			}
			fmt.Fprintf(w, "  %-7s %-14s %s%s\n", r.Platform, r.Format, quanteval.PlanString(r.Plan), planOf(r))
		}
	}
}

// planOf says what the planner made of a policy row: the plan it resolved to and its
// predicted worst loss.
func planOf(r quanteval.Result) string {
	if r.Policy == "" {
		return ""
	}
	s := " (plan " + r.PlanPolicy
	if r.PredictedLoss > 0 {
		s += fmt.Sprintf(", predicted worst 1−cos %.2g", r.PredictedLoss)
	}
	return s + ")"
}

// notMeasured is the row text of a configuration without figures.
func notMeasured(r quanteval.Result) string {
	if r.Error != "" {
		return "error (below)"
	}
	return "not run (below)"
}

// pct writes a percentage with no "-0.0%" for a rounding hair below zero.
func pct(p float64) string {
	if math.Abs(p) < 0.05 {
		p = 0
	}
	return fmt.Sprintf("%.1f%%", p)
}

func runtimeName(r quanteval.Result) string {
	if r.PeerBackend != "" {
		return r.Runtime + " " + r.PeerBackend
	}
	return r.Runtime
}

func verdictShort(r quanteval.Result) string {
	switch {
	case r.Hardware:
		return "hardware"
	case r.Platform == "webgpu" && (r.PeerBackend == "" || strings.HasSuffix(r.PeerBackend, "webgpu")):
		return "software adapter"
	}
	return "CPU"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// writeTradeoff prints, per platform with more than one quantized format, the formats from the
// smallest to the largest with what each costs in accuracy and gives in speed, marking the ones
// no other format beats on both bytes and cosine (the Pareto front).
func writeTradeoff(w io.Writer, rs []quanteval.Result) {
	by := map[string][]quanteval.Result{}
	var order []string
	for _, r := range rs {
		if r.Error != "" || r.Runtime != "nibble" || r.Reference == "" && r.Format != "f32" {
			continue
		}
		if _, ok := by[r.Platform]; !ok {
			order = append(order, r.Platform)
		}
		by[r.Platform] = append(by[r.Platform], r)
	}
	for _, p := range order {
		g := by[p]
		if len(g) < 3 {
			continue
		}
		slices.SortFunc(g, func(a, b quanteval.Result) int { return int(a.WeightBytes - b.WeightBytes) })
		fmt.Fprintf(w, "\nTrade-off on %s (smallest first; * = no other format is both smaller and closer to fp32):\n", p)
		for _, r := range g {
			mark := " "
			if pareto(r, g) {
				mark = "*"
			}
			cos := cosineOf(r)
			fmt.Fprintf(w, "  %s %-14s %10s (%6s saved)  1−cos %-8.2g NN kept %3.0f%%  %7.1f ms\n", mark, r.Format,
				quanteval.Bytes(r.WeightBytes), pct(r.ReductionPct), 1-cos, 100*rankingOf(r), r.LatencyMedianMS)
		}
	}
}

// cosineOf is the mean cosine to the reference; the reference itself is 1.
func cosineOf(r quanteval.Result) float64 {
	if r.Format == "f32" && r.Runtime == "nibble" {
		return 1
	}
	return r.CosineMean
}

func rankingOf(r quanteval.Result) float64 {
	if r.Format == "f32" && r.Runtime == "nibble" {
		return 1
	}
	return r.RankingAgreement
}

func pareto(r quanteval.Result, g []quanteval.Result) bool {
	for _, o := range g {
		if o.WeightBytes <= r.WeightBytes && cosineOf(o) >= cosineOf(r) && (o.WeightBytes < r.WeightBytes || cosineOf(o) > cosineOf(r)) {
			return false
		}
	}
	return true
}
