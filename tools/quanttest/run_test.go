//go:build !(js && wasm)

package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

func TestParseRun(t *testing.T) {
	f, err := parseRun(strings.Fields("-bits 2,4,8,16,32 -group-size 32,128,0 -scheme asym"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"q2-asym-g32", "q2-asym-g128", "q2-asym-pc", "q4-asym-g32", "q4-asym-g128", "q4-asym-pc",
		"q8-asym-g32", "q8-asym-g128", "q8-asym-pc", "f16", "f32"}
	if got := f.formats(); !slices.Equal(got, want) {
		t.Errorf("formats %v, want %v", got, want)
	}
	for _, name := range f.formats() {
		if _, err := engine.ParseFormat(name); err != nil {
			t.Errorf("the engine refuses %s: %v", name, err)
		}
	}
	for _, bad := range []string{"-bits 3", "-scheme x", "-browser safari", "-platform tpu", "-compare onnx",
		"-runs 0", "-texts 1", "-memory-limit lots", "-policy nope", "-policy mixed,", "-tokens 0", "extra"} {
		if _, err := parseRun(strings.Fields(bad), io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if f, err := parseRun(strings.Fields("-policy balanced,mixed -mixed-precision"), io.Discard); err != nil || !slices.Equal(f.policies, []string{"balanced", "mixed"}) {
		t.Errorf("-policy balanced,mixed -mixed-precision: %v %v", f, err)
	}
	if f, err := parseRun([]string{"-mixed-precision"}, io.Discard); err != nil || !slices.Equal(f.policies, []string{"mixed"}) {
		t.Errorf("-mixed-precision: %v %v", f, err)
	}
	if f, err := parseRun([]string{"-memory-limit", "1.5MiB"}, io.Discard); err != nil || f.memoryLimit != 3<<19 {
		t.Errorf("-memory-limit 1.5MiB: %v %v", f, err)
	}
}

// results are two platforms of a sweep and an error row, as a page reports them.
func results() []quanteval.Result {
	rs := []quanteval.Result{{Runtime: "nibble", Platform: "error-platform", Error: "webnn is not available"}}
	for _, p := range []string{"webgpu", "cpu"} {
		for i, f := range []string{"f32", "q8-sym-g32", "q4-sym-g32"} {
			r := quanteval.Result{Model: "use-lite", Browser: "chromium", Runtime: "nibble", Platform: p, Format: f,
				F32Bytes: 28 << 20, WeightBytes: int64(28<<20) >> (2 * i), LatencyMedianMS: float64(10 + i), Runs: 3,
				Plan: []quanteval.Group{{Format: f, Tensors: 11, Bytes: 1 << 20}}}
			if i > 0 {
				r.Reference, r.CosineMean, r.RankingAgreement = "nibble f32 on "+p, 1-0.01*float64(i*i), 1
			}
			rs = append(rs, r)
		}
	}
	return rs
}

func TestTableAndPlot(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, results())
	out := b.String()
	rs := append(results(), quanteval.Result{Runtime: "onnxruntime-web 1.30.0", Platform: "cpu", NotRun: "no ONNX export"})
	if code := exitCode(rs[1:]); code != 0 { // past the error row
		t.Errorf("a row not run by design fails the run: exit %d", code)
	}
	b.Reset()
	writeTable(&b, rs)
	out = b.String()
	for _, want := range []string{"error: error-platform nibble", "Trade-off on webgpu", "* q4-sym-g32", "11×q8-sym-g32", "not run (below)", "not run: cpu onnxruntime-web 1.30.0: no ONNX export"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	svgText := svg(results()[1:])
	d := xml.NewDecoder(strings.NewReader(svgText))
	circles := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "circle" {
			circles++
		}
	}
	if want := 2*6 + 2; circles != want { // two panels × six points, two legend dots
		t.Errorf("%d circles, want %d", circles, want)
	}
}

func TestDecoderTable(t *testing.T) {
	rs := []quanteval.Result{
		{Model: "llama-synthetic:llama-tiny", Runtime: "nibble", Platform: "cpu", Format: "f32", F32Bytes: 705 << 10, WeightBytes: 705 << 10,
			PromptTokens: 34, GeneratedTokens: 16, PrefillTokPerS: 170, DecodeTokPerS: 85, Runs: 2},
		{Model: "llama-synthetic:llama-tiny", Runtime: "nibble", Platform: "cpu", Format: "policy:mixed", Policy: "mixed", PlanPolicy: "mixed",
			F32Bytes: 705 << 10, WeightBytes: 163 << 10, PromptTokens: 34, GeneratedTokens: 16, PrefillTokPerS: 400, DecodeTokPerS: 90,
			Reference: "nibble f32 on cpu", Top1Agreement: 0.875, Top1Positions: 16, Runs: 2,
			Plan: []quanteval.Group{{Format: "q8-sym-g32-f32", Tensors: 10, Bytes: 119808}}},
	}
	var b bytes.Buffer
	writeTable(&b, rs)
	out := b.String()
	for _, want := range []string{"prefill tok/s", "88% of 16", "34 prompt tokens", "(plan mixed)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Trade-off") {
		t.Errorf("a decoder's table has the embedding trade-off:\n%s", out)
	}
}

// The ONNX export of the real USE-lite (make deps installs it): a model per format, the 4-bit
// one holding every weight matrix as MatMulNBits (the embedding table as GatherBlockQuantized)
// at about a sixth of the f32 bytes, every Reshape target a constant.
func TestExportUSELite(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, defaultModel)
	if _, err := os.Stat(filepath.Join(dir, "model.json")); err != nil {
		t.Skip("USE-lite is not installed (make deps)")
	}
	exports, maxLength, err := exportUSELite(dir, []string{"f32", "q8-sym-g32", "q4-sym-g32"})
	if err != nil {
		t.Fatal(err)
	}
	if len(exports) != 2 || exports[0].format != "f32" || exports[1].format != "q4-sym-g32" || maxLength != 128 {
		t.Fatalf("exports %d, max length %d", len(exports), maxLength)
	}
	count := func(m *onnx.Model, op string) int {
		n := 0
		for _, node := range m.Nodes {
			if node.Op == op {
				n++
			}
		}
		return n
	}
	f32, q4 := exports[0].model, exports[1].model
	if count(f32, "MatMul") != 14 || count(f32, "MatMulNBits") != 0 || count(q4, "MatMulNBits") != 10 || count(q4, "GatherBlockQuantized") != 1 || count(q4, "Concat") != 0 {
		t.Errorf("ops: f32 %s; q4 %s", opsSummary(f32), opsSummary(q4))
	}
	if fb, qb := f32.WeightBytes(), q4.WeightBytes(); fb < 27e6 || qb > fb/5 {
		t.Errorf("weight bytes: f32 %d, q4 %d", fb, qb)
	}
	for _, e := range exports {
		m, err := onnx.Parse(e.bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := onnx.Check(m); err != nil {
			t.Errorf("%s: %v", e.format, err)
		}
	}
}
