package backend_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// refuses is a member that holds nothing (a backend without the format).
type refuses struct{ *cpu.Backend }

func (refuses) Upload(*quant.Tensor) (backend.Weight, error) {
	return nil, errors.New("no int4 weights")
}
func (refuses) Caps() plan.Caps { return plan.Caps{Backend: "refuses"} }

// TestHybridHoldsACopyPerMember: each member compiles against its own copy, a member that
// cannot hold a tensor is skipped and says why, and Keep releases the copies not needed.
func TestHybridHoldsACopyPerMember(t *testing.T) {
	a, b := cpu.New(), cpu.New()
	h := backend.NewHybrid(a, refuses{cpu.New()}, b)
	data := []float32{1, 2, 3, 4, 5, 6}
	q, err := quant.Quantize("w", data, 2, 3, quant.Format{Bits: 32}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := h.Upload(q)
	if err != nil {
		t.Fatal(err)
	}
	hw := w.(*backend.HybridWeight)
	if hw.On(0) == nil || hw.On(1) != nil || hw.Why(1) == nil || hw.On(2) == nil {
		t.Fatalf("copies: %v %v %v (%v)", hw.On(0), hw.On(1), hw.On(2), hw.Why(1))
	}
	if w.Bytes() != 2*hw.On(0).Bytes() {
		t.Errorf("bytes %d, want both copies' %d", w.Bytes(), 2*hw.On(0).Bytes())
	}
	g := graph.New("lin")
	x := g.Input("x", graph.Float32, 1, 3)
	if err := g.Output(g.Linear("y", x, g.Weight("w", 2, 3), graph.None)); err != nil {
		t.Fatal(err)
	}
	ws := backend.WeightMap{"w": w}
	for i, want := range []bool{true, false, true} {
		c, own, ok := h.Member(i, ws)
		if !ok {
			t.Fatalf("member %d runs no graphs", i)
		}
		p, err := c.Compile(g, own)
		if (err == nil) != want || err != nil && !strings.Contains(err.Error(), "no int4 weights") {
			t.Fatalf("member %d compile: %v", i, err)
		}
		if err != nil {
			continue
		}
		out, err := p.Run(context.Background(), []graph.Tensor{graph.F32Tensor([]float32{1, 1, 1}, 1, 3)})
		if err != nil || out[0].F32[0] != 6 || out[0].F32[1] != 15 {
			t.Fatalf("member %d: %v %v", i, out, err)
		}
	}
	if err := hw.Keep(map[int]bool{2: true}); err != nil {
		t.Fatal(err)
	}
	if hw.On(0) != nil || hw.On(2) == nil || w.Bytes() != hw.On(2).Bytes() {
		t.Errorf("after Keep: %v %v, %d bytes", hw.On(0), hw.On(2), w.Bytes())
	}
	dst := make([]float32, 2)
	if err := h.MatMul(dst, []float32{1, 1, 1}, w, 1); err != nil || dst[1] != 15 {
		t.Errorf("MatMul on the member left: %v %v", dst, err)
	}
	if _, err := backend.NewHybrid(refuses{cpu.New()}).Upload(q); err == nil {
		t.Error("an upload no member holds succeeded")
	}
}
