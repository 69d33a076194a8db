//go:build js && wasm

package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend/gpu"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// gatedFile serves file from memory, holding back every byte from at on until open is closed.
type gatedFile struct {
	file []byte
	at   int64
	open chan struct{}
}

func (g *gatedFile) opener(string) stream.Opener {
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		return io.NopCloser(&gatedReader{g: g, ctx: ctx, off: off}), nil
	}
}

type gatedReader struct {
	g   *gatedFile
	ctx context.Context
	off int64
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.off >= r.g.at {
		select {
		case <-r.g.open:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	end := int64(len(r.g.file))
	if r.off < r.g.at {
		end = r.g.at
	}
	if r.off >= end {
		return 0, io.EOF
	}
	n := copy(p, r.g.file[r.off:end])
	r.off += int64(n)
	return n, nil
}

// twoMatrices is a safetensors file of two 64×128 float32 weights, "a" then "b", and where "b"
// starts.
func twoMatrices(t *testing.T) ([]byte, int64) {
	infos := []format.TensorInfo{{Name: "a", DType: format.F32, Shape: []int{64, 128}}, {Name: "b", DType: format.F32, Shape: []int{64, 128}}}
	var buf bytes.Buffer
	w, err := format.NewSafetensorsWriter(&buf, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, 2*64*128)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * 0.1)
	}
	b := make([]byte, 4*len(vals))
	format.EncodeF32(b, vals)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := format.NewSafetensors(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), r.Tensors()[1].Offset
}

// TestBrowserDeviceLost: GPUDevice.destroy() mid-load fails the load, and after the load fails
// the next matmul, both with DEVICE_LOST (the model must be loaded again: the weights are not
// re-uploaded behind the caller's back), promptly rather than by a hang.
func TestBrowserDeviceLost(t *testing.T) {
	file, bAt := twoMatrices(t)
	old := OpenURL
	defer func() { OpenURL = old }()
	no := false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x := make([]float32, 128)

	for _, midLoad := range []bool{false, true} {
		g := &gatedFile{file: file, at: int64(len(file)), open: make(chan struct{})}
		if midLoad {
			g.at = bAt // "a" arrives, "b" waits for the gate
		}
		OpenURL = g.opener
		m, err := Load(ctx, "https://models.test/m/model.safetensors", Options{Backend: "webgpu", Cache: &no})
		if err != nil {
			t.Skipf("no WebGPU here: %v", err)
		}
		dev := m.Backend.(*gpu.Backend).Device()
		for !m.load.IsResident("a") {
			if m.load.Err() != nil {
				t.Fatal(m.load.Err())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := m.MatMul("a", x, 1); err != nil {
			t.Fatal(err)
		}
		dev.Destroy()
		for dev.Err() == nil { // device.lost settles on the JS event loop
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		if midLoad {
			close(g.open)
			err = m.Wait(ctx)
		} else {
			close(g.open)
			if err = m.Wait(ctx); err != nil {
				t.Fatalf("the load was complete before the loss: %v", err)
			}
			_, err = m.MatMul("a", x, 1)
		}
		t.Logf("mid-load %v: %s after %v: %v", midLoad, Code(err), time.Since(start), err)
		if Code(err) != "DEVICE_LOST" || !errors.Is(ErrorKind(err), ErrDeviceLost) {
			t.Errorf("mid-load %v: %v (code %q), want DEVICE_LOST", midLoad, err, Code(err))
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("mid-load %v: the error took %v", midLoad, took)
		}
		m.Release()
	}
}
