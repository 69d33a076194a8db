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
)

// result mirrors stresspage's Result.
type result struct {
	Error         string `json:"error"`
	Sums          string `json:"sums"`
	Q4            int    `json:"q4"`
	BytesReceived int64  `json:"bytesReceived"`
	ResidentBytes int64  `json:"residentBytes"`
	PeakHeldBytes int64  `json:"peakHeldBytes"`
	Resumes       int    `json:"resumes"`
	Millis        int64  `json:"ms"`
	LinearStart   int64  `json:"linearStart"`
	LinearPeak    int64  `json:"linearPeak"`
}

const page = `<!doctype html><meta charset="utf-8"><title>nibble stress</title>
<script src="wasm_exec.js"></script>
<script>
const go = new Go();
WebAssembly.instantiateStreaming(fetch("page.wasm"), go.importObject)
  .then(r => go.run(r.instance))
  .catch(e => { window.nibbleStress = JSON.stringify({error: "starting the page: " + e}); });
</script>`

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("stress: ")
	base := flag.String("base", "", "where the tabs load the model from (the proxy in front of the Worker)")
	model := flag.String("model", "e2e", "model name under /models/")
	file := flag.String("file", "model.safetensors", "the model's file")
	sumsFile := flag.String("qsums", "", "the native reference (tools/worker/e2e/qsums output)")
	size := flag.Int64("size", 0, "the file's size: every load must receive exactly this many bytes (0: not checked)")
	wasmPath := flag.String("wasm", "", "tools/worker/e2e/stresspage built for js/wasm")
	pages := flag.Int("pages", 8, "tabs loading at once")
	maxLinear := flag.Int64("max-linear", 0, "bound on each tab's wasm linear memory after its load, bytes (0: report only)")
	timeout := flag.Duration("timeout", 8*time.Minute, "for all tabs together")
	launcher := flag.String("launcher", "tools/browser/bin/headless_shell", "the Chromium launcher (it adds the offline-safe flags)")
	flag.Parse()
	if err := run(*launcher, *base, *model, *file, *sumsFile, *size, *wasmPath, *pages, *maxLinear, *timeout); err != nil {
		log.Fatal(err)
	}
}

func run(launcher, base, model, file, sumsFile string, size int64, wasmPath string, pages int, maxLinear int64, timeout time.Duration) error {
	if base == "" || sumsFile == "" || wasmPath == "" || pages < 1 {
		return errors.New("-base, -qsums, -wasm and -pages ≥ 1 are required")
	}
	b, err := os.ReadFile(sumsFile)
	if err != nil {
		return err
	}
	want, err := qsum.Parse(string(b))
	if err != nil {
		return err
	}
	// The wasm_exec.js of the toolchain that built the page: the two must match.
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
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
		http.ServeFile(w, r, wasmPath)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go srv.Serve(ln)
	defer srv.Close()
	pageURL := "http://" + ln.Addr().String() + "/?" + url.Values{"base": {base}, "model": {model}, "file": {file}}.Encode()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Every tab loads at once, so none may be treated as a hidden background tab whose timers
	// Chromium slows (Go's scheduler on wasm waits on setTimeout).
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(launcher),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true))
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		return fmt.Errorf("starting %s: %w", launcher, err)
	}

	start := time.Now()
	results := make([]result, pages)
	var wg sync.WaitGroup
	for i := range pages {
		wg.Go(func() {
			tab, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			results[i] = loadTab(tab, pageURL)
		})
	}
	wg.Wait()
	wall := time.Since(start)

	var failed []string
	var peak, peakGrowth, resumes, received int64
	for i, r := range results {
		log.Printf("tab %d: %d bytes in %.1f s (%.1f MB/s), %d resumes, %.1f MiB resident (peak held %.1f MiB), linear memory %.1f → %.1f MiB",
			i+1, r.BytesReceived, float64(r.Millis)/1e3, float64(r.BytesReceived)/1e3/max(float64(r.Millis), 1), r.Resumes,
			mib(r.ResidentBytes), mib(r.PeakHeldBytes), mib(r.LinearStart), mib(r.LinearPeak))
		fail := func(format string, a ...any) {
			failed = append(failed, fmt.Sprintf("tab %d: ", i+1)+fmt.Sprintf(format, a...))
		}
		if r.Error != "" {
			fail("%s", r.Error)
			continue
		}
		got, err := qsum.Parse(r.Sums)
		if err != nil {
			fail("%v", err)
			continue
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
		if size > 0 && r.BytesReceived != size {
			fail("received %d bytes, the file has %d", r.BytesReceived, size)
		}
		if maxLinear > 0 && r.LinearPeak > maxLinear {
			fail("wasm linear memory %.1f MiB, bound %.1f MiB", mib(r.LinearPeak), mib(maxLinear))
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
		return fmt.Errorf("%d problems in %d tabs", len(failed), pages)
	}
	bound := "no bound"
	if maxLinear > 0 {
		bound = fmt.Sprintf("bound %.0f MiB", mib(maxLinear))
	}
	fmt.Printf("stress: %d tabs, %d tensors each (%d q4) byte-identical to the native reference; %.1f MB received in %.1f s (%.1f MB/s together); %d resumes; peak wasm linear memory %.1f MiB per tab (+%.1f MiB during the load; %s)\n",
		pages, len(want), results[0].Q4, float64(received)/1e6, wall.Seconds(), float64(received)/1e6/wall.Seconds(), resumes, mib(peak), mib(peakGrowth), bound)
	return nil
}

// loadTab opens the page in tab and waits for its result.
func loadTab(tab context.Context, pageURL string) result {
	if err := chromedp.Do(tab, chromedp.Navigate(pageURL)); err != nil {
		return result{Error: fmt.Sprintf("opening the page: %v", err)}
	}
	for {
		s, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.nibbleStress || ""`))
		if err != nil {
			return result{Error: fmt.Sprintf("reading the result: %v", err)}
		}
		if s != "" {
			var r result
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				return result{Error: fmt.Sprintf("the page's result %q: %v", s, err)}
			}
			return r
		}
		select {
		case <-tab.Done():
			return result{Error: fmt.Sprintf("no result: %v", tab.Err())}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
