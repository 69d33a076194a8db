package uselite

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// wrongLayer0 compiles like cpu, but a graph that holds layer 0 puts out NaN: a kernel in that
// layer that wrote garbage.
type wrongLayer0 struct{ *cpu.Backend }

func (w wrongLayer0) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	p, err := w.Backend.Compile(g, ws)
	if err != nil {
		return p, err
	}
	for _, n := range g.Nodes {
		if strings.HasPrefix(n.Label, "layer0/") {
			return poisoned{p}, nil
		}
	}
	return p, nil
}

type poisoned struct{ backend.Program }

func (p poisoned) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	out, err := p.Program.Run(ctx, in)
	for i := range out {
		out[i].F32[len(out[i].F32)/2] = float32(math.NaN())
	}
	return out, err
}

// TestPlacedStagesEqualWhole: the probe measures every stage on every target and finds the
// wrong one (in the stage that makes the error, and in the whole model), the placement keeps it
// off that target, and the encoder run stage by stage
// across targets gives the whole graph's embeddings, counting each crossing.
func TestPlacedStagesEqualWhole(t *testing.T) {
	l := loadNative(t, matrices(quant.Q4))
	ctx := context.Background()
	texts := []string{"How old are you?", "The cat sat on the mat.", ""}
	whole, err := l.enc.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	ref := Target{Name: "cpu", Backend: cpu.New(), Weights: l.enc.Weights}
	bad := Target{Name: "wrong", Backend: wrongLayer0{cpu.New()}, Weights: l.enc.Weights}
	pl, err := l.enc.ProbeStages(ctx, []Target{bad, ref}, "cpu", 1, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	pl.Bound = 1e-2
	if err := plan.Place(pl); err != nil {
		t.Fatal(err)
	}
	t.Log(pl.Table())
	if n := len(pl.Stages); n != l.enc.Config.NumStages() || len(pl.Whole) != 1 { // the reference runs no whole model
		t.Fatalf("%d stages, %d whole probes", n, len(pl.Whole))
	}
	for i, st := range pl.Stages {
		for _, p := range st.Probe {
			if wrong := p.Backend == "wrong" && i == 1; wrong != (p.RelErr >= 1e29) || p.Error != "" {
				t.Errorf("stage %s on %s: error %g %q", st.Name, p.Backend, p.RelErr, p.Error)
			}
		}
	}
	if l0 := pl.Stages[1]; l0.Name != "layer 0" || l0.Backend != "cpu" {
		t.Errorf("layer 0 should run on the correct backend: %+v", l0)
	}
	for _, p := range pl.Whole {
		if (p.Backend == "wrong") != (p.RelErr >= 1e29) {
			t.Errorf("the whole model on %s: error %g", p.Backend, p.RelErr)
		}
	}
	// Alternate the targets stage by stage: every boundary is a crossing.
	targets := make([]Target, l.enc.Config.NumStages())
	for i := range targets {
		targets[i] = ref
		if i%2 == 0 {
			targets[i] = Target{Name: "other", Backend: cpu.New(), Weights: l.enc.Weights}
		}
	}
	if err := l.enc.SetPlacement(targets); err != nil {
		t.Fatal(err)
	}
	got, err := l.enc.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range whole {
		if d := 1 - quanteval.Cosine(whole[i], got[i]); d > 1e-6 {
			t.Errorf("%q: placed differs from whole (cosine distance %.3g)", texts[i], d)
		}
	}
	c := l.enc.Crossings()
	// One pass (the texts share a length bucket); the stream is [B, T, 256] then [B, T, 512].
	b := l.enc.Tokenize(texts)
	wantBytes := int64(4 * b.B * b.T * (256 + 512 + 512))
	if c.Count != len(targets)-1 || c.Bytes != wantBytes {
		t.Errorf("crossings %+v, want %d of %d bytes", c, len(targets)-1, wantBytes)
	}
	// One target for consecutive stages: one graph, no crossing.
	for i := range targets {
		targets[i] = ref
	}
	if err := l.enc.SetPlacement(targets); err != nil {
		t.Fatal(err)
	}
	if _, err := l.enc.Embed(ctx, texts); err != nil {
		t.Fatal(err)
	}
	if c2 := l.enc.Crossings(); c2 != c {
		t.Errorf("one target crossed: %+v → %+v", c, c2)
	}
	if err := l.enc.SetPlacement(targets[1:]); err == nil {
		t.Error("a placement of the wrong length was accepted")
	}
}
