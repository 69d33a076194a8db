package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/plan"
)

// tinyDecoder writes tools/mkmodel's llama-tiny (2 layers, f32, seed 1) and opens it.
func tinyDecoder(t *testing.T) *decoder {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "llama-tiny.gguf")
	out, err := exec.Command("go", "run", "github.com/nibble-ml/nibble/tools/mkmodel", "-llm", "-shape", "llama-tiny", "-layers", "2", "-format", "gguf-f32", "-seed", "1", "-o", file).CombinedOutput()
	if err != nil {
		t.Fatalf("mkmodel: %v\n%s", err, out)
	}
	d, err := openDecoder(file)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecoderMixedBeatsInt4 measures llama-tiny's sensitivity on part of the calibration texts
// and checks the README's decoder claim on part of the evaluation texts: the sensitivity-driven
// plan held to uniform int4's bytes is no larger and has a lower KL divergence from fp32 and a
// higher top-1 agreement; and the plan's bytes are what the cpu backend holds.
func TestDecoderMixedBeatsInt4(t *testing.T) {
	d := tinyDecoder(t)
	calib, err := uselite.ReadTexts("../../wasm/model/uselite/testdata/calibration.json")
	if err != nil {
		t.Fatal(err)
	}
	eval, err := uselite.ReadTexts("../../wasm/model/uselite/testdata/sentences.json")
	if err != nil {
		t.Fatal(err)
	}
	cands, err := parseFormats("q2-asym-g16-f16,q4-sym-g32-f16,q8-sym-g32-f16")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sens, err := d.sensitivity(ctx, "llama-tiny", d.prompts(calib[:12], 32), cands, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sens.Tensors) != 16 {
		t.Fatalf("%d tensors measured, want llama-tiny's 16 matrices", len(sens.Tensors))
	}
	// int8 costs every matrix less than int4 does, and int4 less than int2.
	for _, ts := range sens.Tensors {
		if !(ts.Formats[2].Mean < ts.Formats[1].Mean && ts.Formats[1].Mean < ts.Formats[0].Mean) {
			t.Errorf("%s: losses %v, %v, %v are not ordered by bits", ts.Name, ts.Formats[0].Mean, ts.Formats[1].Mean, ts.Formats[2].Mean)
		}
	}
	rows, err := d.evaluate(ctx, d.prompts(eval[:12], 32), sens, []string{"int4", "mixed@int4"}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	int4, mixed := rows[0], rows[1]
	t.Logf("int4: %d B, KL %.4f, top-1 %.3f; mixed: %d B, KL %.4f, top-1 %.3f", int4.Bytes, int4.MeanKL, int4.Top1, mixed.Bytes, mixed.MeanKL, mixed.Top1)
	if mixed.Bytes > int4.Bytes || mixed.MeanKL >= int4.MeanKL || mixed.Top1 <= int4.Top1 {
		t.Errorf("mixed at int4's bytes (%d B, KL %.4f, top-1 %.3f) does not beat int4 (%d B, KL %.4f, top-1 %.3f)",
			mixed.Bytes, mixed.MeanKL, mixed.Top1, int4.Bytes, int4.MeanKL, int4.Top1)
	}
	// The planner's table names every decoder matrix with a role from its GGUF name.
	for _, tn := range d.tensors() {
		if tn.Matrix && tn.Role == plan.RoleOther {
			t.Errorf("%s: no role", tn.Name)
		}
	}
}
