//go:build js && wasm

package gpu

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// -nibble.f16=on makes a browser with shader-f16 (Firefox ESR on lavapipe) run the f16 variants
// and fail if it cannot; off forces f32 products; auto uses f16 where the adapter has it.
var f16Flag = flag.String("nibble.f16", "auto", "f16 products: auto, on or off")

func f16Mode(t testing.TB) F16Mode {
	switch *f16Flag {
	case "auto":
		return F16Auto
	case "on":
		return F16On
	case "off":
		return F16Off
	}
	t.Fatalf("-nibble.f16=%q: want auto, on or off", *f16Flag)
	return 0
}

// newBackend fails, never skips, when WebGPU is missing: a green run without a GPU adapter
// would prove nothing.
func newBackend(t testing.TB, opt Options) *Backend {
	t.Helper()
	opt.F16 = f16Mode(t)
	if opt.Timeout == 0 {
		// lavapipe compiles a pipeline at its first dispatch: the int2 GEMM took over the default
		// minute on a loaded 2-core machine (load average 15).
		opt.Timeout = 5 * time.Minute
	}
	b, err := New(opt)
	switch {
	case errors.Is(err, webgpu.ErrNoWebGPU):
		t.Fatalf("%v: the browser runs without WebGPU. Chromium needs --enable-unsafe-webgpu (tools/browser/test-js.sh adds it); Firefox needs dom.webgpu.enabled=true", err)
	case errors.Is(err, webgpu.ErrNoAdapter):
		t.Fatalf("%v: no adapter, not even SwiftShader. Headless Chromium needs its SwiftShader Vulkan ICD (npm @sparticuz/chromium unpacked by tools/browser, with libvulkan1 and libnss3 from apt) and --enable-unsafe-webgpu; Firefox needs mesa-vulkan-drivers (lavapipe) and gfx.webgpu.ignore-blocklist=true", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestAdapter(t *testing.T) {
	b := newBackend(t, Options{})
	c := b.Caps()
	kind := "hardware adapter"
	if b.AdapterInfo().IsFallbackAdapter {
		kind = "SOFTWARE adapter (isFallbackAdapter: true, e.g. SwiftShader): timings are not hardware figures"
	}
	t.Logf("adapter: %v; GEMV %v %d×%d; GEMM tiles %+v", b.AdapterInfo(), b.tune.GEMVKernel, b.tune.GEMVWorkgroup, b.tune.GEMVRows, b.tune.Tiles)
	l := b.Device().Limits()
	t.Logf("%s; f16 products %v, subgroups %v, packed int8 dot products (WGSL) %v, timestamp-query %v, maxStorageBufferBindingSize %d, maxBufferSize %d, workgroup storage %d B, %d invocations; notes %q",
		kind, c.F16, c.Subgroups, b.feat.dot4, c.TimestampQuery, c.MaxStorageBindingSize, c.MaxBufferSize, l.MaxComputeWorkgroupStorageSize, l.MaxComputeInvocationsPerWorkgroup, c.Notes)
	ad, err := webgpu.RequestAdapter(webgpu.AdapterOptions{PowerPreference: "high-performance"})
	if err != nil {
		t.Fatal(err)
	}
	var feats []string
	for f := range ad.Features() {
		feats = append(feats, f)
	}
	sort.Strings(feats)
	t.Logf("adapter features: %s", strings.Join(feats, " "))
	if *f16Flag == "on" && !c.F16 {
		t.Fatal("-nibble.f16=on but the backend does not use f16 products")
	}
}

// wideShapes have K whose rows are whole vec4<u32> without padding, the path real models take.
var wideShapes = []backendtest.Shape{{M: 1, N: 37, K: 512}, {M: 3, N: 20, K: 1024}, {M: 33, N: 70, K: 256}}

func eps(b *Backend) float64 {
	if b.ComputeF16() {
		return 0x1p-11
	}
	return 0
}

func TestConformance(t *testing.T) {
	b := newBackend(t, Options{poison: true})
	backendtest.Run(t, b, backendtest.Options{
		ProductEps: eps(b),
		Shapes:     append(append([]backendtest.Shape{}, backendtest.DefaultShapes...), wideShapes...),
	})
}

// TestConformanceOtherTuning runs the suite with the launch shapes New did not pick for this
// adapter (DefaultTuning on a software adapter, SoftwareTuning on hardware), so the CI's
// SwiftShader still checks the kernels hardware runs: gemv_hw.wgsl and gemm_tile.wgsl there.
// One format per decode path of gemv_hw.wgsl (each width, symmetric and asymmetric, f16 scales,
// one scale per span or per octet, f16 and f32 weights), not all 74: each format costs
// SwiftShader seconds of pipeline compiles.
func TestConformanceOtherTuning(t *testing.T) {
	other := SoftwareTuning
	if softwareAdapter(webgpuInfo(t)) {
		other = DefaultTuning
	}
	b := newBackend(t, Options{poison: true, Tuning: &other})
	// The device may run a split tile unsplit (fit), but it must run tiles if the tuning has them.
	want, _ := other.fit(b.Device().Limits())
	if b.tune != want || other.Tiles[0].set() && !want.Tiles[0].set() {
		t.Fatalf("the device cannot run the tuning under test: %v", b.Caps().Notes)
	}
	t.Logf("GEMV %v %d×%d, tiles %+v", other.GEMVKernel, other.GEMVWorkgroup, other.GEMVRows, other.Tiles)
	backendtest.Run(t, b, backendtest.Options{
		ProductEps: eps(b),
		Shapes:     append(append([]backendtest.Shape{}, backendtest.DefaultShapes...), wideShapes...),
		Formats:    decodePaths,
	})
}

// decodePaths are formats that between them take every branch of the decoders.
var decodePaths = []quant.Format{
	{Bits: 32},
	{Bits: 16},
	{Bits: 8, GroupSize: 32},
	{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 0, Scales: quant.ScaleF16},
	{Bits: 4, GroupSize: 32},
	{Bits: 4, Scheme: quant.Asymmetric, GroupSize: 16, Scales: quant.ScaleF16},
	{Bits: 2, GroupSize: 32},
	{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 16, Scales: quant.ScaleF16},
	{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 128},
}

// tileShapes put M across several tile rows with a ragged last one, N across several tile
// columns with a ragged last one, and K across several BK steps with a ragged last one.
var tileShapes = []backendtest.Shape{{M: 70, N: 131, K: 300}, {M: 5, N: 70, K: 1000}, {M: 130, N: 33, K: 40}}

// splitKTiles split K across workgroups (Tile.S) in CI: with tileShapes, slices of K that are
// not whole multiples of BK steps, a last slice shorter than the others, and (K = 40: 2 steps
// of 32, 3 of 16) slices with no step at all; one also splits K within the workgroup (KS).
var splitKTiles = []Tile{
	{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32, KS: 2, S: 3},
	{WG: 64, WGM: 4, TM: 4, TN: 8, BK: 16, S: 4},
}

// TestConformanceTiles runs every workgroup-memory tile of DefaultTuning on whatever adapter the
// browser has (SwiftShader in CI), a few formats each, and tiles splitting K across workgroups;
// on hardware also the other tiles the GEMM sweep measures (on SwiftShader they would add a
// minute of compiles to every CI run).
func TestConformanceTiles(t *testing.T) {
	// A split tile small enough for WebGPU's default 256 threads: the split path runs in CI.
	tiles := append(DefaultTuning.Tiles[:], Tile{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32, KS: 2})
	tiles = append(tiles, splitKTiles...)
	if !softwareAdapter(webgpuInfo(t)) {
		tiles = append(tiles, sweepTiles...)
		tiles = append(tiles, splitVariants(splitTiles, 2, 3, 4)...)
	}
	seen := map[string]bool{}
	for _, tl := range tiles {
		name := tl.key(shaders.Key{Bits: 32}).Name()
		if seen[name] {
			continue
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			tu := DefaultTuning
			tu.Tiles = [6]Tile{tl}
			b := newBackend(t, Options{poison: true, Tuning: &tu})
			if !b.tune.Tiles[0].set() {
				t.Skipf("this device cannot run the tile: %v", b.Caps().Notes)
			}
			if b.tune != tu {
				t.Logf("as the device allows: %v", b.Caps().Notes)
			}
			if k := keyFor(quant.Q4, 131, 70, b.feat, b.tune); max(k.KSlices, 1) != max(tl.S, 1) {
				t.Fatalf("%s at 70×131: KSlices %d, want the tile's S %d", k.Name(), k.KSlices, tl.S)
			}
			backendtest.Run(t, b, backendtest.Options{
				ProductEps: eps(b),
				Shapes:     tileShapes,
				Formats: []quant.Format{
					{Bits: 32},
					{Bits: 4, GroupSize: 32},
					{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 24, Scales: quant.ScaleF16},
				},
			})
		})
	}
}

// TestConformanceSplitK runs a tile splitting K across workgroups over weights split into row
// chunks (a 4 KiB binding cap): each chunk's partial products go to the one scratch buffer and
// are added into y at the chunk's offset before the next chunk's dispatch overwrites them.
func TestConformanceSplitK(t *testing.T) {
	tu := DefaultTuning
	tu.Tiles = [6]Tile{splitKTiles[0]}
	tu.Tiles[0].MaxM = 1 << 30
	b := newBackend(t, Options{poison: true, Tuning: &tu, MaxBindingSize: 4096})
	if k := keyFor(quant.Q4, 70, 33, b.feat, b.tune); k.KSlices < 2 {
		t.Fatalf("%s: K not split across workgroups (%v)", k.Name(), b.Caps().Notes)
	}
	backendtest.Run(t, b, backendtest.Options{
		ProductEps: eps(b),
		Shapes:     tileShapes,
		Formats:    []quant.Format{{Bits: 32}, {Bits: 4, Scheme: quant.Asymmetric, GroupSize: 24, Scales: quant.ScaleF16}},
	})
}

// TestGraphSplitK runs a graph's GEMMs with K split across workgroups, on poisoned arenas
// against the cpu: two Linears of different sizes sharing the program's scratch (one with a
// bias added after the sum of its slices, one read by an Add), K padded to the device rows;
// ragged shapes, then small ones whose weights are row chunks under a 4 KiB binding cap.
func TestGraphSplitK(t *testing.T) {
	poisoned(t)
	tu := DefaultTuning
	tu.Tiles = [6]Tile{splitKTiles[0]}
	tu.Tiles[0].MaxM = 1 << 30
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range []struct{ cap, m1, n1, m2, n2, k int }{
		{0, 33, 70, 70, 131, 300},
		{4096, 5, 70, 5, 100, 180}, // activations within the cap too
	} {
		b := newBackend(t, Options{Tuning: &tu, MaxBindingSize: int64(c.cap)})
		for _, f := range []quant.Format{{Bits: 32}, {Bits: 4, GroupSize: 32}} {
			t.Run(fmt.Sprintf("cap%d/%v", c.cap, f), func(t *testing.T) {
				if k := keyFor(f, c.n2, c.m2, b.feat, b.tune); k.KSlices < 2 {
					t.Fatalf("%s: K not split across workgroups (%v)", k.Name(), b.Caps().Notes)
				}
				w1, w2 := quantized(t, "w1", rng, c.n1, c.k, f), quantized(t, "w2", rng, c.n2, c.k, f)
				checkLocal(t, b, "split K "+f.String(), func(g *graph.Graph, ws map[string]*quant.Tensor) error {
					ws["w1"], ws["w2"] = w1, w2
					x1, x2 := g.Input("x1", graph.Float32, c.m1, c.k), g.Input("x2", graph.Float32, c.m2, c.k)
					bias, r := g.Input("bias", graph.Float32, c.n2), g.Input("r", graph.Float32, c.m1, c.n1)
					y1 := g.Add("res", g.Linear("fc1", x1, g.Weight("w1", c.n1, c.k), graph.None), r)
					y2 := g.Linear("fc2", x2, g.Weight("w2", c.n2, c.k), bias)
					return g.Output(y1, y2)
				}, func(rng *rand.Rand) []graph.Tensor {
					return []graph.Tensor{normalInput(c.m1, c.k)(rng), normalInput(c.m2, c.k)(rng), normalInput(c.n2)(rng), normalInput(c.m1, c.n1)(rng)}
				})
				if n := len(chunksOf(t, b, w2)); c.cap > 0 && n < 2 {
					t.Errorf("w2 %v: %d chunks under a %d-byte cap, want several", f, n, c.cap)
				}
			})
		}
	}
}

// webgpuInfo is what the adapter New requests says about itself.
func webgpuInfo(t *testing.T) webgpu.AdapterInfo {
	ad, err := webgpu.RequestAdapter(webgpu.AdapterOptions{PowerPreference: "high-performance"})
	if err != nil {
		t.Fatal(err)
	}
	return ad.Info()
}

// TestConformanceSplit caps bindings at 4 KiB so every tensor of the suite is split by rows into
// many bindings and dispatches, and uses the workgroup-memory reduction instead of subgroups.
// The formats are the ones whose chunks differ: f16 scales whose rows start mid-word, packed
// zero points, per-channel, plain f16/f32 rows. (Every format costs SwiftShader seconds of
// pipeline compiles; TestConformance covers the rest.)
func TestConformanceSplit(t *testing.T) {
	b := newBackend(t, Options{poison: true, MaxBindingSize: 4096, NoSubgroups: true})
	backendtest.Run(t, b, backendtest.Options{ProductEps: eps(b), Formats: []quant.Format{
		{Bits: 32}, {Bits: 16},
		{Bits: 4, GroupSize: 32},
		{Bits: 2, Scheme: quant.Asymmetric, GroupSize: 16, Scales: quant.ScaleF16},
		{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 0, Scales: quant.ScaleF16},
		{Bits: 4, Scheme: quant.Asymmetric, GroupSize: 24, Scales: quant.ScaleF16},
		{Bits: 2, GroupSize: 40},
	}})
}

func TestSplitIsUsed(t *testing.T) {
	b := newBackend(t, Options{MaxBindingSize: 4096})
	q, err := quant.Quantize("split", make([]float32, 130*1000), 130, 1000, quant.Format{Bits: 8, GroupSize: 16}, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := b.Upload(q)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Release()
	if n := len(w.(*weight).chunks); n < 30 {
		t.Fatalf("130×1000 int8 under a 4 KiB binding cap: %d chunks, want ≥ 30", n)
	}
}

const badShader = `@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1)
fn main() {
  y[0] = 1.0 +;
}
`

func TestCompileErrorNamesLine(t *testing.T) {
	b := newBackend(t, Options{})
	src := webgpu.ShaderSource{Variant: "test-bad", Code: "// header\n" + badShader,
		Spans: []webgpu.SourceSpan{{File: "bad.wgsl", Start: 2, Lines: 5}}}
	_, err := b.Device().CreateComputePipeline(src, "main", nil)
	var ce *webgpu.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *webgpu.CompileError", err)
	}
	if ce.Line() != 4 || !strings.Contains(err.Error(), "bad.wgsl:4:") || !strings.Contains(err.Error(), "test-bad") {
		t.Fatalf("error does not name variant test-bad and bad.wgsl:4: %v", err)
	}
	t.Logf("as reported: %v", err)
	// The device must still work after a failed compile (the error scope was popped).
	if err := b.Device().Err(); err != nil {
		t.Fatalf("device error after a compile error: %v", err)
	}
}

func TestValidationErrorSurfaces(t *testing.T) {
	b := newBackend(t, Options{})
	d := b.Device()
	good := webgpu.ShaderSource{Variant: "test-good", Code: strings.Replace(badShader, "1.0 +;", "1.0;", 1)}
	// A missing entry point is not a WGSL error: the pipeline step must report it.
	if _, err := d.CreateComputePipeline(good, "nope", nil); err == nil {
		t.Fatal("entry point nope: want an error")
	} else {
		t.Logf("missing entry point: %v", err)
	}
	pl, err := d.CreateComputePipeline(good, "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A uniform buffer bound where the layout wants storage is a validation error.
	ub, err := d.CreateBuffer("test uniform", 16, webgpu.BufferUniform)
	if err != nil {
		t.Fatal(err)
	}
	defer ub.Destroy()
	if err := d.PushErrorScope("validation"); err != nil {
		t.Fatal(err)
	}
	d.CreateBindGroup("test wrong usage", pl.BindGroupLayout(0), webgpu.BufferBinding{Binding: 0, Buffer: ub})
	err = d.PopErrorScope("bind group with a uniform buffer")
	if !errors.Is(err, webgpu.ErrValidation) {
		t.Fatalf("got %v, want ErrValidation", err)
	}
	t.Logf("as reported: %v", err)
}

func TestDeviceLost(t *testing.T) {
	b := newBackend(t, Options{})
	q, _ := quant.Quantize("lost", make([]float32, 8*40), 8, 40, quant.Q4, quant.Options{})
	w, err := b.Upload(q)
	if err != nil {
		t.Fatal(err)
	}
	b.Device().Destroy()
	start := time.Now()
	// Let the lost promise resolve: it settles on the JS event loop, which Sleep yields to.
	time.Sleep(50 * time.Millisecond)
	err = b.MatMul(make([]float32, 8), make([]float32, 40), w, 1)
	if !errors.Is(err, webgpu.ErrDeviceLost) {
		t.Fatalf("MatMul after destroy: got %v, want ErrDeviceLost", err)
	}
	if _, err := b.Upload(q); !errors.Is(err, webgpu.ErrDeviceLost) {
		t.Fatalf("Upload after destroy: got %v, want ErrDeviceLost", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("lost device took %v to report", d)
	}
	t.Logf("as reported: %v", err)
}
