//go:build js && wasm

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// goldenCPUBound is the cosine distance to TF.js's committed embeddings the cpu path must stay
// within in any browser. The cpu backend is pure Go, and Go's wasm float arithmetic is IEEE
// everywhere, so every engine should give the same bits: Chromium measures ~1e-12 here (the
// golden file is TF.js's float32 output); the bound leaves room only for that.
const goldenCPUBound = 1e-9

// TestBrowserEmbedGoldenCPU: the path a user of a browser without WebGPU and WebNN takes (the
// Safari engine: make test-webkit). Probe reports neither when NIBBLE_EXPECT_CPU_ONLY=1; "auto"
// falls back to the cpu and says why; USE-lite loaded over HTTP gives TF.js's embeddings of
// wasm/model/uselite/testdata/embeddings_tfjs.json, token ids included. The sha256 of the
// embeddings' bits is logged, so runs in two browsers can be compared for identical output.
func TestBrowserEmbedGoldenCPU(t *testing.T) {
	base := os.Getenv("NIBBLE_STREAM_URL")
	if base == "" {
		t.Skip("needs tools/streamserve (NIBBLE_STREAM_URL): make test-webkit")
	}
	model := base + "/use-lite/"
	golden := readTFJSGolden(t)
	texts := make([]string, len(golden.Cases))
	for i, c := range golden.Cases {
		texts[i] = c.Text
	}

	d := Probe()
	t.Logf("webgpu: available=%v %s; webnn: available=%v %s; cpu: GOMAXPROCS=%d %s",
		d.WebGPU.Available, d.WebGPU.Error, d.WebNN.Available, d.WebNN.Error, d.CPU.GOMAXPROCS, d.CPU.GoVersion)
	cpuOnly := os.Getenv("NIBBLE_EXPECT_CPU_ONLY") == "1"
	if cpuOnly {
		if d.WebGPU.Available || d.WebGPU.Error == "" {
			t.Errorf("Probe: WebGPU available=%v error=%q, want unavailable with a reason", d.WebGPU.Available, d.WebGPU.Error)
		}
		if d.WebNN.Available || d.WebNN.Error == "" {
			t.Errorf("Probe: WebNN available=%v error=%q, want unavailable with a reason", d.WebNN.Available, d.WebNN.Error)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	backend := "cpu"
	if cpuOnly {
		backend = "auto" // what a page that does not choose gets
	}
	off := false
	m, err := Load(ctx, model, Options{Backend: backend, Format: "f32", Cache: &off})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if cpuOnly {
		if m.Backend.Name() != "cpu" || FallbackReason(m.Backend) == nil {
			t.Errorf("auto chose %s (fallback reason %v), want cpu with a reason", m.Backend.Name(), FallbackReason(m.Backend))
		} else {
			t.Logf("auto: cpu, because %v", FallbackReason(m.Backend))
		}
	}
	got, err := m.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p := m.Progress()
	t.Logf("load %.0f ms (%d bytes), first output %.0f ms after load start", p.ElapsedMS, p.BytesReceived, p.FirstOutputMS)

	vocab, err := get(ctx, model+"vocab.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := uselite.NewTokenizer(vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range golden.Cases {
		if ids := tok.Encode(c.Text); !slices.Equal(ids, c.IDs) {
			t.Errorf("%q: ids %v, TF.js's %v", c.Text, ids, c.IDs)
		}
	}
	worst := 0.0
	h := sha256.New()
	for i, c := range golden.Cases {
		dist := 1 - quanteval.Cosine(got[i], c.Embedding)
		worst = max(worst, dist)
		if dist > goldenCPUBound || math.IsNaN(dist) {
			t.Errorf("%q: cosine distance to TF.js %.3g > %g", c.Text, dist, goldenCPUBound)
		}
		for _, v := range got[i] {
			binary.Write(h, binary.LittleEndian, math.Float32bits(v))
		}
	}
	t.Logf("%d sentences, worst cosine distance to TF.js %.3g; sha256 of the embeddings' bits %x", len(texts), worst, h.Sum(nil)[:8])
}
