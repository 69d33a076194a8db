//go:build js && wasm

// Command page is the nibble side of tools/bench, built for js/wasm and run by the harness's
// page (tools/bench/web/bench.mjs) with argv[1] naming the runtime: nibble-webnn or
// nibble-webgpu. It reads /plan.json, fetches each case's packed weights exactly as nibble's
// quantizer wrote them, uploads them through the backend, times MatMul (x written, dispatched, y
// read back into Go memory) and posts the timings and the last output to the harness, which
// compares outputs natively.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// backends maps a runtime name to its constructor; a file per backend registers itself (nn.go,
// and gpu.go once wasm/backend/gpu exists), so the page builds whatever backends the tree has.
var backends = map[string]func() (backend.Backend, error){}

// describers name the path a backend took for a weight (e.g. WebNN's int4 constants) and why.
var describers []func(backend.Weight) (path, note string, ok bool)

// origin is the page's origin: Go's HTTP client wants absolute URLs.
var origin = js.Global().Get("location").Get("origin").String()

type caseMeta struct {
	Name      string `json:"name"`
	M         int    `json:"m"`
	N         int    `json:"n"`
	K         int    `json:"k"`
	Bits      int    `json:"bits"`
	Scheme    string `json:"scheme"`
	GroupSize int    `json:"group_size"`
}

type plan struct {
	Warmup int        `json:"warmup"`
	Runs   int        `json:"runs"`
	Cases  []caseMeta `json:"cases"`
}

// result mirrors tools/bench's Result.
type result struct {
	Runtime string    `json:"runtime"`
	Case    string    `json:"case"`
	Path    string    `json:"path"`
	BuildMS float64   `json:"build_ms"`
	FirstMS float64   `json:"first_ms"`
	MS      []float64 `json:"ms"`
	Notes   []string  `json:"notes,omitempty"`
	Error   string    `json:"error,omitempty"`
}

func main() {
	rt := "?"
	if len(os.Args) > 1 {
		rt = os.Args[1]
	}
	err := run(rt)
	done := map[string]string{"runtime": rt}
	if err != nil {
		done["error"] = err.Error()
	}
	b, _ := json.Marshal(done)
	if _, err := post("/done", "application/json", b); err != nil {
		fmt.Println("posting /done:", err)
	}
}

func run(rt string) error {
	newBackend, ok := backends[rt]
	if !ok {
		names := make([]string, 0, len(backends))
		for n := range backends {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Errorf("runtime %s is not built into this page (it has %v): is its backend package in the tree yet?", rt, names)
	}
	var p plan
	b, err := get("/plan.json")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("plan.json: %w", err)
	}
	be, err := newBackend()
	if err != nil {
		return fmt.Errorf("%s: creating the backend: %w", rt, err)
	}
	defer be.Close()
	for _, c := range p.Cases {
		res := &result{Runtime: rt, Case: c.Name}
		y, err := runCase(be, c, p, res)
		if err != nil {
			res.Error = err.Error()
		} else if _, err := post("/output?runtime="+rt+"&case="+c.Name, "application/octet-stream", onnx.Float32Bytes(y)); err != nil {
			res.Error = "posting the output: " + err.Error()
		}
		b, _ := json.Marshal(res)
		if _, err := post("/result", "application/json", b); err != nil {
			return err
		}
	}
	return nil
}

// runCase uploads one case's weights, runs the first product (graph or pipeline compilation
// included), the warm-up and the timed runs, and returns the last timed output.
func runCase(be backend.Backend, c caseMeta, p plan, res *result) ([]float32, error) {
	t, err := loadTensor(c)
	if err != nil {
		return nil, err
	}
	xb, err := get("/case/" + c.Name + "/x.bin")
	if err != nil {
		return nil, err
	}
	x := onnx.BytesFloat32(xb)
	// Caps().Notes (the context's whole opSupportLimits) stay out: the weight's note below says
	// which path was taken and why.
	if caps := be.Caps(); caps.Adapter != "" {
		res.Notes = append(res.Notes, caps.Adapter)
	}

	t0 := time.Now()
	w, err := be.Upload(t)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer w.Release()
	res.BuildMS = ms(time.Since(t0))
	res.Path = w.Format().String()
	for _, d := range describers {
		if path, note, ok := d(w); ok {
			res.Path = path
			if note != "" {
				res.Notes = append(res.Notes, note)
			}
		}
	}

	y := make([]float32, c.M*c.N)
	t0 = time.Now()
	if err := be.MatMul(y, x, w, c.M); err != nil {
		return nil, fmt.Errorf("first MatMul: %w", err)
	}
	res.FirstMS = ms(time.Since(t0))
	for range p.Warmup {
		if err := be.MatMul(y, x, w, c.M); err != nil {
			return nil, err
		}
	}
	for range p.Runs {
		// Poison the output so a run that writes nothing cannot pass for a correct one.
		for i := range y {
			y[i] = float32(math.NaN())
		}
		t0 = time.Now()
		if err := be.MatMul(y, x, w, c.M); err != nil {
			return nil, err
		}
		res.MS = append(res.MS, ms(time.Since(t0)))
	}
	return y, nil
}

// loadTensor fetches the bytes nibble's quantizer wrote, as they are: no conversion on this side.
func loadTensor(c caseMeta) (*quant.Tensor, error) {
	f := quant.Format{Bits: c.Bits, GroupSize: c.GroupSize, Scales: quant.ScaleF32}
	if c.Scheme == "asym" {
		f.Scheme = quant.Asymmetric
	}
	t := &quant.Tensor{Name: c.Name, N: c.N, K: c.K, Format: f}
	var err error
	if t.Data, err = get("/case/" + c.Name + "/data.bin"); err != nil {
		return nil, err
	}
	if t.Scales, err = get("/case/" + c.Name + "/scales.bin"); err != nil {
		return nil, err
	}
	if f.Scheme == quant.Asymmetric {
		if t.Zeros, err = get("/case/" + c.Name + "/zeros.bin"); err != nil {
			return nil, err
		}
	}
	return t, t.Check()
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// Go's net/http on js/wasm goes through the browser's fetch, so these reach the page's origin.
func get(path string) ([]byte, error) {
	r, err := http.Get(origin + path)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, r.Status)
	}
	return io.ReadAll(r.Body)
}

func post(path, typ string, body []byte) ([]byte, error) {
	r, err := http.Post(origin+path, typ, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s: %s", path, r.Status, b)
	}
	return b, nil
}
