package uselite

import (
	"context"
	"fmt"
	"testing"

	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestSensitivityPlans: the shipped sensitivity (testdata/sensitivity.json, measured on
// testdata/calibration.json) covers this model's matrices, and the plans made from it hold on
// sentences it was not measured on (testdata/sentences.json): the mixed plan keeps every
// sentence at cosine ≥ 0.99 to fp32 with fewer bytes than int8, and under the uniform int4
// plan's bytes it beats uniform int4's worst sentence.
func TestSensitivityPlans(t *testing.T) {
	nm, err := OpenNative(modelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	sens := Sensitivity()
	if sens == nil {
		t.Fatal("testdata/sensitivity.json does not parse")
	}
	tensors := nm.Tensors()
	for _, tn := range tensors {
		ts := sens.Of(tn.Name)
		if tn.Matrix && (ts == nil || fmt.Sprint(ts.Shape) != fmt.Sprint(tn.Shape) || len(ts.Formats) != len(plan.Candidates)) {
			t.Errorf("%s %v: not measured (or not for every candidate): %+v (go run ./tools/sensitivity)", tn.Name, tn.Shape, ts)
		}
	}
	s := readSentences(t, "sentences.json")
	texts := make([]string, len(s))
	for i := range s {
		texts[i] = s[i].Text
	}
	ctx := context.Background()
	ref, err := nm.Reference(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	measure := func(name string, r plan.Request) (worst float64, bytes int64) {
		t.Helper()
		r.Tensors, r.Sensitivity = tensors, sens
		p, err := plan.Make(r)
		if err != nil {
			t.Fatal(err)
		}
		formats := map[string]quant.Format{}
		for _, c := range p.Tensors {
			formats[c.Name] = c.Format
		}
		loss, held, err := nm.Losses(ctx, formats, texts, ref)
		if err != nil {
			t.Fatal(err)
		}
		if held != p.Bytes {
			t.Errorf("%s: plan says %d bytes, the cpu backend holds %d", name, p.Bytes, held)
		}
		for _, l := range loss {
			worst = max(worst, l)
		}
		pred := "none"
		if p.Predicted != nil {
			pred = fmt.Sprintf("%.4f", 1-p.Predicted.WorstLoss)
		}
		t.Logf("%-12s %8d bytes (%.1f %% less than f32): worst cosine %.4f, predicted %s", name, held, p.ReductionPct(), 1-worst, pred)
		return worst, held
	}
	_, quality := measure("quality", plan.Request{Policy: plan.Policies["quality"]})
	int4Worst, int4 := measure("int4", plan.Request{Policy: plan.Policies["int4"]})
	worst, bytes := measure("mixed", plan.Request{Policy: plan.Policies["mixed"]})
	if 1-worst < 0.99 || bytes >= quality {
		t.Errorf("mixed: worst cosine %.4f (want ≥ 0.99), %d bytes (int8: %d)", 1-worst, bytes, quality)
	}
	worst, bytes = measure("mixed@int4", plan.Request{Policy: plan.Policies["mixed"], Budget: int4})
	if worst >= int4Worst || bytes > int4 {
		t.Errorf("mixed under int4's %d bytes: worst cosine %.4f with %d bytes, uniform int4 %.4f", int4, 1-worst, bytes, 1-int4Worst)
	}
}
