//go:build js && wasm

package stream

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/e2e/qsum"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/format"
)

// The end-to-end test of issue 6 (item 4) needs the Worker under wrangler dev and a cutting
// proxy in front of it; tools/worker/e2e.sh starts both and sets:
//
//	NIBBLE_WORKER_URL        the Worker (wrangler dev), e.g. http://127.0.0.1:8787
//	NIBBLE_WORKER_PROXY_URL  tools/worker/e2e/cutproxy in front of it, cutting the model's first GETs
//	NIBBLE_WORKER_MODEL      the model name under /models/ (default e2e)
//	NIBBLE_WORKER_FILE       its safetensors file (default model.safetensors)
//	NIBBLE_WORKER_QSUMS      the native reference: every tensor quantized whole (tools/worker/e2e/qsums)
//	NIBBLE_WORKER_CUTS       how many cuts the proxy makes (the load must resume at least that often)
const workerE2EHint = "run bash tools/worker/e2e.sh (it starts wrangler dev, the cutting proxy and this test)"

func workerE2EEnv(t *testing.T, key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	if def == "" {
		t.Fatalf("%s is not set: %s", key, workerE2EHint)
	}
	return def
}

// workerE2EResult is one load: the progress at its end, its duration and how many tensors it
// quantized to 4 bits.
type workerE2EResult struct {
	Progress
	d       time.Duration
	q4      int
	tensors []format.TensorInfo
	opens   []int64 // the offset of every request for the file, in order
}

// workerE2ELoad fetches base's manifest.json, streams the model file through fetch into the CPU
// backend (DefaultPlan: q4 for weight matrices) and returns the qsum of every resident tensor.
func workerE2ELoad(t *testing.T, base, model, file string) (map[string]string, workerE2EResult) {
	t.Helper()
	dir := base + "/models/" + model + "/"
	rc, err := Fetch(dir+"manifest.json", FetchOptions{})(context.Background(), 0)
	if err != nil {
		t.Fatalf("manifest from %s: %v", base, err)
	}
	m, err := format.ParseManifest(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("manifest from %s: %v", base, err)
	}
	var mu sync.Mutex
	var opens []int64
	fetch := Fetch(dir+file, FetchOptions{})
	src, err := ManifestSource(m, file, func(ctx context.Context, off int64) (io.ReadCloser, error) {
		mu.Lock()
		opens = append(opens, off)
		mu.Unlock()
		return fetch(ctx, off)
	})
	if err != nil {
		t.Fatal(err)
	}
	if src.SHA256 == "" || src.Size == 0 {
		t.Fatalf("the manifest from %s gives %s no sha256 or size: the load would not check the bytes", base, file)
	}
	be := cpu.New()
	t.Cleanup(func() { be.Close() })
	up := &qsum.Keeper{Up: be}
	// The proxy's cuts end the body at once; a short first retry keeps the test quick, and the
	// default stall timeout (30 s) leaves room for a slow machine.
	opt := Options{RetryDelay: 20 * time.Millisecond}
	start := time.Now()
	l := Start(context.Background(), up, opt, src)
	t.Cleanup(func() { l.Release() })
	if _, err := l.Result(context.Background()); err != nil {
		t.Fatalf("load from %s: %v (%v)", base, err, l.Progress())
	}
	mu.Lock()
	r := workerE2EResult{Progress: l.Progress(), d: time.Since(start), tensors: l.Tensors(), opens: opens}
	mu.Unlock()
	sums, q4 := up.Sums()
	r.q4 = q4
	return sums, r
}

// TestBrowserWorkerE2E streams a model from the Worker under wrangler dev (local R2) into the
// browser, quantizing it on arrival into the CPU backend: once straight from the Worker, once
// through a proxy that cuts the connection mid-file (the loader resumes with Range + If-Range
// against the Worker's 206). Both must be byte-identical, tensor by tensor, to each other and to
// the native reference (every tensor quantized whole); each load checks the file's sha256 from
// the Worker's manifest.json as it goes.
func TestBrowserWorkerE2E(t *testing.T) {
	direct := os.Getenv("NIBBLE_WORKER_URL")
	if direct == "" {
		t.Skip("NIBBLE_WORKER_URL is not set: " + workerE2EHint)
	}
	proxy := workerE2EEnv(t, "NIBBLE_WORKER_PROXY_URL", "")
	model := workerE2EEnv(t, "NIBBLE_WORKER_MODEL", "e2e")
	file := workerE2EEnv(t, "NIBBLE_WORKER_FILE", "model.safetensors")
	want, err := qsum.Parse(workerE2EEnv(t, "NIBBLE_WORKER_QSUMS", ""))
	if err != nil {
		t.Fatal(err)
	}
	cuts, err := strconv.Atoi(workerE2EEnv(t, "NIBBLE_WORKER_CUTS", "1"))
	if err != nil || cuts < 1 {
		t.Fatalf("NIBBLE_WORKER_CUTS=%q: want a count of at least 1", os.Getenv("NIBBLE_WORKER_CUTS"))
	}

	// Raw rate of the Worker into the browser: the same fetch adapter, bytes discarded.
	start := time.Now()
	rc, err := Fetch(direct+"/models/"+model+"/"+file, FetchOptions{})(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, make([]byte, 1<<20))
	rc.Close()
	if err != nil {
		t.Fatalf("raw fetch from the Worker: %d bytes, then %v", raw, err)
	}
	rawTime := time.Since(start)
	t.Logf("e2e raw: %d bytes fetched from the Worker in %v: %.1f MB/s", raw, rawTime.Round(time.Millisecond), mb6(raw)/rawTime.Seconds())

	clean, pd := workerE2ELoad(t, direct, model, file)
	t.Logf("e2e clean: %d bytes straight from the Worker → %d tensors, %.1f MB resident, in %v: %.1f MB/s, %d resumes",
		pd.BytesReceived, pd.TensorsReady, mb6(pd.ResidentBytes), pd.d.Round(time.Millisecond), mb6(pd.BytesReceived)/pd.d.Seconds(), pd.Resumes)
	cut, pc := workerE2ELoad(t, proxy, model, file)
	t.Logf("e2e cut: %d bytes through the cutting proxy → %d tensors, %.1f MB resident, in %v: %.1f MB/s, %d resumes",
		pc.BytesReceived, pc.TensorsReady, mb6(pc.ResidentBytes), pc.d.Round(time.Millisecond), mb6(pc.BytesReceived)/pc.d.Seconds(), pc.Resumes)

	if pc.Resumes < cuts {
		t.Errorf("the load through the proxy resumed %d times; the proxy cuts %d connections", pc.Resumes, cuts)
	}
	if pc.BytesReceived != raw || pd.BytesReceived != raw {
		t.Errorf("bytes received: %d through the proxy, %d straight, want the file's %d each", pc.BytesReceived, pd.BytesReceived, raw)
	}
	for name, sum := range want {
		switch {
		case cut[name] == "":
			t.Errorf("tensor %q: not loaded through the proxy", name)
		case cut[name] != clean[name]:
			t.Errorf("tensor %q: the resumed load differs from the clean load from the Worker", name)
		case clean[name] != sum:
			t.Errorf("tensor %q: the browser loads differ from the native reference", name)
		}
	}
	for name := range cut {
		if _, ok := want[name]; !ok {
			t.Errorf("tensor %q: loaded, but not in the native reference", name)
		}
	}
	if len(clean) != len(cut) {
		t.Errorf("%d tensors through the proxy, %d straight", len(cut), len(clean))
	}
	// The loader resumes at the first byte it has not consumed (bytes the browser received but
	// had not handed to Go when the body failed are fetched again), so the resumed offsets are
	// the loader's, not the proxy's cut points. One must fall inside a tensor's bytes: a resume
	// mid-tensor, not merely between tensors or in the header.
	midTensor := false
	for i, off := range pc.opens[1:] {
		in := "between tensors"
		for _, ti := range pc.tensors {
			if off > ti.Offset && off < ti.Offset+ti.Size {
				in = fmt.Sprintf("inside tensor %q (%v %v, byte %d of %d)", ti.Name, ti.DType, ti.Shape, off-ti.Offset, ti.Size)
				midTensor = true
			}
		}
		t.Logf("e2e resume %d: Range from byte %d of %d, %s", i+1, off, raw, in)
	}
	if !midTensor {
		t.Errorf("no request resumed inside a tensor's bytes (request offsets %v)", pc.opens)
	}
	if pc.q4 == 0 {
		t.Errorf("no tensor was quantized to 4 bits: the model has no weight matrix DefaultPlan quantizes")
	}
	if t.Failed() {
		return
	}
	t.Logf("e2e checked: %d tensors (%d q4) byte-identical across the resumed load, the clean load and the native reference", len(want), pc.q4)
}
