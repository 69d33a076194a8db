package llama

import (
	"bytes"
	"context"
	"io"
	"math"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// hostRows is the token table as a RowReader, as the nn backend's weights are: it makes the cpu
// run the host-embedding, separate-head path.
type hostRows struct {
	backend.Weight
	table []float32
	dim   int
}

func (h hostRows) Rows(ids []int32) ([]float32, error) {
	var out []float32
	for _, id := range ids {
		out = append(out, h.table[int(id)*h.dim:(int(id)+1)*h.dim]...)
	}
	return out, nil
}

// TestHostEmbedSplitHead runs a prompt (every row's logits) and greedy decode steps on the cpu
// twice: the token table gathered in one graph with the head, and (the table a RowReader) the
// rows looked up on the host with the head its own graph. The two compute the same products in
// the same order: the logits must be equal.
func TestHostEmbedSplitHead(t *testing.T) {
	raw := model(t, "spm-q4_0")
	f, err := ReadGGUF(bytes.NewReader(raw), cpu.New())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	g, err := format.NewGGUF(bytes.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	var table []float32
	for table == nil {
		ti, err := g.Next()
		if err == io.EOF {
			t.Fatal("no token table")
		}
		if err != nil {
			t.Fatal(err)
		}
		if ti.Name == TokenEmbd {
			q, err := ti.Quant()
			if err != nil {
				t.Fatal(err)
			}
			table = quant.Dequantize(q)
		}
	}
	host := backend.WeightMap{}
	for k, w := range f.Weights {
		host[k] = w
	}
	host[TokenEmbd] = hostRows{f.Weights[TokenEmbd], table, f.Config.Hidden}
	ids := append([]int32{f.Tokenizer.BOS}, f.Tokenizer.Encode("The quick brown fox", false)...)
	run := func(ws backend.Weights) [][]float32 {
		m, err := New(f.Config, cpu.New(), ws, Options{Context: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Release()
		out, err := m.Forward(context.Background(), ids, true)
		if err != nil {
			t.Fatal(err)
		}
		if (m.embed != nil) != (ws.(backend.WeightMap)[TokenEmbd] != f.Weights[TokenEmbd]) {
			t.Fatal("the host path was not taken where the table is a RowReader, or taken where not")
		}
		z, _ := NewSampler(Sampling{})
		last := out[len(out)-1]
		for range 4 {
			lg, err := m.Forward(context.Background(), []int32{z.Next(last)}, false)
			if err != nil {
				t.Fatal(err)
			}
			last = lg[0]
			out = append(out, last)
		}
		return out
	}
	want, got := run(f.Weights), run(host)
	for p := range want {
		for i := range want[p] {
			if math.Float32bits(want[p][i]) != math.Float32bits(got[p][i]) {
				t.Fatalf("row %d logit %d: host path %g, one graph %g", p, i, got[p][i], want[p][i])
			}
		}
	}
}

// TestCalibrate checks that one calibration covers every Linear of the decoder (each layer's
// seven and the head), with finite, non-empty intervals.
func TestCalibrate(t *testing.T) {
	f, err := ReadGGUF(bytes.NewReader(model(t, "spm-q4_0")), cpu.New())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	ids := CalibrationIDs(f.Tokenizer, f.Config)
	cal, err := Calibrate(context.Background(), f.Config, cpu.New(), f.Weights, ids)
	if err != nil {
		t.Fatal(err)
	}
	if want := 7*f.Config.Layers + 1; len(cal.Linear) != want {
		t.Errorf("%d Linears calibrated, want %d", len(cal.Linear), want)
	}
	for _, l := range []string{"logits", "blk.0/q", "blk.1/down"} {
		r, ok := cal.Linear[l]
		if !ok {
			t.Fatalf("%q not calibrated", l)
		}
		for _, iv := range []backend.Interval{r.In, r.Out} {
			if !(iv.Min < iv.Max) || math.IsInf(float64(iv.Max-iv.Min), 0) {
				t.Errorf("%q: interval %+v", l, iv)
			}
		}
	}
	t.Logf("%d calibration tokens; logits range %+v, blk.0/q in %+v", len(ids), cal.Linear["logits"].Out, cal.Linear["blk.0/q"].In)
	if _, err := Calibrate(context.Background(), f.Config, cpu.New(), f.Weights, nil); err == nil {
		t.Error("an empty calibration prompt was accepted")
	}
}
