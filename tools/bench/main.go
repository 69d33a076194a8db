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

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/wasm/quant"
)

var allRuntimes = []string{"nibble-webgpu", "ort-webgpu", "nibble-webnn", "ort-webnn", "ort-wasm"}

func main() {
	quick := flag.Bool("quick", false, "small set: "+fmt.Sprint(quickShapes)+", fewer runs (about 2 minutes on 2 CPU cores)")
	shapes := flag.String("shapes", "", "comma-separated MxNxK shapes (default: the issue's four, or -quick's)")
	rts := flag.String("runtimes", strings.Join(allRuntimes, ","), "runtimes to run, in this order")
	jsonOut := flag.String("json", "", "also write the JSON lines to this file")
	warmup := flag.Int("warmup", 1, "untimed runs after the first (which is reported apart)")
	runs := flag.Int("runs", 5, "timed runs (the median is reported)")
	scheme := flag.String("scheme", "sym", "sym: nibble symmetric int4, ORT's default zero point 8; asym: unsigned codes with zero points")
	seed := flag.Uint64("seed", 1, "seed of the random weights and activations")
	timeout := flag.Duration("timeout", 20*time.Minute, "limit for one runtime's page")
	rounds := flag.Int("rounds", 1, "run the whole runtime sequence this many times and pool the timed runs (interleaves runtimes on a noisy machine)")
	verbose := flag.Bool("v", false, "print the page's console")
	flag.Parse()
	if err := run(*quick, *shapes, *rts, *jsonOut, *warmup, *runs, *scheme, *seed, *timeout, *rounds, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(quick bool, shapeList, rtList, jsonOut string, warmup, runs int, scheme string, seed uint64, timeout time.Duration, rounds int, verbose bool) error {
	shapes := fullShapes
	if quick {
		shapes = quickShapes
		// nibble-webgpu's GEMM takes seconds per run on SwiftShader: three timed runs after the
		// first, and a GEMM of a quarter of the 4096×4096 weights, keep -quick near two minutes on a
		// 2-core machine.
		if runs == 5 {
			runs = 3
		}
		if warmup == 1 {
			warmup = 0
		}
	}
	if shapeList != "" {
		var err error
		if shapes, err = ParseShapes(shapeList); err != nil {
			return err
		}
	}
	runtimes := strings.Split(rtList, ",")
	for _, rt := range runtimes {
		if !slices.Contains(allRuntimes, rt) {
			return fmt.Errorf("runtime %q: want some of %v", rt, allRuntimes)
		}
	}
	f := quant.Q4 // int4, symmetric, group 32, f32 scales: MatMulNBits bits=4 block_size=32
	switch scheme {
	case "sym":
	case "asym":
		f.Scheme = quant.Asymmetric
	default:
		return fmt.Errorf("-scheme %q: want sym or asym", scheme)
	}

	root, err := repoRoot()
	if err != nil {
		return err
	}
	launcher := filepath.Join(root, "tools/browser/bin/headless_shell")
	ortDir := filepath.Join(root, "node_modules/onnxruntime-web/dist")
	for _, p := range []string{filepath.Join(root, ".cache/chromium/chromium"), filepath.Join(ortDir, "ort.webgpu.min.mjs")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing: run 'make deps' (tools/browser/install.sh)", p)
		}
	}

	// The wasm build and the cases (quantize + float64 reference) are independent: overlap them.
	wasmPath := filepath.Join(root, ".cache/bench/nibble.wasm")
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
		return buildErr
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	logf("%d cases quantized (%s) with float64 references in %v", len(cases), f, time.Since(start).Round(time.Millisecond))

	srv := &server{cases: map[string]*Case{}, wasmPath: wasmPath, goroot: runtime.GOROOT(), ortDir: ortDir,
		results: map[string]*Result{}, done: make(chan doneMsg, 1), logf: logf}
	if gr, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		srv.goroot = strings.TrimSpace(string(gr)) // the toolchain that built the wasm, whose wasm_exec.js matches
	}
	srv.plan = Plan{Warmup: warmup, Runs: runs}
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
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			logf("page exception at %s:%d: %s", d.URL, d.LineNumber, oneLine(desc))
		case *cdpruntime.EventConsoleAPICalled:
			if !verbose && ev.Type != cdpruntime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			logf("console.%s: %s", ev.Type, oneLine(strings.Join(parts, " ")))
		}
	})
	if err != nil {
		return err
	}

	verboseQuery := ""
	if verbose {
		verboseQuery = "&verbose"
	}
	pages := []string{"probe"}
	for range max(rounds, 1) {
		pages = append(pages, runtimes...)
	}
	for _, page := range pages {
		t0 := time.Now()
		logf("%s: loading page", page)
		srv.expect(page)
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/index.html?runtime="+page+verboseQuery)); err != nil {
			return fmt.Errorf("%s: %w", page, err)
		}
		select {
		case d := <-srv.done:
			if d.Error != "" {
				logf("%s: %s", page, d.Error)
				if page != "probe" {
					srv.failMissing(page, d.Error)
				}
			}
		case <-time.After(timeout):
			logf("%s: no answer in %v", page, timeout)
			srv.failMissing(page, fmt.Sprintf("timed out after %v", timeout))
		}
		srv.expect("")
		select { // a /done that raced the timeout must not be taken for the next page's
		case <-srv.done:
		default:
		}
		logf("%s: done in %v", page, time.Since(t0).Round(time.Millisecond))
		// Leave the page so its device, graphs and sessions are released before the next one.
		chromedp.Do(ctx, chromedp.Navigate("about:blank"))
	}

	srv.mu.Lock()
	lines := Lines(cases, runtimes, srv.results, srv.probe)
	probe := srv.probe
	srv.mu.Unlock()
	rev := nibbleRev(root)
	for i := range lines {
		lines[i].Rev = rev
	}
	fmt.Printf("\nnibble %s vs ONNX Runtime Web %s, MatMulNBits-equivalent %s weights (%s), %d round(s) of %d warm-up + %d timed runs, median\n\n", rev, ortVersion(ortDir), f, scheme, max(rounds, 1), warmup, runs)
	WriteTable(os.Stdout, lines, probe)
	fmt.Println()
	if err := WriteJSON(os.Stdout, lines); err != nil {
		return err
	}
	if jsonOut != "" {
		fh, err := os.Create(jsonOut)
		if err != nil {
			return err
		}
		defer fh.Close()
		if err := WriteJSON(fh, lines); err != nil {
			return err
		}
	}
	return nil
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
