//go:build !(js && wasm)

// Command worker serves nibble's model files. Built for js/wasm it is the Cloudflare Worker
// (main_js.go: R2 bucket binding MODELS, see README.md); built natively it is the same
// handler over a directory, for local development and `make serve`:
//
//	go run ./tools/worker -dir models -addr 127.0.0.1:8787 [-site site]
//	go run ./tools/worker -write-manifest models/tiny   # writes models/tiny/manifest.json
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
	"path/filepath"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
)

func main() {
	dir := flag.String("dir", "", "models directory, laid out as <dir>/<model>/<file>")
	addr := flag.String("addr", "127.0.0.1:8787", "listen address")
	site := flag.String("site", "", "optional directory served at / (the demo site)")
	writeManifest := flag.String("write-manifest", "", "write <model dir>/manifest.json (sizes, sha256) for upload, and exit")
	flag.Parse()

	if *writeManifest != "" {
		if err := writeManifestFile(*writeManifest); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "worker: -dir is required (or -write-manifest)")
		flag.Usage()
		os.Exit(2)
	}
	models, err := store.OpenDir(*dir)
	if err != nil {
		log.Fatal(err)
	}
	h := serve.New(models)
	if *site != "" {
		h.Site = newSiteHandler(*site)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    serve.DefaultMaxHeaderBytes,
	}
	// The line a script waits for: the address with the port actually bound (":0" works).
	fmt.Printf("serving %s on http://%s/models/\n", *dir, ln.Addr())
	if *site != "" {
		// The page's URL, the line `make serve` (tools/serve.sh) and the site's browser test wait for.
		fmt.Printf("nibble demo: http://%s/\n", ln.Addr())
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// writeManifestFile hashes every file of one model directory into its manifest.json, the
// object the Worker serves on R2 (where nothing can hash a multi-GB object per request).
func writeManifestFile(modelDir string) error {
	modelDir = filepath.Clean(modelDir)
	parent, model := filepath.Dir(modelDir), filepath.Base(modelDir)
	if !store.ValidSegment(model) {
		return fmt.Errorf("model directory name %q is not a valid model name ([A-Za-z0-9._-])", model)
	}
	d, err := store.OpenDir(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	m, err := serve.BuildManifest(context.Background(), d, model)
	if err != nil {
		return fmt.Errorf("manifest of %s: %w", modelDir, err)
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	out := filepath.Join(modelDir, serve.ManifestName)
	if err := os.WriteFile(out, append(body, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d files)\n", out, len(m.Files))
	return nil
}
