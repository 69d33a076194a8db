//go:build !(js && wasm)

package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestGuard forces a wrong int4 kernel (the test hook) and sees the guard fire: with the
// backend pinned the load fails; with "auto" the tensors are held as float32 instead, the
// notes and the plan say so, and results are still right.
func TestGuard(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, filepath.Join(dir, "tiny"))
	base, _ := server(t, dir)
	url := base + "/models/tiny/"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	guardAll = true
	guardFault = func(f quant.Format, dst []float32) {
		if f.Bits == 4 {
			for i := range dst {
				dst[i] = -dst[i]
			}
		}
	}
	defer func() { guardAll, guardFault = false, nil }()
	off := false

	m, err := Load(ctx, url, Options{Backend: "cpu", Format: "q4-asym-g32", Cache: &off})
	if err == nil {
		err = m.Wait(ctx)
		m.Release()
	}
	if !errors.Is(err, ErrGuard) || errs.Kind(err) != errs.ErrUnsupported || !strings.Contains(err.Error(), "asked for by name") {
		t.Errorf("pinned backend, wrong kernel: %v", err)
	}

	m, err = Load(ctx, url, Options{Backend: "auto", Policy: "small", Cache: &off})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(m.Notes(), "; "); !strings.Contains(notes, "guard") || !strings.Contains(notes, "q4-sym-g32") {
		t.Errorf("notes do not say the guard fired: %s", notes)
	}
	for _, tf := range m.Tensors() {
		c, _ := m.Plan().Lookup(tf.Name)
		if tf.Layer && (tf.Format != "f32" || !strings.Contains(c.Reason, "guard") || c.Bytes != tf.Bytes) {
			t.Errorf("%s held as %s (%d B), plan %+v", tf.Name, tf.Format, tf.Bytes, c)
		}
	}
	ref, err := Quantized(ctx, url, "q4-sym-g32")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 2*200)
	for i := range x {
		x[i] = float32(i%5) - 2
	}
	got, err := m.MatMul("layer.1.w", x, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := quant.MatMul(x, 2, ref["layer.1.w"])
	if e, _ := quant.Compare(want, got); e.RelRMS > 1e-5 {
		t.Errorf("after the guard moved it: %v", e)
	}

	guardFault = nil // a correct kernel: nothing moves
	m2, err := Load(ctx, url, Options{Backend: "cpu", Policy: "small", Cache: &off})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Release()
	if err := m2.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tf := range m2.Tensors() {
		if tf.Layer && tf.Format != "q4-sym-g32-f32" {
			t.Errorf("%s held as %s with a correct kernel", tf.Name, tf.Format)
		}
	}
	if notes := strings.Join(m2.Notes(), "; "); !strings.Contains(notes, "guard: q4-sym-g32-f32 on cpu matches") {
		t.Errorf("a passed probe is not in the notes: %s", notes)
	}
}

// TestActivationsAsRounded: the guard's reference for a backend with int8 activations is the
// int8-activation GEMV's (quant.MatMulA8 within its float bound), for activation blocks of 32
// and 16 and a short last block.
func TestActivationsAsRounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 8))
	const n, k = 7, 200
	x, w := make([]float32, k), make([]float32, n*k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for _, f := range []quant.Format{quant.Q4, {Bits: 8, GroupSize: 32}} {
		q, err := quant.Quantize("w", w, n, k, f, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		xr, err := activationsAsRounded(x, f.Bits)
		if err != nil {
			t.Fatal(err)
		}
		got, err := quant.MatMul(xr, 1, q)
		if err != nil {
			t.Fatal(err)
		}
		a, err := quant.QuantizeActivations(x, 1, k, quant.ActivationBlock(f.Bits))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := quant.MatMulA8(a, q)
		if err != nil {
			t.Fatal(err)
		}
		for j := range n {
			// xr's products each round once more (d·q to f32): 2⁻²⁴ of Mag.
			if d := math.Abs(float64(got[j]) - ref.Y[j]); d > ref.Bound(0, j)+0x1p-24*ref.Mag[j] {
				t.Errorf("%v: y[%d] = %g, int8-activation reference %g (bound %.3g)", f, j, got[j], ref.Y[j], ref.Bound(0, j))
			}
		}
	}
}
