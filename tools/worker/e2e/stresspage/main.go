//go:build js && wasm

// Command stresspage is the page of tools/worker/stress.sh: one browser tab's load of a model
// from the Worker. tools/worker/e2e/stress opens several tabs of it at once, each its own
// WebAssembly instance with its own linear memory, which is what a user with several tabs of one
// site has (and what one page running several loads would not show: they would share one heap).
//
// The query string names the model: ?base=<Worker or proxy URL>&model=<name>&file=<file>. The
// page fetches base/models/<model>/manifest.json, streams the file into the CPU backend
// (DefaultPlan, the sha256 checked as it goes) and leaves its result as JSON in
// window.nibbleStress: the qsum of every resident tensor, the load's progress and the linear
// memory before and after. It never reloads or retries the load itself: resuming is the
// loader's job.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/e2e/qsum"
	"github.com/nibble-ml/nibble/tools/worker/e2e/tab"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/stream"
)

func main() {
	r := tab.Result{LinearStart: stream.LinearMemoryBytes()}
	if err := load(&r); err != nil {
		r.Error = err.Error()
	}
	r.LinearPeak = stream.LinearMemoryBytes()
	b, _ := json.Marshal(r)
	js.Global().Set("nibbleStress", string(b))
}

func load(r *tab.Result) error {
	q, err := url.ParseQuery(js.Global().Get("location").Get("search").String()[1:])
	if err != nil {
		return err
	}
	base, model, file := q.Get("base"), q.Get("model"), q.Get("file")
	if base == "" || model == "" || file == "" {
		return fmt.Errorf("want ?base=...&model=...&file=..., got %q", q.Encode())
	}
	ctx := context.Background()
	dir := base + "/models/" + model + "/"
	rc, err := stream.Fetch(dir+"manifest.json", stream.FetchOptions{})(ctx, 0)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	m, err := format.ParseManifest(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	src, err := stream.ManifestSource(m, file, stream.Fetch(dir+file, stream.FetchOptions{}))
	if err != nil {
		return err
	}
	if src.SHA256 == "" {
		return fmt.Errorf("the manifest gives %s no sha256: the load would not check its bytes", file)
	}
	be := cpu.New()
	defer be.Close()
	k := &qsum.Keeper{Up: be}
	start := time.Now()
	// Resets come every few MB by design: a short first retry keeps the load moving, and the
	// loader's count of failures restarts with every byte that arrives.
	l := stream.Start(ctx, k, stream.Options{RetryDelay: 20 * time.Millisecond}, src)
	defer l.Release()
	_, err = l.Result(ctx)
	p := l.Progress()
	r.Millis = time.Since(start).Milliseconds()
	r.BytesReceived, r.ResidentBytes, r.PeakHeldBytes, r.Resumes = p.BytesReceived, p.ResidentBytes, p.PeakHeldBytes, p.Resumes
	if err != nil {
		return fmt.Errorf("load: %w (%+v)", err, p)
	}
	sums, q4 := k.Sums()
	r.Sums, r.Q4 = qsum.Encode(sums), q4
	return nil
}
