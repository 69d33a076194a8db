package engine_test

import (
	"os"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/internal/jsapi"
	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// TestBrowserEmbedHybridAPI: the page's view. nibble.load(url, {backend: "hybrid", policy,
// memoryBudget}) resolves once the stages are placed, and m.plan() shows each stage's backend,
// its probes, the crossings, and each tensor's backend.
func TestBrowserEmbedHybridAPI(t *testing.T) {
	base := os.Getenv("NIBBLE_STREAM_URL")
	if base == "" {
		t.Skip("needs tools/streamserve (make test-embed-js)")
	}
	api := jsapi.New()
	m, err := jsutil.Await(api.Call("load", base+"/use-lite/", map[string]any{"backend": "hybrid", "policy": "quality", "memoryBudget": 20e6}), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Call("dispose")
	p := m.Call("plan")
	if b := p.Get("backend").String(); b != "hybrid" {
		t.Errorf("plan().backend %q", b)
	}
	pl := p.Get("precision").Get("placement")
	if pl.IsUndefined() || pl.IsNull() {
		t.Fatal("m.plan().precision has no placement")
	}
	stages := pl.Get("stages")
	if stages.Length() != 4 {
		t.Fatalf("%d stages", stages.Length())
	}
	onStage := map[string]bool{}
	for i := range stages.Length() {
		s := stages.Index(i)
		b := s.Get("backend").String()
		onStage[b] = true
		if s.Get("probe").Length() != 3 || s.Get("reason").String() == "" {
			t.Errorf("stage %s: %d probes, reason %q", s.Get("name"), s.Get("probe").Length(), s.Get("reason"))
		}
		t.Logf("m.plan().precision.placement.stages[%d]: %s on %s", i, s.Get("name"), b)
	}
	if c := pl.Get("crossings"); c.Type().String() != "number" {
		t.Errorf("crossings %v", c)
	}
	tensors := p.Get("precision").Get("tensors")
	for i := range tensors.Length() {
		tc := tensors.Index(i)
		if tc.Get("name").String() == "module/Embeddings_en" && !onStage[tc.Get("backend").String()] {
			t.Errorf("the embeddings' backend %q is no stage's", tc.Get("backend"))
		}
	}
}
