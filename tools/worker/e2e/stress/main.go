//go:build !(js && wasm)

// Command stress is the browser side of tools/worker/stress.sh: it opens -pages tabs of
// tools/worker/e2e/stresspage in one headless Chromium (tools/browser/bin/headless_shell), all
// at once, each loading the same model from -base (the Worker under wrangler dev, behind
// tools/worker/e2e/cutproxy's slow, resetting link), and checks that every load completes, that
// every tab's quantized tensors are byte-identical to the native reference (-qsums, written by
// tools/worker/e2e/qsums) and that no tab's wasm linear memory grew past -max-linear.
//
// Tabs, not loads in one page: each tab is its own WebAssembly instance with its own linear
// memory and Go scheduler, so the per-page memory bound means what it says and one slow tab
// cannot hide behind another's goroutines. They share the browser's connection pool (six
// connections per host over HTTP/1.1), as a user's tabs of one site do: two of eight loads wait
// for a connection whenever six are streaming.
//
//	stress -base http://127.0.0.1:9000 -model e2e -file model.safetensors -qsums sums.txt \
//	    -wasm page.wasm -pages 8 -max-linear 134217728
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/tools/worker/e2e/qsum"
	"github.com/nibble-ml/nibble/tools/worker/e2e/tab"
)

const page = `<!doctype html><meta charset="utf-8"><title>nibble stress</title>
<script src="wasm_exec.js"></script>
<script>
const go = new Go();
WebAssembly.instantiateStreaming(fetch("page.wasm"), go.importObject)
  .then(r => go.run(r.instance))
  .catch(e => { window.nibbleStress = JSON.stringify({error: "starting the page: " + e}); });
</script>`

// config is the command's flags.
type config struct {
	launcher, base, model, file string
	sumsFile, wasmPath          string
	size, maxLinear             int64 // 0: not checked
	pages                       int
	timeout                     time.Duration // for all tabs together
}

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("stress: ")
	var c config
	flag.StringVar(&c.base, "base", "", "where the tabs load the model from (the proxy in front of the Worker)")
	flag.StringVar(&c.model, "model", "e2e", "model name under /models/")
	flag.StringVar(&c.file, "file", "model.safetensors", "the model's file")
	flag.StringVar(&c.sumsFile, "qsums", "", "the native reference (tools/worker/e2e/qsums output)")
	flag.Int64Var(&c.size, "size", 0, "the file's size: every load must receive exactly this many bytes (0: not checked)")
	flag.StringVar(&c.wasmPath, "wasm", "", "tools/worker/e2e/stresspage built for js/wasm")
	flag.IntVar(&c.pages, "pages", 8, "tabs loading at once")
	flag.Int64Var(&c.maxLinear, "max-linear", 0, "bound on each tab's wasm linear memory after its load, bytes (0: report only)")
	flag.DurationVar(&c.timeout, "timeout", 8*time.Minute, "for all tabs together")
	flag.StringVar(&c.launcher, "launcher", "tools/browser/bin/headless_shell", "the Chromium launcher (it adds the offline-safe flags)")
	flag.Parse()
	if err := run(c); err != nil {
		log.Fatal(err)
	}
}

func run(c config) error {
	if c.base == "" || c.sumsFile == "" || c.wasmPath == "" || c.pages < 1 {
		return errors.New("-base, -qsums, -wasm and -pages ≥ 1 are required")
	}
	b, err := os.ReadFile(c.sumsFile)
	if err != nil {
		return err
	}
	want, err := qsum.Parse(string(b))
	if err != nil {
		return err
	}
	pageURL, stop, err := servePage(c)
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	results, err := loadTabs(c, pageURL)
	if err != nil {
		return err
	}
	wall := time.Since(start)

	var failed []string
	var peak, peakGrowth, resumes, received int64
	for i, r := range results {
		log.Printf("tab %d: %d bytes in %.1f s (%.1f MB/s), %d resumes, %.1f MiB resident (peak held %.1f MiB), linear memory %.1f → %.1f MiB",
			i+1, r.BytesReceived, float64(r.Millis)/1e3, float64(r.BytesReceived)/1e3/max(float64(r.Millis), 1), r.Resumes,
			mib(r.ResidentBytes), mib(r.PeakHeldBytes), mib(r.LinearStart), mib(r.LinearPeak))
		for _, f := range c.check(r, want) {
			failed = append(failed, fmt.Sprintf("tab %d: %s", i+1, f))
		}
		peak = max(peak, r.LinearPeak)
		peakGrowth = max(peakGrowth, r.LinearPeak-r.LinearStart)
		resumes += int64(r.Resumes)
		received += r.BytesReceived
	}
	for _, f := range failed {
		log.Print("FAIL ", f)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d problems in %d tabs", len(failed), c.pages)
	}
	bound := "no bound"
	if c.maxLinear > 0 {
		bound = fmt.Sprintf("bound %.0f MiB", mib(c.maxLinear))
	}
	fmt.Printf("stress: %d tabs, %d tensors each (%d q4) byte-identical to the native reference; %.1f MB received in %.1f s (%.1f MB/s together); %d resumes; peak wasm linear memory %.1f MiB per tab (+%.1f MiB during the load; %s)\n",
		c.pages, len(want), results[0].Q4, float64(received)/1e6, wall.Seconds(), float64(received)/1e6/wall.Seconds(), resumes, mib(peak), mib(peakGrowth), bound)
	return nil
}

// servePage serves the page, wasm_exec.js and the page's wasm on 127.0.0.1 and returns the
// page's URL (naming the model to load) and how to stop the server.
func servePage(c config) (pageURL string, stop func(), err error) {
	// The wasm_exec.js of the toolchain that built the page: the two must match.
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	wasmExec := filepath.Join(strings.TrimSpace(string(goroot)), "lib/wasm/wasm_exec.js")
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	})
	mux.HandleFunc("/wasm_exec.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, wasmExec) })
	mux.HandleFunc("/page.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, c.wasmPath)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	pageURL = "http://" + ln.Addr().String() + "/?" + url.Values{"base": {c.base}, "model": {c.model}, "file": {c.file}}.Encode()
	return pageURL, func() { srv.Close() }, nil
}

// loadTabs opens c.pages tabs of one Chromium on pageURL at once and returns each tab's
// result once all are done (or c.timeout passed).
func loadTabs(c config, pageURL string) ([]tab.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// Every tab loads at once, so none may be treated as a hidden background tab whose timers
	// Chromium slows (Go's scheduler on wasm waits on setTimeout).
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(c.launcher),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true))
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.launcher, err)
	}
	results := make([]tab.Result, c.pages)
	var wg sync.WaitGroup
	for i := range c.pages {
		wg.Go(func() {
			tabCtx, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			results[i] = loadTab(tabCtx, pageURL)
		})
	}
	wg.Wait()
	return results, nil
}

// check returns what is wrong with one tab's load: an error, a tensor missing or unlike the
// native reference want, no 4-bit tensor, a byte count other than the file's, linear memory
// over the bound.
func (c config) check(r tab.Result, want map[string]string) []string {
	var failed []string
	fail := func(format string, a ...any) { failed = append(failed, fmt.Sprintf(format, a...)) }
	if r.Error != "" {
		return []string{r.Error}
	}
	got, err := qsum.Parse(r.Sums)
	if err != nil {
		return []string{err.Error()}
	}
	for name, sum := range want {
		switch got[name] {
		case sum:
		case "":
			fail("tensor %q not loaded", name)
		default:
			fail("tensor %q differs from the native reference", name)
		}
	}
	if len(got) != len(want) {
		fail("%d tensors, the reference has %d", len(got), len(want))
	}
	if r.Q4 == 0 {
		fail("no tensor quantized to 4 bits")
	}
	if c.size > 0 && r.BytesReceived != c.size {
		fail("received %d bytes, the file has %d", r.BytesReceived, c.size)
	}
	if c.maxLinear > 0 && r.LinearPeak > c.maxLinear {
		fail("wasm linear memory %.1f MiB, bound %.1f MiB", mib(r.LinearPeak), mib(c.maxLinear))
	}
	return failed
}

// loadTab opens the page in the tab ctx drives and waits for its result.
func loadTab(ctx context.Context, pageURL string) tab.Result {
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		return tab.Result{Error: fmt.Sprintf("opening the page: %v", err)}
	}
	for {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.nibbleStress || ""`))
		if err != nil {
			return tab.Result{Error: fmt.Sprintf("reading the result: %v", err)}
		}
		if s != "" {
			var r tab.Result
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				return tab.Result{Error: fmt.Sprintf("the page's result %q: %v", s, err)}
			}
			return r
		}
		select {
		case <-ctx.Done():
			return tab.Result{Error: fmt.Sprintf("no result: %v", ctx.Err())}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
