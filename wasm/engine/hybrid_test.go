//go:build !(js && wasm)

package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// renamed is the cpu backend under another name, each run delayed: natively the stand-in for
// WebGPU and WebNN, made slower or faster than each other.
type renamed struct {
	*cpu.Backend
	name  string
	delay time.Duration
}

func (r renamed) Name() string { return r.name }

func (r renamed) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	p, err := r.Backend.Compile(g, ws)
	return delayed{p, r.delay}, err
}

type delayed struct {
	backend.Program
	d time.Duration
}

func (d delayed) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	time.Sleep(d.d)
	return d.Program.Run(ctx, in)
}

// holdsLayer0 says whether g computes USE-lite's layer 0.
func holdsLayer0(g *graph.Graph) bool {
	for _, n := range g.Nodes {
		if strings.HasPrefix(n.Label, "layer0/") {
			return true
		}
	}
	return false
}

// TestHybridPlacesStages: a hybrid load probes every stage on every member, places each, says
// where in the plan and the notes, and embeds as the cpu does. A wrong kernel in layer 0 on
// "webnn" (the test hook) moves that stage elsewhere; pinned there by an override, the load
// fails.
func TestHybridPlacesStages(t *testing.T) {
	url, _ := useLiteServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	hybridMembers = func() []backend.Backend {
		// webnn is the fastest everywhere (by far more than this shared machine's noise), and
		// wrong in layer 0.
		slow := 250 * time.Millisecond
		return []backend.Backend{renamed{cpu.New(), "webgpu", slow}, renamed{cpu.New(), "webnn", 0}, renamed{cpu.New(), "cpu", slow}}
	}
	hybridFault = func(target string, g *graph.Graph) bool { return target == "webnn" && holdsLayer0(g) }
	defer func() { hybridMembers, hybridFault = nil, nil }()
	texts := []string{"How old are you?", "The cat sat on the mat.", "A longer sentence, to make a second length bucket of its own here."}
	off := false

	ref, err := Load(ctx, url, Options{Backend: "cpu", Policy: "quality", Cache: &off})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	want, err := ref.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}

	m, err := Load(ctx, url, Options{Backend: BackendHybrid, Policy: "quality", Cache: &off})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	p := m.Plan()
	pl := p.Placement
	if pl == nil || len(pl.Stages) != 4 {
		t.Fatalf("no placement in the plan: %+v", p)
	}
	t.Log(pl.Table())
	l0 := pl.Stages[1]
	if l0.Name != "layer 0" || l0.Backend == "webnn" || !strings.Contains(l0.Moved, "webnn") {
		t.Errorf("layer 0 was not moved off the wrong webnn: %+v", l0)
	}
	for _, s := range pl.Stages {
		if len(s.Probe) != 3 {
			t.Errorf("stage %s probed on %d backends, want 3", s.Name, len(s.Probe))
		}
	}
	c, ok := p.Lookup("module/Encoder_en/KonaTransformer/Encode/Layer_0/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0")
	if !ok || c.Backend != l0.Backend || !strings.Contains(c.Reason, "hybrid: stage layer 0") {
		t.Errorf("layer 0's qkv in the plan: %+v", c)
	}
	if notes := strings.Join(m.Notes(), "; "); !strings.Contains(notes, "hybrid: embed on") || !strings.Contains(notes, "moved to") {
		t.Errorf("notes: %s", notes)
	}
	// Each weight keeps one copy, where its stage runs (natively every member holds the
	// cpu's bytes); the others were released after placement.
	if after, one := m.Memory().ResidentBytes, ref.Memory().ResidentBytes; after != one {
		t.Errorf("after placement the model holds %d bytes, one copy is %d", after, one)
	}
	got, err := m.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if d := 1 - quanteval.Cosine(got[i], want[i]); d > 1e-6 {
			t.Errorf("%q: hybrid differs from cpu (cosine distance %.3g)", texts[i], d)
		}
	}
	if cr := m.Plan().Placement; cr.Crossings > 0 && (cr.Crossed == 0 || cr.CrossedBytes == 0) {
		t.Errorf("%d crossings per pass, none counted: %+v", cr.Crossings, cr)
	}

	// Layer 0 pinned to the backend whose kernel is wrong: the load fails and says why.
	hybridMembers = func() []backend.Backend { return []backend.Backend{renamed{cpu.New(), "webnn", 0}, cpu.New()} }
	m2, err := Load(ctx, url, Options{Backend: BackendHybrid, Policy: "quality", Cache: &off, Overrides: "*Layer_0/*=@webnn"})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Release()
	err = m2.Wait(ctx)
	if !errors.Is(err, ErrGuard) || !strings.Contains(err.Error(), "pinned to webnn") {
		t.Fatalf("layer 0 pinned to a wrong backend: %v", err)
	}
	if _, err := m2.Embed(ctx, texts); !errors.Is(err, ErrGuard) {
		t.Errorf("embed after a failed placement: %v", err)
	}
}
