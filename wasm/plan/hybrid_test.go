package plan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// stages builds a placement from per-stage probe times: ms[stage][backend], in backends order;
// a negative time is a failed run.
func stages(backends []string, ms [][]float64, relErr map[[2]int]float64) *Placement {
	pl := &Placement{Reference: "cpu", Bound: 1e-2}
	for i, row := range ms {
		s := Stage{Name: []string{"embed", "layer 0", "layer 1", "head"}[i]}
		for j, t := range row {
			p := Probe{Backend: backends[j], MS: t, RelErr: relErr[[2]int{i, j}]}
			if t < 0 {
				p = Probe{Backend: backends[j], Error: "compile: no int4 weights"}
			}
			s.Probe = append(s.Probe, p)
		}
		pl.Stages = append(pl.Stages, s)
	}
	return pl
}

func placed(pl *Placement) []string {
	var out []string
	for _, s := range pl.Stages {
		out = append(out, s.Backend)
	}
	return out
}

func TestPlaceFastestPerStage(t *testing.T) {
	bk := []string{"webgpu", "webnn", "cpu"}
	pl := stages(bk, [][]float64{
		{2, 5, 1},    // embed: a gather, cheapest on the cpu, which is only the reference
		{40, 8, 300}, // layers: webnn's int8 path
		{50, 9, 280}, //
		{3, -1, 4},   // head: webnn failed to compile it
	}, nil)
	pl.Whole = []Probe{{Backend: "webgpu", MS: 90}, {Backend: "webnn", MS: 30}, {Backend: "cpu", MS: 600}}
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(placed(pl), ","), "webgpu,webnn,webnn,webgpu"; got != want {
		t.Fatalf("placed %s, want %s\n%s", got, want, pl.Table())
	}
	if pl.Crossings != 2 {
		t.Errorf("crossings %d, want 2 (webgpu→webnn, webnn→webgpu)", pl.Crossings)
	}
	if pl.SplitMS != 2+8+9+3 || pl.ChosenMS != pl.SplitMS {
		t.Errorf("split %g chosen %g, want 22 both", pl.SplitMS, pl.ChosenMS)
	}
	if got := strings.Join(pl.Backends(), ","); got != "webgpu,webnn" {
		t.Errorf("Backends %s", got)
	}
}

// A single backend running the whole model beats a split that pays a round trip per stage.
func TestPlaceWholeWins(t *testing.T) {
	bk := []string{"webgpu", "webnn"}
	pl := stages(bk, [][]float64{{2, 3}, {40, 8}, {50, 9}, {3, 4}}, nil)
	pl.Whole = []Probe{{Backend: "webgpu", MS: 80}, {Backend: "webnn", MS: 15}}
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(placed(pl), ","); got != "webnn,webnn,webnn,webnn" {
		t.Fatalf("placed %s\n%s", got, pl.Table())
	}
	if pl.Crossings != 0 || pl.ChosenMS != 15 || pl.SplitMS != 2+8+9+3 {
		t.Errorf("crossings %d chosen %g split %g", pl.Crossings, pl.ChosenMS, pl.SplitMS)
	}
	if !strings.Contains(pl.Stages[0].Reason, "whole model on webnn") || len(pl.Notes) == 0 {
		t.Errorf("no reason for the single backend: %q %q", pl.Stages[0].Reason, pl.Notes)
	}
	// A split predicted only a little faster (22 against 23) is not worth its crossings.
	pl = stages(bk, [][]float64{{2, 3}, {40, 8}, {50, 9}, {3, 4}}, nil)
	pl.Whole = []Probe{{Backend: "webnn", MS: 23}}
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(placed(pl), ","); got != "webnn,webnn,webnn,webnn" {
		t.Fatalf("placed %s within the margin\n%s", got, pl.Table())
	}
	// A whole run that is wrong is not a candidate.
	pl = stages(bk, [][]float64{{2, 3}, {40, 8}, {50, 9}, {3, 4}}, nil)
	pl.Whole = []Probe{{Backend: "webgpu", MS: 80}, {Backend: "webnn", MS: 15, RelErr: 0.5}}
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(placed(pl), ","); got != "webgpu,webnn,webnn,webgpu" {
		t.Fatalf("placed %s\n%s", got, pl.Table())
	}
}

// The guard: a stage whose fastest backend is wrong moves to the next, and says so; pinned to
// the wrong backend, the placement fails.
func TestPlaceGuardMovesStage(t *testing.T) {
	bk := []string{"webgpu", "webnn", "cpu"}
	times := [][]float64{{2, 3, 9}, {40, 8, 300}, {50, 9, 280}, {3, 4, 9}}
	bad := map[[2]int]float64{{1, 1}: 0.8} // layer 0 on webnn is off by order one
	pl := stages(bk, times, bad)
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	s := pl.Stages[1]
	if s.Backend != "webgpu" || !strings.Contains(s.Moved, "webnn") || !strings.Contains(s.Reason, "moved off webnn") {
		t.Fatalf("layer 0: %+v", s)
	}
	if pl.Stages[2].Backend != "webnn" || pl.Stages[2].Moved != "" {
		t.Errorf("layer 1 should stay on webnn: %+v", pl.Stages[2])
	}
	pl = stages(bk, times, bad)
	pl.Stages[1].Pinned = "webnn"
	err := Place(pl)
	if !errors.Is(err, ErrPlacement) || !strings.Contains(err.Error(), "pinned to webnn") {
		t.Fatalf("pinned to a wrong backend: %v", err)
	}
	// Pinned to a slower correct backend: it stays there, and the whole-model shortcut is off.
	pl = stages(bk, times, nil)
	pl.Stages[2].Pinned = "webgpu"
	pl.Whole = []Probe{{Backend: "webnn", MS: 1}}
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(placed(pl), ","); got != "webgpu,webnn,webgpu,webgpu" {
		t.Fatalf("placed %s\n%s", got, pl.Table())
	}
	// Every accelerator wrong or failed: the stage falls back to the reference, and says so.
	pl = stages(bk, [][]float64{{2, -1, 9}}, map[[2]int]float64{{0, 0}: 1})
	if err := Place(pl); err != nil || pl.Stages[0].Backend != "cpu" || !strings.Contains(pl.Stages[0].Reason, "no other backend") {
		t.Fatalf("fallback to the reference: %v %+v", err, pl.Stages[0])
	}
	// Every backend wrong or failed: the load cannot place the stage.
	pl = stages(bk, [][]float64{{2, -1, 9}}, map[[2]int]float64{{0, 0}: 1, {0, 2}: 1})
	if err := Place(pl); !errors.Is(err, ErrPlacement) {
		t.Fatalf("no correct backend: %v", err)
	}
}

func TestPlacementJSONAndTable(t *testing.T) {
	pl := stages([]string{"webgpu", "webnn"}, [][]float64{{2, 3}, {40, 8}}, nil)
	if err := Place(pl); err != nil {
		t.Fatal(err)
	}
	p := &Plan{Policy: "quality", Placement: pl}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Placement == nil || back.Placement.Stages[1].Backend != "webnn" || back.Placement.Crossings != 1 {
		t.Fatalf("round trip: %s", raw)
	}
	if tab := p.Table(); !strings.Contains(tab, "layer 0  → webnn") || !strings.Contains(tab, "1 crossing(s)") {
		t.Errorf("table:\n%s", tab)
	}
}

// An override that names only a backend keeps the policy's format and pins the tensor there.
func TestOverrideBackendOnlyPins(t *testing.T) {
	ov, err := ParseOverrides("blk.0.*=@webnn")
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := PolicyByName("quality")
	p, err := Make(Request{Policy: pol, Overrides: ov, Backends: []Caps{{Backend: "webgpu"}, {Backend: "webnn"}},
		Tensors: []Tensor{NewTensor("blk.0.ffn_up.weight", []int{64, 64}), NewTensor("blk.1.ffn_up.weight", []int{64, 64})}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Tensors[0], p.Tensors[1]
	if !a.Pinned || a.Backend != "webnn" || a.Format.Bits != 8 || b.Pinned || b.Backend != "webgpu" {
		t.Fatalf("pinned %+v, free %+v", a, b)
	}
}
