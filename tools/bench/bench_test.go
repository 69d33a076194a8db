//go:build !(js && wasm)

package main

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/quant"
)

func TestParseShapes(t *testing.T) {
	s, err := ParseShapes("1x4096x4096, 128x4096x4096")
	if err != nil || !slices.Equal(s, []Shape{{1, 4096, 4096}, {128, 4096, 4096}}) {
		t.Fatalf("got %v, %v", s, err)
	}
	for _, bad := range []string{"", "1x2", "1x0x3", "ax2x3"} {
		if _, err := ParseShapes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLinesCompare(t *testing.T) {
	c, err := NewCase(Shape{2, 64, 96}, quant.Q4, 1)
	if err != nil {
		t.Fatal(err)
	}
	exact := slices.Clone(c.Ref)
	off := slices.Clone(c.Ref)
	off[0] += 1
	res := map[string]*Result{
		key("nibble-webnn", c.Name): {MS: []float64{2, 1, 3}, Output: exact},
		key("ort-webnn", c.Name):    {MS: []float64{4, 4, 4}, Output: off},
	}
	lines := Lines([]*Case{c}, []string{"nibble-webnn", "ort-webnn", "ort-wasm"}, res, nil)
	if l := lines[0]; l.RelRMS != 0 || l.MS != 2 || l.Speedup != 2 || l.Peer != "ort-webnn" || math.Abs(l.PeerMax-1) > 1e-6 {
		t.Errorf("nibble line %+v", l)
	}
	if l := lines[1]; math.Abs(l.MaxAbs-1) > 1e-6 || l.Peer != "" {
		t.Errorf("ort line %+v", l)
	}
	if l := lines[2]; l.Error == "" {
		t.Errorf("missing runtime reported no error: %+v", l)
	}
}

// Two rounds of one runtime pool their timed runs and keep the newest output; pages post the
// output before the result.
func TestServerPoolsRounds(t *testing.T) {
	c, err := NewCase(Shape{1, 32, 64}, quant.Q4, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cases: map[string]*Case{c.Name: c}, results: map[string]*Result{}, done: make(chan doneMsg, 1), logf: t.Logf}
	ts := httptest.NewServer(s.handler())
	defer ts.Close()
	postTo := func(path string, body []byte) {
		t.Helper()
		r, err := http.Post(ts.URL+path, "application/octet-stream", bytes.NewReader(body))
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %v %v", path, err, r.Status)
		}
		r.Body.Close()
	}
	for round, v := range []float32{1, 2} {
		out := make([]float32, 32)
		out[0] = v
		postTo("/output?runtime=ort-wasm&case="+c.Name, onnx.Float32Bytes(out))
		postTo("/result", []byte(fmt.Sprintf(`{"runtime":"ort-wasm","case":%q,"first_ms":%d,"ms":[%d,%d]}`, c.Name, 10*(round+1), round, round)))
	}
	r := s.results[key("ort-wasm", c.Name)]
	if !slices.Equal(r.MS, []float64{0, 0, 1, 1}) || r.FirstMS != 10 || r.Output[0] != 2 {
		t.Fatalf("pooled result: ms %v first %v output[0] %v", r.MS, r.FirstMS, r.Output[0])
	}
	// A /done from a page that is not awaited is dropped.
	s.expect("ort-webgpu")
	postTo("/done", []byte(`{"runtime":"ort-wasm"}`))
	postTo("/done", []byte(`{"runtime":"ort-webgpu"}`))
	if d := <-s.done; d.Runtime != "ort-webgpu" {
		t.Fatalf("done from %s", d.Runtime)
	}
}
