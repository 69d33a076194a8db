package site

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// wellFormed parses s as XML: a browser drops an SVG that is not.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("%v in %.200s", err, s)
		}
	}
}

func TestAgreementAndHeatmap(t *testing.T) {
	ref := [][]float32{{1, 0}, {0, 1}, {1, 1}}
	got := [][]float32{{1, 0.1}, {0, 1}, {1, 1}}
	mean, worst, diff := Agreement(ref, got)
	if want := 1 / math.Sqrt(1.01); math.Abs(worst-want) > 1e-7 || mean <= worst || mean >= 1 || diff <= 0 {
		t.Errorf("agreement %v %v %v", mean, worst, diff)
	}
	if s := Similarity(ref); math.Abs(s[0][2]-math.Sqrt(0.5)) > 1e-12 || s[1][1] != 1 {
		t.Errorf("similarity %v", s)
	}
	svg := HeatmapSVG("h", `fp32 & "q4"`, Similarity(ref))
	wellFormed(t, svg)
	if strings.Count(svg, "data-v=") != 9 || !strings.Contains(svg, ">0.707<") {
		t.Errorf("heatmap cells: %s", svg)
	}
}

func TestBarsAndPlan(t *testing.T) {
	wellFormed(t, BarsSVG("b", "memory", []Bar{{"float32", 4, "4 B", "ref"}, {"held <q4>", 1, "1 B", ""}}))
	q4, _ := plan.ParseFormat("q4-sym-g32")
	p := &plan.Plan{Policy: "mixed", Tensors: []plan.Choice{
		{Name: "a/b<0>", Format: q4, Reason: "sensitive & small"}, {Name: "c", Format: quant.Format{Bits: 32}}}}
	svg := PlanSVG("p", p)
	wellFormed(t, svg)
	if !strings.Contains(svg, `data-bits="4"`) || !strings.Contains(svg, "4-bit ×1") || !strings.Contains(svg, "32-bit ×1") {
		t.Errorf("plan: %s", svg)
	}
}

func TestLatencySVG(t *testing.T) {
	bars := LatencyBars(map[string]Latency{LatencyKey("cpu", "auto"): {MS: 40, Texts: 4}, LatencyKey("webgpu", "policy:q4<&>"): {MS: 90, Texts: 4}})
	if len(bars) != 2 || bars[0].Label != "webgpu × policy:q4<&>" || bars[1].Text != "40.0 ms, 4 texts" {
		t.Fatalf("bars: %+v", bars)
	}
	s := LatencySVG("lat", bars)
	wellFormed(t, s)
	if !strings.Contains(s, `id="lat"`) || !strings.Contains(s, "cpu × auto") {
		t.Errorf("latency svg: %s", s)
	}
}
