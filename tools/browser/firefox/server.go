//go:build !(js && wasm)

package main

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

//go:embed page/index.html page/runner.js
var page embed.FS

// server serves one test run to one page. Every path starts with a random token, which the page
// also puts on each line of output it logs (see output.go): the port is open to every local
// process, and the token keeps them from reading the test's config or faking its output.
type server struct {
	ln      net.Listener
	http    *http.Server
	token   string
	prefix  string        // "/<token>/"
	started chan struct{} // closed when the page's script asks for the test's config

	startOnce sync.Once
}

// serve starts the server for the wasm file; args are the test's argv (binary, then flags). poll
// tells the page to queue its output for classicConn.drain instead of only logging it.
func serve(wasmPath string, args []string, env map[string]string, poll bool) (*server, error) {
	wasmExec, err := findWasmExec()
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(map[string]any{"argv": args, "env": env, "cwd": cwd, "poll": poll})
	if err != nil {
		return nil, err
	}
	token := make([]byte, 16)
	rand.Read(token)
	s := &server{token: hex.EncodeToString(token), started: make(chan struct{})}
	s.prefix = "/" + s.token + "/"
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	mux := http.NewServeMux()
	for name, typ := range map[string]string{"index.html": "text/html", "runner.js": "text/javascript"} {
		body, err := page.ReadFile("page/" + name)
		if err != nil {
			return nil, err
		}
		// Not ServeFileFS: it redirects .../index.html to .../, which we do not serve.
		mux.HandleFunc("GET "+s.prefix+name, func(w http.ResponseWriter, r *http.Request) {
			noStore(w)
			w.Header().Set("Content-Type", typ+"; charset=utf-8")
			w.Write(body)
		})
	}
	mux.HandleFunc("GET "+s.prefix+"wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		http.ServeFile(w, r, wasmExec)
	})
	mux.HandleFunc("GET "+s.prefix+"config.json", func(w http.ResponseWriter, r *http.Request) {
		s.startOnce.Do(func() { close(s.started) })
		noStore(w)
		w.Header().Set("Content-Type", "application/json")
		w.Write(config)
	})
	mux.HandleFunc("GET "+s.prefix+"test.wasm", func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		// instantiateStreaming insists on this type; the test binary has no .wasm suffix.
		w.Header().Set("Content-Type", "application/wasm")
		f, err := os.Open(wasmPath)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		io.Copy(w, f)
	})
	fs, err := newReadOnlyFS()
	if err != nil {
		return nil, err
	}
	mux.Handle("POST "+s.prefix+"fs/{op}", fs.handler())
	s.http = &http.Server{Handler: mux}
	go s.http.Serve(s.ln)
	return s, nil
}

// pageURL is where the browser goes. 127.0.0.1 counts as a secure context, which WebGPU needs.
func (s *server) pageURL() string {
	return "http://" + s.ln.Addr().String() + s.prefix + "index.html"
}

// Close stops serving; the page is gone by then.
func (s *server) Close() { s.http.Close() }

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }

// findWasmExec finds the wasm_exec.js of the Go that built the test: $GOROOT (go test sets it),
// else `go env GOROOT`. Its lib/wasm holds it since Go 1.24, misc/wasm before.
func findWasmExec() (string, error) {
	goroot := os.Getenv("GOROOT")
	if goroot == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return "", fmt.Errorf("find wasm_exec.js: GOROOT is unset and 'go env GOROOT' failed: %w", err)
		}
		goroot = strings.TrimSpace(string(out))
	}
	for _, dir := range []string{"lib/wasm", "misc/wasm"} {
		p := filepath.Join(goroot, dir, "wasm_exec.js")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("wasm_exec.js is in neither lib/wasm nor misc/wasm of GOROOT " + goroot)
}
