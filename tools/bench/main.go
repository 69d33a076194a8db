//go:build !(js && wasm)

// Command bench runs nibble and ONNX Runtime Web side by side in one headless browser run, on
// the same weights, and prints a markdown table and JSON lines: ms per product, effective GB/s
// of weight bytes, error against nibble's float64 reference, output agreement between runtimes
// and the nibble/ORT speed ratio.
//
//	go run ./tools/bench [-quick] [-shapes 1x4096x4096,128x4096x4096] [-json out.jsonl]
//
// What happens, in order:
//  1. Weights are drawn once per shape, quantized once by nibble's quantizer (4-bit, group 32,
//     symmetric by default) and converted losslessly to ORT's MatMulNBits layout (ortlayout.go);
//     an ONNX model with one MatMulNBits node is written around them (onnx.go). The reference
//     output is quant.MatMul (float64 accumulation).
//  2. The nibble page (tools/bench/page) is built for js/wasm into .cache/bench/.
//  3. A local server serves the page, wasm_exec.js from GOROOT, ORT's dist files from
//     node_modules/onnxruntime-web, and the cases; tools/browser/bin/headless_shell (WebGPU on
//     SwiftShader, WebNN on TFLite CPU) is driven with chromedp.
//  4. One page load per runtime, all in the same browser process, so every WebGPU runtime gets
//     the same adapter: a probe (adapter facts), then nibble-webgpu, ort-webgpu, nibble-webnn,
//     ort-webnn and ort-wasm (ORT's CPU EP, for scale). Each page posts timings and its last
//     output back; comparisons are made here, natively.
//
// Every timed run starts with x in CPU memory and ends with y read back into CPU memory: nibble's
// MatMul (writes x, dispatches, reads y) and ORT's session.run with outputs on the CPU.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/tools/browser"
	"github.com/nibble-ml/nibble/wasm/quant"
)

var allRuntimes = []string{"nibble-webgpu", "ort-webgpu", "nibble-webnn", "ort-webnn", "ort-wasm"}

// options are the command's flags.
type options struct {
	quick        bool
	shapes       string // comma-separated MxNxK, "" for the default set
	runtimes     string // comma-separated, in order
	jsonOut      string
	warmup, runs int
	scheme       string // sym or asym
	seed         uint64
	timeout      time.Duration // one runtime's page
	rounds       int
	verbose      bool
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "small set: "+fmt.Sprint(quickShapes)+", fewer runs (about 2 minutes on 2 CPU cores)")
	flag.StringVar(&o.shapes, "shapes", "", "comma-separated MxNxK shapes (default: the issue's four, or -quick's)")
	flag.StringVar(&o.runtimes, "runtimes", strings.Join(allRuntimes, ","), "runtimes to run, in this order")
	flag.StringVar(&o.jsonOut, "json", "", "also write the JSON lines to this file")
	flag.IntVar(&o.warmup, "warmup", 1, "untimed runs after the first (which is reported apart)")
	flag.IntVar(&o.runs, "runs", 5, "timed runs (the median is reported)")
	flag.StringVar(&o.scheme, "scheme", "sym", "sym: nibble symmetric int4, ORT's default zero point 8; asym: unsigned codes with zero points")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the random weights and activations")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "limit for one runtime's page")
	flag.IntVar(&o.rounds, "rounds", 1, "run the whole runtime sequence this many times and pool the timed runs (interleaves runtimes on a noisy machine)")
	flag.BoolVar(&o.verbose, "v", false, "print the page's console")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// selection is what the options resolve to: the shapes, the runtimes in order, the weight format.
type selection struct {
	shapes   []Shape
	runtimes []string
	format   quant.Format
}

// resolve checks the options and applies -quick's defaults (to runs and warmup left at theirs).
func (o *options) resolve() (selection, error) {
	p := selection{shapes: fullShapes, format: quant.Q4} // int4, symmetric, group 32, f32 scales: MatMulNBits bits=4 block_size=32
	if o.quick {
		p.shapes = quickShapes
		// nibble-webgpu's GEMM takes seconds per run on SwiftShader: three timed runs after the
		// first, and a GEMM of a quarter of the 4096×4096 weights, keep -quick near two minutes on a
		// 2-core machine.
		if o.runs == 5 {
			o.runs = 3
		}
		if o.warmup == 1 {
			o.warmup = 0
		}
	}
	if o.shapes != "" {
		var err error
		if p.shapes, err = ParseShapes(o.shapes); err != nil {
			return p, err
		}
	}
	p.runtimes = strings.Split(o.runtimes, ",")
	for _, rt := range p.runtimes {
		if !slices.Contains(allRuntimes, rt) {
			return p, fmt.Errorf("runtime %q: want some of %v", rt, allRuntimes)
		}
	}
	switch o.scheme {
	case "sym":
	case "asym":
		p.format.Scheme = quant.Asymmetric
	default:
		return p, fmt.Errorf("-scheme %q: want sym or asym", o.scheme)
	}
	return p, nil
}

func run(o options) error {
	p, err := o.resolve()
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	launcher := filepath.Join(root, "tools/browser/bin/headless_shell")
	ortDir := filepath.Join(root, "node_modules/onnxruntime-web/dist")
	for _, path := range []string{filepath.Join(root, ".cache/chromium/chromium"), filepath.Join(ortDir, "ort.webgpu.min.mjs")} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s is missing: run 'make deps' (tools/browser/install.sh)", path)
		}
	}
	wasmPath := filepath.Join(root, ".cache/bench/nibble.wasm")
	cases, err := prepare(root, wasmPath, p.shapes, p.format, o.seed)
	if err != nil {
		return err
	}

	srv := &server{cases: map[string]*Case{}, wasmPath: wasmPath, goroot: runtime.GOROOT(), ortDir: ortDir,
		results: map[string]*Result{}, done: make(chan doneMsg, 1), logf: logf}
	if gr, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		srv.goroot = strings.TrimSpace(string(gr)) // the toolchain that built the wasm, whose wasm_exec.js matches
	}
	srv.plan = Plan{Warmup: o.warmup, Runs: o.runs}
	for _, c := range cases {
		srv.cases[c.Name] = c
		srv.plan.Cases = append(srv.plan.Cases, c.meta())
	}
	base, stop, err := srv.listen()
	if err != nil {
		return err
	}
	defer stop()

	ctx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(launcher))
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		return fmt.Errorf("starting %s: %w", launcher, err)
	}
	// The handler only formats and writes to stderr: fast enough for chromedp's read loop.
	err = browser.ListenConsole(ctx, func(m browser.Message) {
		if o.verbose || m.IsError() {
			logf("%s", oneLine(m.String()))
		}
	})
	if err != nil {
		return err
	}
	pages := []string{"probe"}
	for range max(o.rounds, 1) {
		pages = append(pages, p.runtimes...)
	}
	for _, page := range pages {
		if err := srv.runPage(ctx, base, page, o); err != nil {
			return err
		}
	}
	return o.report(root, ortDir, srv, cases, p)
}

// prepare builds the nibble page into wasmPath and, meanwhile, quantizes the cases and computes
// their float64 references, one shape per core.
func prepare(root, wasmPath string, shapes []Shape, f quant.Format, seed uint64) ([]*Case, error) {
	var buildErr error
	var wg sync.WaitGroup
	wg.Go(func() { buildErr = buildPage(root, wasmPath) })
	start := time.Now()
	cases := make([]*Case, len(shapes))
	errs := make([]error, len(shapes))
	sem := make(chan struct{}, runtime.NumCPU())
	for i, s := range shapes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cases[i], errs[i] = NewCase(s, f, seed)
		})
	}
	wg.Wait()
	if buildErr != nil {
		return nil, buildErr
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	logf("%d cases quantized (%s) with float64 references in %v", len(cases), f, time.Since(start).Round(time.Millisecond))
	return cases, nil
}

// runPage loads one runtime's page (or the probe) and waits for its /done, or o.timeout; the
// cases it did not answer are recorded as failed with the reason.
func (s *server) runPage(ctx context.Context, base, page string, o options) error {
	verboseQuery := ""
	if o.verbose {
		verboseQuery = "&verbose"
	}
	t0 := time.Now()
	logf("%s: loading page", page)
	s.expect(page)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/index.html?runtime="+page+verboseQuery)); err != nil {
		return fmt.Errorf("%s: %w", page, err)
	}
	select {
	case d := <-s.done:
		if d.Error != "" {
			logf("%s: %s", page, d.Error)
			if page != "probe" {
				s.failMissing(page, d.Error)
			}
		}
	case <-time.After(o.timeout):
		logf("%s: no answer in %v", page, o.timeout)
		s.failMissing(page, fmt.Sprintf("timed out after %v", o.timeout))
	}
	s.expect("")
	select { // a /done that raced the timeout must not be taken for the next page's
	case <-s.done:
	default:
	}
	logf("%s: done in %v", page, time.Since(t0).Round(time.Millisecond))
	// Leave the page so its device, graphs and sessions are released before the next one.
	chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	return nil
}

// report prints the table and the JSON lines (and writes them to o.jsonOut).
func (o options) report(root, ortDir string, srv *server, cases []*Case, p selection) error {
	srv.mu.Lock()
	lines := Lines(cases, p.runtimes, srv.results, srv.probe)
	probe := srv.probe
	srv.mu.Unlock()
	rev := nibbleRev(root)
	for i := range lines {
		lines[i].Rev = rev
	}
	fmt.Printf("\nnibble %s vs ONNX Runtime Web %s, MatMulNBits-equivalent %s weights (%s), %d round(s) of %d warm-up + %d timed runs, median\n\n", rev, ortVersion(ortDir), p.format, o.scheme, max(o.rounds, 1), o.warmup, o.runs)
	WriteTable(os.Stdout, lines, probe)
	fmt.Println()
	if err := WriteJSON(os.Stdout, lines); err != nil {
		return err
	}
	if o.jsonOut == "" {
		return nil
	}
	fh, err := os.Create(o.jsonOut)
	if err != nil {
		return err
	}
	defer fh.Close()
	return WriteJSON(fh, lines)
}

// failMissing records err for every case of runtime rt that has no result yet.
func (s *server) failMissing(rt, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.cases {
		if r := s.results[key(rt, name)]; r == nil || (len(r.MS) == 0 && r.Error == "") {
			s.results[key(rt, name)] = &Result{Runtime: rt, Case: name, Error: err}
		}
	}
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run bench inside the nibble module")
	}
	return filepath.Dir(mod), nil
}

// buildPage builds the nibble side of the page for js/wasm. The output is a build artefact in
// .cache (ignored by git), never committed.
func buildPage(root, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, "./tools/bench/page")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the nibble page for js/wasm: %w\n%s", err, b)
	}
	return nil
}

// nibbleRev names the nibble code the page was built from: the commit, "+dirty" when wasm/ or
// shaders/ have uncommitted changes (the page builds the working tree, and other engineers edit
// backends while benchmarks run).
func nibbleRev(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(unknown commit)"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "wasm", "shaders").Output(); err == nil && len(st) > 0 {
		rev += "+dirty"
	}
	return rev
}

func ortVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "..", "package.json"))
	if err != nil {
		return "(version unknown)"
	}
	var p struct{ Version string }
	if json.Unmarshal(b, &p) != nil {
		return "(version unknown)"
	}
	return p.Version
}
