//go:build !(js && wasm)

package main

import (
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/graph/onnx"
)

//go:embed web
var webFiles embed.FS

// Result is what a page reports for one (runtime, case): the same JSON from the Go page and
// from the ORT page.
type Result struct {
	Runtime string    `json:"runtime"`
	Case    string    `json:"case"`
	Path    string    `json:"path"`     // how the runtime ran it: nibble's weight path, ORT's EP
	BuildMS float64   `json:"build_ms"` // upload / session creation
	FirstMS float64   `json:"first_ms"` // first product: graph or pipeline compilation included
	MS      []float64 `json:"ms"`       // the timed runs, each x in → y read back to the CPU
	Notes   []string  `json:"notes,omitempty"`
	Error   string    `json:"error,omitempty"`

	Output []float32 `json:"-"` // the last timed run's y, posted to /output
}

// Probe is what the page learns about the browser once, before any runtime runs.
type Probe struct {
	UserAgent           string          `json:"user_agent"`
	HardwareConcurrency int             `json:"hardware_concurrency"`
	CrossOriginIsolated bool            `json:"cross_origin_isolated"`
	WebNN               bool            `json:"webnn"`
	Adapter             json.RawMessage `json:"adapter"` // GPUAdapterInfo fields, isFallbackAdapter, features
	AdapterError        string          `json:"adapter_error,omitempty"`
}

type doneMsg struct {
	Runtime string `json:"runtime"`
	Error   string `json:"error,omitempty"`
}

// server serves the page, the runtimes' files and the cases, and collects what the pages post.
type server struct {
	plan     Plan
	cases    map[string]*Case
	wasmPath string // the nibble page built for js/wasm
	goroot   string
	ortDir   string // node_modules/onnxruntime-web/dist
	logf     func(format string, args ...any)

	mu      sync.Mutex
	results map[string]*Result // key runtime/case
	probe   *Probe
	current string // the page being waited for; a /done from any other is stale
	done    chan doneMsg
}

// expect makes rt the page whose /done counts.
func (s *server) expect(rt string) {
	s.mu.Lock()
	s.current = rt
	s.mu.Unlock()
}

func key(runtime, cs string) string { return runtime + "/" + cs }

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	web, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /", http.FileServerFS(web))
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(s.goroot, "lib", "wasm", "wasm_exec.js"))
	})
	mux.HandleFunc("GET /nibble.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, s.wasmPath)
	})
	// ORT's .mjs/.wasm files, served locally: ort.env.wasm.wasmPaths points here so nothing
	// reaches for a CDN.
	mux.Handle("GET /ort/", http.StripPrefix("/ort/", http.FileServer(http.Dir(s.ortDir))))
	mux.HandleFunc("GET /plan.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.plan.JSON())
	})
	mux.HandleFunc("GET /case/{name}/{file}", s.serveCase)
	mux.HandleFunc("POST /result", s.postResult)
	mux.HandleFunc("POST /output", s.postOutput)
	mux.HandleFunc("POST /probe", s.postProbe)
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.logf("page: %s", b)
	})
	mux.HandleFunc("POST /done", func(w http.ResponseWriter, r *http.Request) {
		var d doneMsg
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// The first /done of the current page counts; a second one (the Go program's, then the
		// page's own after go.run returns) or one from a page already left is dropped.
		s.mu.Lock()
		ok := d.Runtime == s.current
		if ok {
			s.current = ""
		}
		s.mu.Unlock()
		if ok {
			s.done <- d
		}
	})
	// Cross-origin isolation gives ORT's wasm SharedArrayBuffer, hence its threads, and finer
	// performance.now(); every resource is same-origin, so require-corp costs nothing.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cross-Origin-Opener-Policy", "same-origin")
		w.Header().Set("Cross-Origin-Embedder-Policy", "require-corp")
		w.Header().Set("Cache-Control", "no-store")
		if strings.HasSuffix(r.URL.Path, ".mjs") {
			w.Header().Set("Content-Type", "text/javascript")
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *server) serveCase(w http.ResponseWriter, r *http.Request) {
	c := s.cases[r.PathValue("name")]
	if c == nil {
		http.NotFound(w, r)
		return
	}
	var b []byte
	switch r.PathValue("file") {
	case "x.bin":
		b = onnx.Float32Bytes(c.X)
	case "data.bin":
		b = c.T.Data
	case "scales.bin":
		b = c.T.Scales
	case "zeros.bin":
		b = c.T.Zeros
	case "model.onnx":
		b = c.Model
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

func (s *server) postResult(w http.ResponseWriter, r *http.Request) {
	var res Result
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.results[key(res.Runtime, res.Case)]; old != nil {
		switch {
		case len(old.MS) > 0 && res.Error == "":
			// A later round of the same runtime: pool its timed runs with the earlier ones; the
			// build and first-run figures stay those of the first round (a cold browser).
			// Pages post the output before the result, so old.Output is already this round's.
			old.MS = append(old.MS, res.MS...)
			res = *old
		default:
			res.Output = old.Output // the output of this round may have arrived first
		}
	}
	s.results[key(res.Runtime, res.Case)] = &res
	if res.Error != "" {
		s.logf("%s %s: %s", res.Runtime, res.Case, res.Error)
	} else {
		s.logf("%s %s: %s build %.0f ms, first %.1f ms, runs %v ms", res.Runtime, res.Case, res.Path, res.BuildMS, res.FirstMS, res.MS)
	}
}

func (s *server) postOutput(w http.ResponseWriter, r *http.Request) {
	rt, cs := r.URL.Query().Get("runtime"), r.URL.Query().Get("case")
	c := s.cases[cs]
	if c == nil {
		http.Error(w, "unknown case "+cs, http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(b) != 4*len(c.Ref) {
		http.Error(w, fmt.Sprintf("output of %s: %d bytes, want 4·M·N = %d", cs, len(b), 4*len(c.Ref)), http.StatusBadRequest)
		return
	}
	out := onnx.BytesFloat32(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.results[key(rt, cs)]
	if res == nil {
		res = &Result{Runtime: rt, Case: cs}
		s.results[key(rt, cs)] = res
	}
	res.Output = out
}

func (s *server) postProbe(w http.ResponseWriter, r *http.Request) {
	var p Probe
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.probe = &p
	s.mu.Unlock()
}

// listen starts serving on a free loopback port and returns the base URL.
func (s *server) listen() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
