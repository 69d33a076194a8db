package engine

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/internal/tfjsref"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// The sentence set of the browser tests and of the README table (quanteval's, which
// tools/quanttest uses too): pairs that mean the same, so nearest-neighbour ranking means something.
var embedSentences = quanteval.Sentences

// embedEnv gives the model URL and TF.js's vendor URL that tools/streamserve sets.
func embedEnv(t *testing.T) (model, vendor string) {
	base, vendor := os.Getenv("NIBBLE_STREAM_URL"), os.Getenv("NIBBLE_TFJS_URL")
	if base == "" || vendor == "" {
		t.Skip("needs tools/streamserve (NIBBLE_STREAM_URL, NIBBLE_TFJS_URL): go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/engine -run Embed")
	}
	return base + "/use-lite/", vendor
}

// tfjsEmbeddings runs TF.js itself on the same model and the same ids, in this page.
func tfjsEmbeddings(t *testing.T, ctx context.Context, model, vendor, backend string, texts []string) ([][]float32, *uselite.Tokenizer) {
	t.Helper()
	vocab, err := get(ctx, model+"vocab.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := uselite.NewTokenizer(vocab)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([][]int32, len(texts))
	for i, s := range texts {
		ids[i] = tok.Encode(s)
	}
	if err := tfjsref.Load(ctx, vendor); err != nil {
		t.Fatal(err)
	}
	if err := tfjsref.SetBackend(ctx, backend); err != nil {
		t.Fatal(err)
	}
	want, err := tfjsref.Embed(ctx, model+"model.json", ids)
	if err != nil {
		t.Fatal(err)
	}
	return want, tok
}

// TestBrowserEmbedMatchesTFJS: nibble's fp32 embeddings on every backend against TF.js running
// the same model.json in the same page: cosine distance ≤ 1e-5 for every sentence.
func TestBrowserEmbedMatchesTFJS(t *testing.T) {
	model, vendor := embedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	texts := embedSentences[:12]
	want, _ := tfjsEmbeddings(t, ctx, model, vendor, "wasm", texts)
	for _, b := range []string{"cpu", "webgpu", "webnn"} {
		t.Run(b, func(t *testing.T) {
			off := false
			m, err := Load(ctx, model, Options{Backend: b, Format: "f32", Cache: &off})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Release()
			// Embed at once: the embedding and each layer run as their weights arrive.
			got, err := m.Embed(ctx, texts)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			p := m.Progress()
			t.Logf("%s: load %.0f ms (%d bytes), first output %.0f ms after load start", b, p.ElapsedMS, p.BytesReceived, p.FirstOutputMS)
			if p.FirstOutputMS <= 0 {
				t.Error("no first output time")
			}
			worst := 0.0
			for i := range texts {
				d := 1 - quanteval.Cosine(got[i], want[i])
				worst = max(worst, d)
				if d > 1e-5 || math.IsNaN(d) {
					t.Errorf("%q: cosine distance to TF.js %.3g > 1e-5", texts[i], d)
				}
			}
			t.Logf("%s (%s): %d sentences, worst cosine distance to TF.js %.3g", b, m.Backend.Caps().Adapter, len(texts), worst)
		})
	}
}

// TestBrowserEmbedTable prints the README's table (NIBBLE_EMBED_TABLE=1; see make bench-embed):
// per backend × precision, weight bytes held, cosine to fp32 TF.js (min, mean), whether each
// sentence keeps its nearest neighbour, median latency for 1 sentence and for all 30; then
// TF.js's own backends on the same sentences in the same page.
func TestBrowserEmbedTable(t *testing.T) {
	if os.Getenv("NIBBLE_EMBED_TABLE") == "" {
		t.Skip("set NIBBLE_EMBED_TABLE=1 (make bench-embed)")
	}
	model, vendor := embedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	texts := embedSentences
	one := texts[:1]
	ref, _ := tfjsEmbeddings(t, ctx, model, vendor, "wasm", texts)
	refNN := neighbours(ref)
	runs := 5
	if r := os.Getenv("NIBBLE_EMBED_RUNS"); r != "" {
		fmt.Sscan(r, &runs)
	}
	timeIt := func(f func() error) (float64, error) {
		if err := f(); err != nil { // warm-up: compile the bucket
			return 0, err
		}
		var ms []float64
		for range runs {
			t0 := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		}
		slices.Sort(ms)
		return ms[len(ms)/2], nil
	}
	fmt.Println("| runtime | backend | precision | weight bytes | cosine to fp32 min / mean | NN ranking kept | 1 sentence ms | 30 sentences ms |")
	fmt.Println("|---|---|---|---:|---|---|---:|---:|")
	backends := []string{"cpu", "webgpu", "webnn"}
	if b := os.Getenv("NIBBLE_EMBED_BACKENDS"); b != "" {
		backends = strings.Split(b, ",")
	}
	for _, b := range backends {
		formats := []string{"f32", "q8-sym-g32", "q4-sym-g32", "q4-sym-g128"}
		if b == "webnn" {
			formats = append(formats, "q8-sym-g32+int8act", "q4-sym-g32+int8act")
		}
		for _, f := range formats {
			off := false
			format, act := strings.CutSuffix(f, "+int8act")
			m, err := Load(ctx, model, Options{Backend: b, Format: format, Cache: &off, Int8Activations: act})
			if err == nil {
				err = m.Wait(ctx)
			}
			if err != nil {
				fmt.Printf("| nibble | %s | %s | error: %v |\n", b, f, err)
				continue
			}
			got, err := m.Embed(ctx, texts)
			if err != nil {
				fmt.Printf("| nibble | %s | %s | error: %v |\n", b, f, err)
				m.Release()
				continue
			}
			lo, mean := 1.0, 0.0
			for i := range got {
				c := quanteval.Cosine(got[i], ref[i])
				lo, mean = min(lo, c), mean+c/float64(len(got))
			}
			kept := slices.Equal(neighbours(got), refNN)
			t1, err1 := timeIt(func() error { _, err := m.Embed(ctx, one); return err })
			t30, err30 := timeIt(func() error { _, err := m.Embed(ctx, texts); return err })
			if err1 != nil || err30 != nil {
				t.Errorf("%s %s: %v %v", b, f, err1, err30)
			}
			fmt.Printf("| nibble | %s | %s | %d | %.5f / %.5f | %v | %.1f | %.1f |\n", b, f, m.Memory().ResidentBytes, lo, mean, kept, t1, t30)
			m.Release()
		}
	}
	facts, _ := tfjsref.Describe(ctx)
	peers := []string{"wasm", "cpu", "webgpu"}
	if os.Getenv("NIBBLE_EMBED_TFJS") == "0" {
		peers = nil
	}
	for _, b := range peers {
		if err := tfjsref.SetBackend(ctx, b); err != nil {
			fmt.Printf("| TF.js %s | %s | error: %v |\n", tfjsref.Version, b, err)
			continue
		}
		_, tok := tfjsEmbeddings(t, ctx, model, vendor, b, one)
		ids := make([][]int32, len(texts))
		for i, s := range texts {
			ids[i] = tok.Encode(s)
		}
		t1, _ := timeIt(func() error { _, err := tfjsref.Embed(ctx, model+"model.json", ids[:1]); return err })
		t30, _ := timeIt(func() error { _, err := tfjsref.Embed(ctx, model+"model.json", ids); return err })
		note := ""
		if b == "wasm" {
			f, _ := tfjsref.Describe(ctx)
			note = fmt.Sprintf(" (%d thread(s), crossOriginIsolated=%v)", f.WasmThreads, f.CrossOriginIsolated)
		}
		fmt.Printf("| TF.js %s | %s%s | f32 | 27903656 | reference | reference | %.1f | %.1f |\n", tfjsref.Version, b, note, t1, t30)
	}
	t.Logf("adapter: %+v", facts.Adapter)
}

// neighbours gives each vector's nearest other vector by cosine.
func neighbours(v [][]float32) []int { return quanteval.Neighbours(v) }
