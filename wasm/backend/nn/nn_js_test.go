//go:build js && wasm

package nn

import (
	"errors"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

func newBackend(t testing.TB, opt Options) *Backend {
	t.Helper()
	b, err := New(opt)
	if err != nil {
		t.Fatalf("WebNN backend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConformance runs the shared suite on every format. The graph computes in float32
// (float32 scales, dequantizeLinear output float32, gemm on float32), so the suite's float32
// bound applies as derived.
func TestConformance(t *testing.T) {
	b := newBackend(t, Options{})
	for _, s := range b.Limits().Summary("dequantizeLinear", "gemm", "cast", "pad") {
		t.Log(s)
	}
	backendtest.Run(t, b, backendtest.Options{})
	for _, n := range b.Caps().Notes {
		t.Log("note: ", n)
	}
}

// TestConformanceShapes runs int4 and int8, per-channel and block-wise, sym and asym through the
// other graph shapes the benchmarks compare, so a faster shape is never a wrong one.
func TestConformanceShapes(t *testing.T) {
	var formats []quant.Format
	for _, bits := range []int{4, 8} {
		for _, sch := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
			for _, g := range []int{0, 32} {
				formats = append(formats, quant.Format{Bits: bits, Scheme: sch, GroupSize: g, Scales: quant.ScaleF16})
			}
		}
	}
	for _, shape := range []GraphShape{{Product: ProductMatmul}, {Dequant: DequantCast}, {Rank2: true}} {
		t.Run(shape.String(), func(t *testing.T) {
			opt := backendtest.Options{Formats: formats}
			if shape.Product == ProductMatmul {
				// TFLite fails to compile transpose(reshape(dequantize)) when the scale is
				// per-channel ([N,1,1]): "Failed to build TFL interpreter". Block-wise builds.
				opt.Supports = func(f quant.Format) bool { return f.GroupSize != 0 }
			}
			backendtest.Run(t, newBackend(t, Options{Graph: shape}), opt)
		})
	}
}

func TestPathsOnThisBrowser(t *testing.T) {
	b := newBackend(t, Options{})
	for _, f := range []quant.Format{quant.Q4, {Bits: 4, Scheme: quant.Asymmetric, GroupSize: 64}, {Bits: 8}, {Bits: 8, Scheme: quant.Asymmetric}, {Bits: 2, GroupSize: 16}, {Bits: 16}, {Bits: 32}} {
		q, err := quant.Quantize("w", make([]float32, 8*40), 8, 40, f, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := b.Upload(q)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-16v → %-17s %d bytes: %s", f, w.(*Weight).Path(), w.Bytes(), w.(*Weight).Note())
		w.Release()
	}
}

func TestMatMulReusesGraphs(t *testing.T) {
	b := newBackend(t, Options{})
	q, _ := quant.Quantize("w", make([]float32, 16*40), 16, 40, quant.Q4, quant.Options{})
	bw, err := b.Upload(q)
	if err != nil {
		t.Fatal(err)
	}
	w := bw.(*Weight)
	for _, m := range []int{1, 3, 4, 1, 2, 3} {
		if err := b.MatMul(make([]float32, m*16), make([]float32, m*40), w, m); err != nil {
			t.Fatal(err)
		}
	}
	if len(w.graphs) != 3 { // classes 1, 2, 4
		t.Errorf("%d graphs built, want 3 (m classes 1, 2, 4)", len(w.graphs))
	}
	w.Release()
	if err := b.MatMul(make([]float32, 16), make([]float32, 40), w, 1); err == nil {
		t.Error("matmul on a released weight: want an error")
	}
}

func TestNoWebNN(t *testing.T) {
	if webnn.Available() {
		t.Skip("navigator.ml present; wasm/webnn's TestMissingML covers its absence")
	}
	if _, err := New(Options{}); !errors.Is(err, webnn.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}
