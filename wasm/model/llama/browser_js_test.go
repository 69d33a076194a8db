//go:build js && wasm

package llama

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall/js"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
	"github.com/nibble-ml/nibble/wasm/backend/nn"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// The browser tests read the GGUF files that make test-llama-browser writes with tools/mkmodel
// (the same arguments as goldenFiles) and serves through tools/streamserve at
// $NIBBLE_STREAM_URL/llama/<label>.gguf; the golden data is embedded, since a test in the
// browser has no file system.

//go:embed testdata/llamacpp.json
var goldenJSON []byte

func browserBackends(t *testing.T) map[string]func() (Backend, error) {
	return map[string]func() (Backend, error){
		"cpu":    func() (Backend, error) { return cpu.New(), nil },
		"webgpu": func() (Backend, error) { return gpu.New(gpu.Options{Timeout: 5 * time.Minute}) },
		// The kernels and fusions GPUs get (gemv_hw.wgsl: RMS norms and SiLU·mul inside the
		// GEMVs, q, k, v and gate, up as one GEMV each), run by SwiftShader.
		"webgpu-hw": func() (Backend, error) {
			tu := gpu.DefaultTuning
			return gpu.New(gpu.Options{Timeout: 5 * time.Minute, Tuning: &tu})
		},
		"webnn": func() (Backend, error) { return nn.New(nn.Options{}) },
		// int8 activations: the calibration comes from the caller (bigCalibration). Lazy: the
		// decoder runs whole graphs only, no weight needs its single-matmul graph.
		"webnn-int8": func() (Backend, error) { return nn.New(nn.Options{Lazy: true}) },
	}
}

func fetchModel(t *testing.T, file string) io.ReadCloser {
	t.Helper()
	base := os.Getenv("NIBBLE_STREAM_URL")
	if base == "" {
		t.Skip("NIBBLE_STREAM_URL is unset: run make test-llama-browser")
	}
	resp, err := http.Get(base + "/llama/" + file)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("GET %s: %s", file, resp.Status)
	}
	return resp.Body
}

func closeBackend(b Backend) {
	if c, ok := b.(interface{ Close() error }); ok {
		c.Close()
	}
}

// TestBrowserDecoder runs the golden prompt through each backend and file format and compares
// the log-probabilities with llama.cpp's and with the cpu's, then generates 32 greedy tokens at
// F32 (prefill, then one decode per token over the backend's KV cache) and compares them with
// llama.cpp's token for token.
func TestBrowserDecoder(t *testing.T) {
	if os.Getenv("NIBBLE_STREAM_URL") == "" {
		t.Skip("NIBBLE_STREAM_URL is unset: run make test-llama-browser")
	}
	var g golden
	if err := json.Unmarshal(goldenJSON, &g); err != nil {
		t.Fatal(err)
	}
	labels := []string{"spm-f32", "spm-f16", "spm-q8_0", "spm-q4_0", "bpe-f32"}
	ref := map[string][][]float32{}
	for _, be := range []string{"cpu", "webgpu", "webgpu-hw", "webnn"} {
		t.Run(be, func(t *testing.T) {
			b, err := browserBackends(t)[be]()
			if err != nil {
				t.Fatal(err)
			}
			defer closeBackend(b)
			for _, label := range labels {
				want := g.Models[label]
				ff := goldenFiles[label][1][5:]
				body := fetchModel(t, label+".gguf")
				f, err := ReadGGUF(body, b.(backend.Backend))
				body.Close()
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				m, err := New(f.Config, b, f.Weights, Options{Context: 128})
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				start := time.Now()
				logits, err := m.Forward(context.Background(), want.IDs, true)
				if err != nil {
					t.Fatalf("%s: %v", label, err)
				}
				prefill := time.Since(start)
				worst, at := compareTop(logits, want.Top)
				// The cpu's bounds hold on every backend: at F32 webgpu and webnn differ from the
				// cpu by float32 summation order only (measured ≤ 3.5e-5 in log p).
				bound := logitBounds[ff]
				vsCPU := 0.0
				if be == "cpu" {
					ref[label] = logits
				} else if r := ref[label]; r != nil {
					for p := range r {
						a, c := quanteval.LogSoftmax(r[p]), quanteval.LogSoftmax(logits[p])
						for i := range a {
							if a[i] > -12 {
								vsCPU = max(vsCPU, abs(a[i]-c[i]))
							}
						}
					}
				}
				t.Logf("%s %s: worst |Δ log p| vs llama.cpp %.2e (bound %g) at %s; vs cpu %.2e; prefill %d tokens %v", be, label, worst, bound, at, vsCPU, len(want.IDs), prefill.Round(time.Millisecond))
				if worst > bound {
					t.Errorf("%s %s: |Δ log p| %.3g > %g at %s", be, label, worst, bound, at)
				}
				if label == "spm-f32" {
					cacheFormats(t, be, b, f, want.IDs, logits)
				}
				if ff == "f32" {
					var got []int32
					start = time.Now()
					err = m.Generate(context.Background(), want.IDs, Sampling{MaxTokens: len(want.Greedy)}, f.Tokenizer, func(id int32) error {
						got = append(got, id)
						return nil
					})
					if err != nil {
						t.Fatalf("%s: %v", label, err)
					}
					if !slices.Equal(got, want.Greedy) {
						t.Errorf("%s %s: greedy %v\nllama.cpp %v", be, label, got, want.Greedy)
					} else {
						t.Logf("%s %s: %d greedy tokens equal llama.cpp's (%v with prefill)", be, label, len(got), time.Since(start).Round(time.Millisecond))
					}
				}
				m.Release()
				f.Release()
			}
		})
	}
	t.Run("webnn-int8", func(t *testing.T) { int8Activations(t, &g, ref) })
}

// int8Activations runs the quantized files on WebNN with int8 activations (Options.Calibration,
// calibrated on the cpu reference over CalibrationText) and compares the prompt's log-probs with
// the cpu's exact ones: the worst |Δ log p| among entries above −12 and how often the most likely
// token agrees. The logits must differ from the exact path's (the int8 path ran) and stay within
// the bounds.
func int8Activations(t *testing.T, g *golden, ref map[string][][]float32) {
	nb, err := nn.New(nn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	for _, label := range []string{"spm-q8_0", "spm-q4_0"} {
		want := ref[label]
		if want == nil {
			t.Fatalf("%s: no cpu logits (the cpu subtest did not run)", label)
		}
		ids := g.Models[label].IDs
		body := fetchModel(t, label+".gguf")
		cf, err := ReadGGUF(body, cpu.New())
		body.Close()
		if err != nil {
			t.Fatal(err)
		}
		cal, err := Calibrate(context.Background(), cf.Config, cpu.New(), cf.Weights, CalibrationIDs(cf.Tokenizer, cf.Config))
		cf.Release()
		if err != nil {
			t.Fatal(err)
		}
		body = fetchModel(t, label+".gguf")
		f, err := ReadGGUF(body, nb)
		body.Close()
		if err != nil {
			t.Fatal(err)
		}
		def := rescoreTop
		// The default, then without rescoring and rescoring every token (the body's error alone).
		for _, top := range []int{def, 0, f.Config.Vocab} {
			rescoreTop = top
			m, err := New(f.Config, nb, f.Weights, Options{Context: 128, Calibration: cal})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := m.Forward(context.Background(), ids, true)
			m.Release()
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			worst, agree, differs := 0.0, 0, false
			for p := range want {
				a, c := quanteval.LogSoftmax(want[p]), quanteval.LogSoftmax(got[p])
				for i := range a {
					differs = differs || want[p][i] != got[p][i]
					if a[i] > -12 {
						worst = max(worst, abs(a[i]-c[i]))
					}
				}
				if slices.Index(want[p], slices.Max(want[p])) == slices.Index(got[p], slices.Max(got[p])) {
					agree++
				}
			}
			t.Logf("webnn int8 activations %s, top %d rescored: worst |Δ log p| vs cpu %.3g, top-1 agrees at %d of %d positions; prefill %d tokens %v",
				label, top, worst, agree, len(want), len(ids), elapsed.Round(time.Millisecond))
			if top != def {
				continue
			}
			if !differs {
				t.Errorf("%s: the logits equal the exact path's bit for bit: the int8 form did not run", label)
			}
			if worst > int8LogitBound || agree < len(want)*int8AgreeBound/100 {
				t.Errorf("%s: |Δ log p| %.3g (bound %g), top-1 agreement %d of %d (bound %d%%)", label, worst, int8LogitBound, agree, len(want), int8AgreeBound)
			}
		}
		rescoreTop = def
		f.Release()
		f32Layers(t, label, ids, want, cal)
	}
}

// f32Layers runs label on WebNN with float32 weights (nn.Options.F32Weights) and only the head
// in the int8 form (HeadOnly), its top tokens rescored: the body is exact, so the log-probs must
// stay near the cpu's (bound f32LayersBound) and the most likely token agree at every position.
func f32Layers(t *testing.T, label string, ids []int32, want [][]float32, cal *backend.Calibration) {
	nb, err := nn.New(nn.Options{Lazy: true, F32Weights: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	body := fetchModel(t, label+".gguf")
	f, err := ReadGGUF(body, nb)
	body.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	m, err := New(f.Config, nb, f.Weights, Options{Context: 128, Calibration: HeadOnly(cal)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	got, err := m.Forward(context.Background(), ids, true)
	if err != nil {
		t.Fatal(err)
	}
	worst, agree := 0.0, 0
	for p := range want {
		a, c := quanteval.LogSoftmax(want[p]), quanteval.LogSoftmax(got[p])
		for i := range a {
			if a[i] > -12 {
				worst = max(worst, abs(a[i]-c[i]))
			}
		}
		if slices.Index(want[p], slices.Max(want[p])) == slices.Index(got[p], slices.Max(got[p])) {
			agree++
		}
	}
	t.Logf("webnn float32 layers, int8 head %s: worst |Δ log p| vs cpu %.3g (bound %g), top-1 agrees at %d of %d positions", label, worst, f32LayersBound, agree, len(want))
	if worst > f32LayersBound || agree != len(want) {
		t.Errorf("%s float32 layers: |Δ log p| %.3g (bound %g), top-1 agreement %d of %d", label, worst, f32LayersBound, agree, len(want))
	}
}

// int8LogitBound bounds WebNN's int8-activation log-probs against the cpu's exact ones on the
// small random models (measured: see the test log and README).
const (
	int8LogitBound = 4.0
	int8AgreeBound = 75 // percent of positions
	f32LayersBound = 1.0
)

// cacheFormats runs the prompt over an f16 and an int8 KV cache on the backend and reports the
// largest |Δ log p| against the f32 cache's logits and the bytes per token (bounds: f16 0.05,
// int8 0.5; the cpu measures 0.26 for int8 in TestCacheFormats).
func cacheFormats(t *testing.T, be string, b Backend, f *File, ids []int32, f32 [][]float32) {
	for _, c := range []struct {
		storage graph.StateFormat
		bound   float64
	}{{graph.StateF16, 0.05}, {graph.StateInt8, 0.5}} {
		m, err := New(f.Config, b, f.Weights, Options{Context: 128, Cache: c.storage})
		if err != nil {
			t.Fatalf("%s cache: %v", c.storage, err)
		}
		lg, err := m.Forward(context.Background(), ids, true)
		if err != nil {
			t.Fatalf("%s cache: %v", c.storage, err)
		}
		worst := 0.0
		for p := range lg {
			a, d := quanteval.LogSoftmax(f32[p]), quanteval.LogSoftmax(lg[p])
			for i := range a {
				if a[i] > -12 {
					worst = max(worst, abs(a[i]-d[i]))
				}
			}
		}
		t.Logf("%s: %s KV cache: |Δ log p| vs the f32 cache %.3g (bound %g), %d bytes per token held (f32: %d per token of the spec)", be, c.storage, worst, c.bound, m.KVBytesPerToken(), int64(2*f.Config.Layers*f.Config.KVHeads*f.Config.HeadDim*4))
		if worst > c.bound {
			t.Errorf("%s: %s cache |Δ log p| %.3g > %g", be, c.storage, worst, c.bound)
		}
		m.Release()
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestBrowserBig (NIBBLE_LLAMA_BIG=layers, the file llama-1b.gguf served beside the small ones)
// loads a Llama-3.2-1B-shaped Q4_0 file in the browser on each backend named in
// NIBBLE_LLAMA_BIG_BACKENDS (default cpu) and generates: Go heap and wasm memory after the load
// (linear memory never shrinks, so Sys is its peak), prefill and decode tokens/s, and the KV
// cache bytes per token for each storage.
func TestBrowserBig(t *testing.T) {
	layers, _ := strconv.Atoi(os.Getenv("NIBBLE_LLAMA_BIG"))
	if layers == 0 {
		t.Skip("set NIBBLE_LLAMA_BIG=<layers> (make llama-big-browser)")
	}
	bes := []string{"cpu"}
	if s := os.Getenv("NIBBLE_LLAMA_BIG_BACKENDS"); s != "" {
		bes = strings.Split(s, ",")
	}
	for _, be := range bes {
		t.Run(be, func(t *testing.T) {
			b, err := browserBackends(t)[be]()
			if err != nil {
				t.Fatal(err)
			}
			defer closeBackend(b)
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.Sys
			start := time.Now()
			body := fetchModel(t, "llama-1b.gguf")
			f, err := ReadGGUF(body, b.(backend.Backend))
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Release()
			load := time.Since(start)
			runtime.ReadMemStats(&ms)
			t.Logf("%s: 1B-shaped Q4_0, %d of 16 layers: loaded in %v; wasm memory (Go Sys, its peak) %.1f MiB (%.1f before), heap in use %.1f MiB; %s",
				be, f.Config.Layers, load.Round(time.Millisecond), float64(ms.Sys)/(1<<20), float64(before)/(1<<20), float64(ms.HeapInuse)/(1<<20), jsHeap())
			var cal *backend.Calibration
			if strings.HasSuffix(be, "-int8") {
				cal = bigCalibration(t)
			}
			for _, storage := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
				m, err := New(f.Config, b, f.Weights, Options{Context: 256, Cache: storage, Calibration: cal})
				if err != nil {
					t.Fatalf("%s: %v", storage, err)
				}
				if storage != graph.StateF32 {
					t.Logf("%s: KV cache %s: %d bytes per token", be, storage, m.KVBytesPerToken())
					m.Release()
					continue
				}
				prompt := append([]int32{f.Tokenizer.BOS}, f.Tokenizer.Encode("The quick brown fox jumps over the lazy dog", false)...)
				// Untimed: the first run of each shape bucket compiles its program.
				start := time.Now()
				if _, err := m.Forward(context.Background(), prompt, false); err != nil {
					t.Fatal(err)
				}
				if _, err := m.Forward(context.Background(), prompt[:1], false); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: first prefill + decode (compiling both programs) %v", be, time.Since(start).Round(time.Millisecond))
				m.Reset()
				start = time.Now()
				if _, err := m.Forward(context.Background(), prompt, false); err != nil {
					t.Fatal(err)
				}
				pre := time.Since(start)
				const n = 8
				start = time.Now()
				var got []int32
				id := int32(1)
				for range n {
					lg, err := m.Forward(context.Background(), []int32{id}, false)
					if err != nil {
						t.Fatal(err)
					}
					id = int32(slices.Index(lg[0], slices.Max(lg[0])))
					got = append(got, id)
				}
				dec := time.Since(start)
				runtime.ReadMemStats(&ms)
				t.Logf("%s: prefill %d tokens %.2f tok/s, decode %d tokens %.2f tok/s, KV cache %s %d bytes per token; tokens %v %q; wasm memory %.1f MiB, %s",
					be, len(prompt), float64(len(prompt))/pre.Seconds(), n, n/dec.Seconds(), storage, m.KVBytesPerToken(), got, f.Tokenizer.Decode(got), float64(ms.Sys)/(1<<20), jsHeap())
				m.Release()
			}
		})
	}
}

// bigCalibration is llama-1b.calib.json, which browser.sh writes natively on the cpu
// (tools/llamapeer -calibrate) when a -int8 backend is asked for.
func bigCalibration(t *testing.T) *backend.Calibration {
	body := fetchModel(t, "llama-1b.calib.json")
	defer body.Close()
	var cal backend.Calibration
	if err := json.NewDecoder(body).Decode(&cal); err != nil {
		t.Fatalf("llama-1b.calib.json: %v", err)
	}
	return &cal
}

// jsHeap is Chromium's performance.memory (the page's JS heap, typed arrays' bytes outside it),
// where there is one.
func jsHeap() string {
	pm := js.Global().Get("performance").Get("memory")
	if !pm.Truthy() {
		return "no performance.memory"
	}
	return fmt.Sprintf("JS heap used %.1f MiB of %.1f", pm.Get("usedJSHeapSize").Float()/(1<<20), pm.Get("totalJSHeapSize").Float()/(1<<20))
}
