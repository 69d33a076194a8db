//go:build !(js && wasm)

// Command llamapeer runs nibble's Llama decoder (each backend) and wllama (npm @wllama/wllama,
// llama.cpp compiled to wasm) side by side in one headless Chromium on the same GGUF file, and
// prints prefill and decode tokens/s for each.
//
//	go run ./tools/llamapeer [-shape llama-1b -layers 2 -format gguf-q4_0 -tokens 8]
//
// It writes the file with tools/mkmodel, builds page/ for js/wasm, serves index.html, the wasm,
// wasm_exec.js, the model and wllama's esm/ folder (cross-origin isolated, so wllama may use
// threads), and drives tools/browser/bin/headless_shell with chromedp: one page, nibble's
// backends in turn, then wllama with 1 thread and with every core.
//
// A backend named webnn-int8 is WebNN with int8 activations (llama.Options.Calibration): the
// tool calibrates the file natively on the cpu reference (llama.Calibrate over
// llama.CalibrationText) and serves the ranges as /model.calib.json, as a model would ship them.
// With -calibrate FILE.gguf -o OUT.json it only writes that calibration.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/tools/browser"
	"github.com/nibble-ml/nibble/tools/llamapeer/peer"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/model/llama"
)

//go:embed index.html
var indexHTML []byte

var (
	verbose = flag.Bool("v", false, "print the page's console.log lines (nibble's progress)")
	calFile = flag.String("calib", "", "the calibration JSON for webnn-int8: read if it exists, else written there")
	calToks = flag.Int("calib-tokens", 128, "calibrate on at most this many tokens of llama.CalibrationText")
)

func main() {
	shape := flag.String("shape", "llama-1b", "mkmodel -shape")
	layers := flag.Int("layers", 2, "layers of the shape's")
	ff := flag.String("format", "gguf-q4_0", "mkmodel -format")
	tokens := flag.Int("tokens", 8, "greedy tokens decoded")
	backends := flag.String("backends", "webgpu,cpu", "nibble backends, in this order (cpu, webgpu, webnn, webnn-int8, webnn-f32: float32 layers, int8 head)")
	calib := flag.String("calibrate", "", "only write the calibration of this GGUF file (to -o)")
	out := flag.String("o", "", "with -calibrate: the JSON file to write")
	threads := flag.String("wllama", "1,max", "wllama thread counts to run (max: every core; empty: none)")
	flag.Parse()
	log.SetFlags(0)
	if *calib != "" {
		if err := calibrate(*calib, *out); err != nil {
			log.Fatal("llamapeer: ", err)
		}
		return
	}
	if err := run(*shape, *layers, *ff, *tokens, strings.Split(*backends, ","), wllamaThreads(*threads)); err != nil {
		log.Fatal("llamapeer: ", err)
	}
}

// wllamaThreads parses -wllama: thread counts, "max" for every core, duplicates dropped.
func wllamaThreads(s string) []int {
	var ths []int
	for _, f := range strings.Split(s, ",") {
		n := runtime.NumCPU()
		if f != "max" {
			if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
				continue
			}
		}
		if !slices.Contains(ths, n) {
			ths = append(ths, n)
		}
	}
	return ths
}

func run(shape string, layers int, ff string, tokens int, backends []string, threads []int) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	launcher := filepath.Join(root, "tools/browser/bin/headless_shell")
	wl := filepath.Join(root, "node_modules/@wllama/wllama/esm")
	for _, p := range []string{launcher, wl} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing: run make deps from the repository root", p)
		}
	}
	tmp, err := os.MkdirTemp("", "llamapeer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	model := filepath.Join(tmp, "model.gguf")
	if out, err := exec.Command("go", "run", "./tools/mkmodel", "-llm", "-shape", shape, "-layers", fmt.Sprint(layers), "-format", ff, "-seed", "1", "-o", model).CombinedOutput(); err != nil {
		return fmt.Errorf("mkmodel: %v\n%s", err, out)
	}
	calJSON := filepath.Join(tmp, "model.calib.json")
	if *calFile != "" {
		calJSON = *calFile
	}
	for _, be := range backends {
		if _, err := os.Stat(calJSON); err == nil {
			log.Printf("calibration from %s", calJSON)
			break
		}
		if strings.HasSuffix(be, "-int8") || strings.HasSuffix(be, "-f32") {
			t0 := time.Now()
			if err := calibrate(model, calJSON); err != nil {
				return err
			}
			log.Printf("calibrated on the cpu (native) in %v", time.Since(t0).Round(time.Millisecond))
			break
		}
	}
	wasm := filepath.Join(tmp, "nibble.wasm")
	build := exec.Command("go", "build", "-o", wasm, "./tools/llamapeer/page")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build page: %v\n%s", err, out)
	}
	goroot, _ := exec.Command("go", "env", "GOROOT").Output()
	fi, _ := os.Stat(model)
	log.Printf("%s %s, %d layers: %.1f MiB", shape, ff, layers, float64(fi.Size())/(1<<20))

	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("/wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(strings.TrimSpace(string(goroot)), "lib/wasm/wasm_exec.js"))
	})
	mux.HandleFunc("/nibble.wasm", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, wasm) })
	mux.HandleFunc("/model.gguf", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, model) })
	mux.HandleFunc("/model.calib.json", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, calJSON) })
	mux.Handle("/wllama/esm/", http.StripPrefix("/wllama/esm/", http.FileServer(http.Dir(wl))))
	isolated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// wllama's threads need SharedArrayBuffer, which only a cross-origin isolated page has.
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: isolated}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	ctx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(launcher))
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		return fmt.Errorf("starting %s: %w", launcher, err)
	}
	err = browser.ListenConsole(ctx, func(m browser.Message) {
		if m.IsError() || m.Type == "warning" || *verbose {
			log.Print(m)
		}
	})
	if err != nil {
		return err
	}
	// A renderer that dies (out of memory, a crash building a graph) never settles the promise
	// being awaited: say so and stop.
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*inspector.EventTargetCrashed); ok {
			log.Print("the page's renderer crashed")
			cancel()
		}
	}); err != nil {
		return err
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/")); err != nil {
		return err
	}
	eval := func(script string) (peer.Result, error) {
		var r peer.Result
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
		if err == nil {
			err = json.Unmarshal([]byte(s), &r)
		}
		return r, err
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((ok, fail) => { let n = 0; const t = setInterval(() => {
		if (window.nibbleRun && window.runWllama) { clearInterval(t); ok(true); }
		else if (++n > 1200) { clearInterval(t); fail(new Error("the page did not start in 60 s: nibbleRun " + !!window.nibbleRun + ", runWllama " + !!window.runWllama)); } }, 50); })`, chromedp.EvalAwaitPromise)); err != nil {
		return err
	}
	log.Printf("page ready")
	var rs []peer.Result
	var ref []byte // the first backend's tokens: the later ones are teacher-forced on them
	for _, be := range backends {
		r, err := eval(fmt.Sprintf("nibbleRun(%q, %d, %q)", be, tokens, ref))
		if err != nil {
			return err
		}
		log.Printf("%+v", r)
		rs = append(rs, r)
		if ref == nil && r.Error == "" {
			ref, _ = json.Marshal(r.Tokens)
		}
	}
	for _, th := range threads {
		r, err := eval(fmt.Sprintf("runWllama(%q, %d, %d)", peer.Prompt, tokens, th))
		if err != nil {
			r.Runtime, r.Error = fmt.Sprintf("wllama (%d threads)", th), err.Error()
		}
		log.Printf("%+v", r)
		rs = append(rs, r)
	}
	fmt.Printf("\n%s %s, %d layers, prompt %d tokens, %d greedy tokens; headless Chromium, %d cores\n\n", shape, ff, layers, rs[0].PrefillN, tokens, runtime.NumCPU())
	fmt.Printf("top-1: each nibble backend after the first, teacher-forced on the first's tokens (%s): steps whose most likely token is the first's\n\n", backends[0])
	fmt.Println("| runtime | load s | prefill tok/s | decode tok/s | top-1 | text |")
	fmt.Println("|---|---:|---:|---:|---:|---|")
	for _, r := range rs {
		if r.Error != "" {
			fmt.Printf("| %s | failed: %s | | | | |\n", r.Runtime, r.Error)
			continue
		}
		agree := ""
		if r.Forced {
			agree = fmt.Sprintf("%d/%d", r.Agree, r.DecodeN)
		}
		fmt.Printf("| %s | %.1f | %.2f | %.2f | %s | %q |\n", r.Runtime, r.LoadMS/1000, float64(r.PrefillN)/(r.PrefillMS/1000), float64(r.DecodeN)/(r.DecodeMS/1000), agree, r.Text)
	}
	return nil
}

// calibrate writes the Linear ranges of the GGUF file at path, run on the cpu reference over
// llama.CalibrationText, as JSON (backend.Calibration) to out.
func calibrate(path, out string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	file, err := llama.ReadGGUF(f, cpu.New())
	if err != nil {
		return err
	}
	defer file.Release()
	ids := llama.CalibrationIDs(file.Tokenizer, file.Config)
	cal, err := llama.Calibrate(context.Background(), file.Config, cpu.New(), file.Weights, ids[:min(len(ids), *calToks)])
	if err != nil {
		return err
	}
	b, err := json.Marshal(cal)
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
