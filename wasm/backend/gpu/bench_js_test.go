//go:build js && wasm

package gpu

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
	"github.com/x448/float16"
)

// syntheticTensor fills an n×k tensor with random codes and scales directly: quantizing 268 M
// floats in wasm would take longer than the benchmark. Values are finite and weight-sized.
func syntheticTensor(rng *rand.Rand, n, k int, f quant.Format) *quant.Tensor {
	t := &quant.Tensor{Name: fmt.Sprintf("bench %dx%d %v", n, k, f), N: n, K: k, Format: f}
	t.Data = make([]byte, n*f.RowStride(k))
	switch f.Bits {
	case 32:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			binary.LittleEndian.PutUint32(t.Data[i:], math.Float32bits(float32(rng.NormFloat64()*0.02)))
		}
	case 16:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			binary.LittleEndian.PutUint16(t.Data[i:], float16.Fromfloat32(float32(rng.NormFloat64()*0.02)).Bits())
		}
	default:
		i := 0
		for ; i+8 <= len(t.Data); i += 8 {
			binary.LittleEndian.PutUint64(t.Data[i:], rng.Uint64())
		}
		for ; i < len(t.Data); i++ {
			t.Data[i] = byte(rng.Uint32())
		}
	}
	if f.Quantized() {
		g := f.Groups(k)
		t.Scales = make([]byte, n*g*f.Scales.Size())
		for i := 0; i < n*g; i++ {
			v := 0.001 + 0.002*rng.Float32()
			if f.Scales == quant.ScaleF16 {
				binary.LittleEndian.PutUint16(t.Scales[2*i:], float16.Fromfloat32(v).Bits())
			} else {
				binary.LittleEndian.PutUint32(t.Scales[4*i:], math.Float32bits(v))
			}
		}
		t.Zeros = make([]byte, n*f.ZeroStride(k))
		for i := range t.Zeros {
			t.Zeros[i] = byte(rng.Uint32())
		}
	}
	return t
}

var (
	// -nibble.reps sets how many dispatches one kernel timing submits (a tenth of it for GEMM,
	// at least 3). Keep it small on SwiftShader, where one 4096×4096 f32 GEMV takes tens of ms.
	benchReps = flag.Int("nibble.reps", 10, "dispatches per kernel timing")
	// -nibble.gemv and -nibble.gemm time more launch shapes beside the adapter's default, to
	// choose a shape on a new adapter without a rebuild.
	benchGEMV = flag.String("nibble.gemv", "", "more GEMV shapes, comma-separated [hw|sw]WGxROWS[p] (hw: gemv_hw.wgsl, sw: gemv.wgsl, neither: the default kernel; p: prefetch), or sweep")
	benchGEMM = flag.String("nibble.gemm", "", "more GEMM shapes, comma-separated WGMxWGNxTMxTNxBK[xKS[xS]] tiles (S: slices of K across workgroups) or flat (gemm.wgsl), or sweep (every tile, and splitTiles split), or split (splitTiles × S 1..4)")
	// Timings drift with the GPU's state (the first variant of a case was at times faster than
	// the same kernel timed later): rounds time the whole list again, and the summary takes the
	// median per variant.
	benchRounds = flag.Int("nibble.rounds", 1, "times each case's variant list is timed")
	benchSet    = flag.String("nibble.set", "quick", "cases: quick (small, for SwiftShader), readme (the README table), sweep (readme's shapes, fewer formats), gemv (the issue's GEMV shapes only), decode (a 7B decode step's GEMV shapes), gemm (q4 4096² at m = 16 to 512, q8 at 64 to 512)")
	// Weights rotate through copies adding up to this much, so each call reads them from memory
	// rather than from the last-level cache (an H200's L2 is 50 MB).
	benchRotate = flag.Int("nibble.rotate", 128, "MiB of weight copies one timing rotates through; 0: one copy")
	benchCheck  = flag.Bool("nibble.check", true, "check sampled outputs of every timed variant against the pure-Go reference")
	// -nibble.a8 times the int8-activation GEMV (Options.Int8Activations) beside the f32 one,
	// for the formats it takes, where WGSL has packed dot products; its rows carry the format
	// with "+a8", so the summary and the markdown table show both side by side.
	benchA8 = flag.String("nibble.a8", "on", "int8-activation GEMV variants: on (the default launch shape), off, sweep, or comma-separated [p]WGxROWS[f][gN], f or gN shapes besides the default (p: x quantized by a pre-pass dispatch, timed with the GEMV; f: with p, each thread's next span loaded ahead, Tuning.GEMVInt8Prefetch, which shapes without f leave off; gN: at most N workgroups, each looping over row groups with x quantized once into workgroup memory, Tuning.GEMVInt8Persist; gN alone: the default shapes so)")
)

// sweepA8 are the int8-activation GEMV shapes -nibble.a8=sweep times besides the default.
// (16 rows a workgroup is gemv_a8.wgsl's alone: half the activations' quantization per weight;
// p: the activations quantized once by a pre-pass, whose dispatch is timed too.)
var sweepA8 = []string{"64x8", "256x8", "128x4", "256x4", "64x16", "128x16", "p128x4", "p128x8", "p256x4"}

// a8PersistMaxK is the room for x the benchmarks' persistent int8-activation GEMVs have (in
// activations): a 7B decoder's longest row, the down projection's 11008.
const a8PersistMaxK = 11008

// a8Variants are the int8-activation variants of a GEMV case: def's launch shape (named
// "default": the "+a8" format tells it apart) and those of -nibble.a8.
func a8Variants(tb testing.TB, def Tuning) []variant {
	if *benchA8 == "off" {
		return nil
	}
	tu := def
	tu.GEMVInt8 = true
	vs := []variant{{"default", tu}}
	specs := *benchA8
	switch specs {
	case "on":
		specs = ""
	case "sweep":
		specs = strings.Join(sweepA8, ",")
	}
	for _, s := range strings.Split(specs, ",") {
		if s == "" {
			continue
		}
		v := tu
		shape, groups, persist := strings.Cut(s, "g")
		v.GEMVInt8Prefetch = 0
		if pf, ok := strings.CutSuffix(shape, "f"); ok {
			shape, v.GEMVInt8Prefetch = pf, 16
		}
		if persist {
			v.GEMVInt8Persist = A8Persist{MaxK: a8PersistMaxK}
			if _, err := fmt.Sscanf(groups, "%d", &v.GEMVInt8Persist.Groups); err != nil {
				tb.Fatalf("-nibble.a8 %q: want gN after the shape: %v", s, err)
			}
		}
		if shape != "" {
			v.GEMVInt8Prepass, v.GEMVInt8Wide = strings.HasPrefix(shape, "p"), A8Wide{} // this shape at every size
			if _, err := fmt.Sscanf(strings.TrimPrefix(shape, "p"), "%dx%d", &v.GEMVInt8Workgroup, &v.GEMVInt8Rows); err != nil {
				tb.Fatalf("-nibble.a8 %q: want on, off, sweep or [p]WGxROWS[f][gN] shapes: %v", s, err)
			}
		}
		vs = append(vs, variant{"a8-" + s, v})
	}
	return vs
}

// sweepTiles are the GEMMTile shapes -nibble.gemm=sweep times (DefaultTuning's among them).
var sweepTiles = []Tile{
	{WG: 64, WGM: 4, TM: 4, TN: 4, BK: 32},          // 16×64
	{WG: 128, WGM: 4, TM: 4, TN: 4, BK: 16},         // 16×128
	{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 16},         // 32×64
	{WG: 128, WGM: 8, TM: 4, TN: 8, BK: 16},         // 32×128
	{WG: 256, WGM: 16, TM: 4, TN: 4, BK: 16},        // 64×64
	{WG: 256, WGM: 16, TM: 4, TN: 4, BK: 32},        // 64×64, deeper steps
	{WG: 128, WGM: 16, TM: 4, TN: 8, BK: 16},        // 64×64, 32 sums a thread
	{WG: 256, WGM: 16, TM: 8, TN: 4, BK: 16},        // 128×64
	{WG: 256, WGM: 32, TM: 4, TN: 8, BK: 16},        // 128×64, other thread shape
	{WG: 256, WGM: 16, TM: 8, TN: 8, BK: 16},        // 128×128
	{WG: 256, WGM: 8, TM: 8, TN: 8, BK: 16},         // 64×256
	{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32},         // 32×64, deeper steps
	{WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32},        // 128×64, deeper steps
	{WG: 256, WGM: 8, TM: 8, TN: 4, BK: 32},         // 64×128, deeper steps
	{WG: 256, WGM: 16, TM: 4, TN: 4, BK: 32, KS: 2}, // 64×64, K steps split over 512 threads
	{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32, KS: 2},  // 32×64, split
	{WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32, KS: 2}, // 128×64, split
	{WG: 256, WGM: 8, TM: 8, TN: 4, BK: 32, KS: 2},  // 64×128, split
	{WG: 128, WGM: 16, TM: 4, TN: 8, BK: 32, KS: 2}, // 64×64, 32 sums a thread, split
}

// splitTiles are the tiles -nibble.gemm=split times with K split across workgroups in 1 to 4
// slices (Tile.S), and -nibble.gemm=sweep in 2 to 4: DefaultTuning's for m ≤ 32 … m ≤ 256
// and beyond, the tiles where m = 128 makes the fewest workgroups.
var splitTiles = []Tile{
	{WG: 64, WGM: 4, TM: 4, TN: 4, BK: 32, KS: 2},   // 16×64, split (m ≤ 32)
	{WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32},         // 32×64 (m ≤ 64)
	{WG: 128, WGM: 16, TM: 4, TN: 8, BK: 32, KS: 2}, // 64×64, 32 sums a thread, split (m ≤ 128)
	{WG: 256, WGM: 8, TM: 8, TN: 4, BK: 32, KS: 2},  // 64×128, split (m ≤ 256)
	{WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32},        // 128×64 (beyond)
}

// splitVariants are tiles each with K in S slices across workgroups, for every S of ss.
func splitVariants(tiles []Tile, ss ...int) []Tile {
	var out []Tile
	for _, t := range tiles {
		for _, s := range ss {
			t.S = s
			out = append(out, t)
		}
	}
	return out
}

// sweepGEMV are the GEMV shapes -nibble.gemv=sweep times.
var sweepGEMV = []string{"hw32x4", "hw32x8", "hw64x4", "hw64x8", "hw128x4", "hw128x8", "hw256x4", "hw256x8", "sw128x4"}

// variant is one launch shape a case is timed with.
type variant struct {
	name string
	tu   Tuning
}

// variants lists the default tuning of the backend, then the extra shapes of the flags that
// apply to m.
func variants(tb testing.TB, def Tuning, m int) []variant {
	vs := []variant{{"default", def}}
	if m <= GEMVMaxM {
		specs := *benchGEMV
		if specs == "sweep" {
			specs = strings.Join(sweepGEMV, ",")
		}
		for _, s := range strings.Split(specs, ",") {
			if s == "" {
				continue
			}
			tu := def
			switch {
			case strings.HasPrefix(s, "hw"):
				tu.GEMVKernel = shaders.GEMVHW
			case strings.HasPrefix(s, "sw"):
				tu.GEMVKernel = shaders.GEMV
			}
			if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimLeft(s, "hsw"), "p"), "%dx%d", &tu.GEMVWorkgroup, &tu.GEMVRows); err != nil {
				tb.Fatalf("-nibble.gemv %q: want [hw|sw]WGxROWS[p]: %v", s, err)
			}
			tu.GEMVPrefetch = strings.HasSuffix(s, "p")
			vs = append(vs, variant{s, tu})
		}
		return vs
	}
	var tiles []Tile
	for _, s := range strings.Split(*benchGEMM, ",") {
		switch s {
		case "":
		case "flat":
			tu := def
			tu.Tiles = [6]Tile{}
			vs = append(vs, variant{"flat", tu})
		case "sweep":
			tiles = append(tiles, sweepTiles...)
			tiles = append(tiles, splitVariants(splitTiles, 2, 3, 4)...)
		case "split":
			tiles = append(tiles, splitVariants(splitTiles, 1, 2, 3, 4)...)
		default:
			tiles = append(tiles, parseTile(tb, s))
		}
	}
	for _, t := range tiles {
		tu := def
		t.MaxM = 1 << 30
		tu.Tiles = [6]Tile{t}
		vs = append(vs, variant{tileSpec(t), tu})
	}
	return vs
}

// parseTile reads a -nibble.gemm tile, WGMxWGNxTMxTNxBK[xKS[xS]].
func parseTile(tb testing.TB, s string) Tile {
	var t Tile
	if n, _ := fmt.Sscanf(s, "%dx%dx%dx%dx%dx%dx%d", &t.WGM, &t.WG, &t.TM, &t.TN, &t.BK, &t.KS, &t.S); n < 5 || strings.Count(s, "x") > 6 {
		tb.Fatalf("-nibble.gemm %q: want WGMxWGNxTMxTNxBK[xKS[xS]]", s)
	}
	t.WG *= t.WGM
	return t
}

// tileSpec is t as -nibble.gemm writes it: S only where K is split across workgroups, so the
// names of unsplit tiles read as before.
func tileSpec(t Tile) string {
	s := fmt.Sprintf("%dx%dx%dx%dx%dx%d", t.WGM, t.WG/t.WGM, t.TM, t.TN, t.BK, max(t.KS, 1))
	if t.S > 1 {
		s += fmt.Sprintf("x%d", t.S)
	}
	return s
}

type benchCase struct {
	m, n, k int
	f       quant.Format
}

func (c benchCase) kind() string {
	if c.m > GEMVMaxM {
		return "gemm"
	}
	return "gemv"
}

var (
	q8  = quant.Format{Bits: 8, GroupSize: 32}
	q4  = quant.Format{Bits: 4, GroupSize: 32}
	q2  = quant.Format{Bits: 2, GroupSize: 32}
	q4h = quant.Format{Bits: 4, GroupSize: 32, Scales: quant.ScaleF16}
	f32 = quant.Format{Bits: 32}
)

func benchCases(tb testing.TB) []benchCase {
	var cs []benchCase
	add := func(m, n, k int, fs ...quant.Format) {
		for _, f := range fs {
			cs = append(cs, benchCase{m, n, k, f})
		}
	}
	switch *benchSet {
	case "quick":
		add(1, 1024, 1024, f32, q8, q4, q2)
		add(32, 1024, 1024, q4)
	case "readme":
		add(1, 4096, 4096, f32, q8, q4, q4h, q2)
		add(1, 11008, 4096, f32, q8, q4, q4h, q2)
		add(1, 4096, 11008, f32, q8, q4, q2)
		add(1, 16384, 16384, q8, q4, q4h, q2)
		for _, m := range []int{16, 32, 64, 128, 256, 512} {
			add(m, 4096, 4096, q4)
		}
		add(128, 4096, 4096, f32, q8, q2)
		add(512, 4096, 4096, f32, q8, q2)
		add(128, 11008, 4096, q4)
	case "sweep":
		add(1, 4096, 4096, q8, q4, q2)
		add(1, 11008, 4096, q4)
		add(1, 16384, 16384, q8, q4, q4h, q2)
		for _, m := range []int{16, 32, 64, 128, 256, 512} {
			add(m, 4096, 4096, q4)
		}
		add(128, 4096, 4096, q8, q2)
	case "gemm":
		for _, m := range []int{16, 32, 64, 128, 256, 512} {
			add(m, 4096, 4096, q4)
		}
		for _, m := range []int{64, 128, 256, 512} {
			add(m, 4096, 4096, q8)
		}
	case "gemv":
		add(1, 4096, 4096, q8, q4, q2)
		add(1, 11008, 4096, q8, q4, q2)
		add(1, 16384, 16384, q8, q4, q4h, q2)
	case "decode":
		// A 7B decode step's GEMVs: o (q8 4096²), q, k, v as one (q8 12288×4096), gate and
		// up (q4 11008×4096, and both as one 22016-row weight), down (q4 4096×11008).
		add(1, 4096, 4096, q8)
		add(1, 12288, 4096, q8)
		add(1, 11008, 4096, q4)
		add(1, 22016, 4096, q4)
		add(1, 4096, 11008, q4)
	default:
		tb.Fatalf("-nibble.set=%q: want quick, readme, sweep, gemv, decode or gemm", *benchSet)
	}
	return cs
}

// result is one timed (case, variant), printed as a NIBBLE_BENCH line and in the summary.
type result struct {
	Bench       string  `json:"bench"`
	M           int     `json:"m"`
	N           int     `json:"n"`
	K           int     `json:"k"`
	Format      string  `json:"format"`
	Variant     string  `json:"variant"`
	Key         string  `json:"key"`
	MS          float64 `json:"ms"`
	MSWall      float64 `json:"ms_kernel_wall"`
	MSE2E       float64 `json:"ms_matmul_e2e,omitempty"`
	Timing      string  `json:"timing"`
	WeightBytes int64   `json:"weight_bytes"`
	MovedBytes  int64   `json:"moved_bytes"`
	Copies      int     `json:"copies"`
	GBps        float64 `json:"gbps"`
	PctCeiling  float64 `json:"pct_ceiling,omitempty"`
	TFLOPs      float64 `json:"tflops"`
	Check       string  `json:"check"`
	Adapter     string  `json:"adapter"`
	Software    bool    `json:"software"`
}

var (
	results     []result
	ceilingGBps float64 // read bandwidth through WebGPU, once BenchmarkReadCeiling ran
)

func emit(r result) {
	results = append(results, r)
	line, _ := json.Marshal(r)
	fmt.Printf("NIBBLE_BENCH %s\n", line)
}

// BenchmarkReadCeiling measures what a kernel can read through WebGPU on this device: a
// vectorised (vec4<u32>) grid-stride read of one buffer of at least 1 GiB on hardware (64 MiB on
// a software adapter), timestamp queries over 10 dispatches, best of a few launch shapes. GEMV
// figures are a share of this, not of the datasheet.
func BenchmarkReadCeiling(b *testing.B) {
	be := newBackend(b, Options{Timing: true})
	best, bestName, size := measureCeiling(b, be)
	b.ReportMetric(best, "GB/s")
	info := be.AdapterInfo()
	emit(result{Bench: "ceiling", Variant: bestName, Key: bestName, WeightBytes: size, MovedBytes: size, GBps: best,
		Timing: "timestamp-query over 10 dispatches in one pass, best of 2 after a warm-up", Adapter: info.Description, Software: be.Caps().Software})
}

// ceiling is the read ceiling of this run (ceilingGBps), measured on be if no benchmark did yet.
func ceiling(b *testing.B, be *Backend) float64 {
	if ceilingGBps == 0 {
		measureCeiling(b, be)
	}
	return ceilingGBps
}

// measureCeiling is BenchmarkReadCeiling's measure: the best GB/s, the launch shape that read
// it, the bytes read per dispatch. It sets ceilingGBps.
func measureCeiling(b *testing.B, be *Backend) (best float64, bestName string, size int64) {
	d := be.Device()
	size = int64(64 << 20)
	if !be.Caps().Software {
		size = min(be.maxBind, 2<<30-16)
	}
	size &^= 15
	src, err := d.CreateBuffer("ceiling source", size, webgpu.BufferStorage)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Destroy()
	for _, sh := range [][2]int{{256, 4}, {256, 8}, {256, 16}, {128, 8}} {
		wg, per := sh[0], sh[1]
		code := fmt.Sprintf(`@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(%d)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let total = arrayLength(&src);
  let stride = nwg.x * %du;
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < total; i += stride) {
    acc ^= src[i];
  }
  dst[gid.x] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
`, wg, wg)
		name := fmt.Sprintf("read-wg%d-x%d", wg, per)
		pl, err := d.CreateComputePipeline(webgpu.ShaderSource{Variant: name, Code: code}, "main", nil)
		if err != nil {
			b.Fatal(err)
		}
		groups := int(min(65535, (size/16/int64(per)+int64(wg)-1)/int64(wg)))
		dst, err := d.CreateBuffer("ceiling sink", int64(groups*wg*4), webgpu.BufferStorage)
		if err != nil {
			b.Fatal(err)
		}
		bg, err := d.CreateBindGroup(name, pl.BindGroupLayout(0), webgpu.BufferBinding{Binding: 0, Buffer: src}, webgpu.BufferBinding{Binding: 1, Buffer: dst})
		if err != nil {
			b.Fatal(err)
		}
		const reps = 10
		var gbs float64
		for try := range 3 { // the first also pays the buffer's lazy zero-fill
			be.mu.Lock()
			gpu, wall, err := be.timePass(name, func(p *webgpu.ComputePass) error {
				p.SetPipeline(pl)
				p.SetBindGroup(0, bg)
				for range reps {
					p.Dispatch(groups, 1, 1)
				}
				return nil
			})
			be.mu.Unlock()
			if err != nil {
				b.Fatal(err)
			}
			per := gpu
			if per == 0 {
				per = wall
			}
			if g := float64(size) * reps / per.Seconds() / 1e9; try > 0 && g > gbs {
				gbs = g
			}
		}
		dst.Destroy()
		b.Logf("%s: %d workgroups, %.0f GB/s", name, groups, gbs)
		if gbs > best {
			best, bestName = gbs, name
		}
	}
	ceilingGBps = best
	return best, bestName, size
}

// BenchmarkMatMul times every case of -nibble.set with the adapter's default launch shapes and
// those of -nibble.gemv / -nibble.gemm: the kernel alone (timestamp queries over many dispatches
// in one pass, weights rotated through copies beyond the last-level cache), GB/s of weight bytes
// and its share of the read ceiling, TFLOP/s, and for the default shape the end-to-end MatMul
// (write x, dispatch, read back). Every timed variant's output is checked at sampled rows and
// columns against the pure-Go reference. One JSON line per (case, variant), prefix NIBBLE_BENCH;
// on SwiftShader these are CPU figures (software: true).
func BenchmarkMatMul(b *testing.B) {
	be := newBackend(b, Options{Timing: true})
	def := be.tune
	info := be.AdapterInfo()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, c := range benchCases(b) {
		name := fmt.Sprintf("%s/%dx%dx%d/%v", c.kind(), c.m, c.n, c.k, c.f)
		b.Run(name, func(b *testing.B) {
			if done[name] {
				b.SkipNow() // the testing package may call again with a larger b.N
			}
			done[name] = true
			t := syntheticTensor(rng, c.n, c.k, c.f)
			copies := 1
			if tb := int64(t.Bytes()); *benchRotate > 0 {
				copies = int(min(16, max(1, (int64(*benchRotate)<<20+tb-1)/tb)))
			}
			ws := make([]backend.Weight, copies)
			for i := range ws {
				w, err := be.Upload(t)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Release()
				ws[i] = w
			}
			x := make([]float32, c.m*c.k)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			dst := make([]float32, c.m*c.n)
			ref := newReference(rng, t, x, c.m)
			warm := 300 * time.Millisecond // the first variant of a case follows seconds of CPU work
			var vs []variant
			for range *benchRounds {
				vs = append(vs, variants(b, def, c.m)...)
				if c.m <= GEMVMaxM && be.feat.dot4 && quant.Int8ActivationsFit(c.f) {
					vs = append(vs, a8Variants(b, def)...)
				}
			}
			var refA8 *reference
			for _, v := range vs {
				v.tu, _ = v.tu.fit(be.dev.Limits()) // as New would: a tile the device cannot run unsplit, or none
				be.mu.Lock()
				be.tune = v.tu
				be.mu.Unlock()
				key := keyFor(c.f, c.n, c.m, be.feat, v.tu)
				key.XQ = key.Kernel == shaders.GEMVA8 && v.tu.GEMVInt8Prepass
				per, wall, reps, err := timeVariant(be, ws, c.m, warm)
				if err != nil {
					b.Fatalf("%s: %v", key.Name(), err)
				}
				source := fmt.Sprintf("wall clock, median of 3 passes of %d dispatches in one submit, after %v of warm-up", reps, warm)
				if be.timing {
					source = fmt.Sprintf("timestamp-query, median of 3 passes of %d dispatches in one pass, after %v of warm-up", reps, warm)
				}
				warm = 100 * time.Millisecond
				format, want := c.f.String(), ref
				if key.Kernel == shaders.GEMVA8 {
					if refA8 == nil {
						if refA8, err = ref.int8Activations(t, x, c.m); err != nil {
							b.Fatal(err)
						}
					}
					format, want = format+"+a8", refA8
				}
				r := result{Bench: c.kind(), M: c.m, N: c.n, K: c.k, Format: format, Variant: v.name, Key: key.Name(),
					MS: per.Seconds() * 1e3, MSWall: wall.Seconds() * 1e3, Timing: source, WeightBytes: ws[0].Bytes(),
					MovedBytes: ws[0].Bytes() + int64(4*c.m*(c.k+c.n)), Copies: copies, Adapter: info.Description, Software: info.IsFallbackAdapter}
				r.GBps = float64(r.WeightBytes) / per.Seconds() / 1e9
				r.TFLOPs = 2 * float64(c.m) * float64(c.n) * float64(c.k) / per.Seconds() / 1e12
				if ceilingGBps > 0 {
					r.PctCeiling = 100 * r.GBps / ceilingGBps
				}
				r.Check = checkTimed(b, be, dst, x, ws[len(ws)-1], c.m, want)
				if r.Check != "ok" && r.Check != "skipped" {
					b.Errorf("%s %s: %s", name, key.Name(), r.Check)
				}
				if v.name == "default" {
					// End to end: write x, dispatch, read back (what a caller of MatMul sees).
					start := time.Now()
					const calls = 3
					for range calls {
						if err := be.MatMul(dst, x, ws[0], c.m); err != nil {
							b.Fatal(err)
						}
					}
					r.MSE2E = time.Since(start).Seconds() * 1e3 / calls
					b.ReportMetric(r.MS, "ms/call")
					b.ReportMetric(r.GBps, "GB/s")
					b.ReportMetric(r.TFLOPs, "TFLOP/s")
				}
				emit(r)
			}
			be.mu.Lock()
			be.tune = def
			be.mu.Unlock()
		})
	}
}

var done = map[string]bool{}

// checkTimed runs w once more on x into a poisoned dst and compares it with want at the sampled
// outputs: "ok", what is wrong, or "skipped" (-nibble.check=false).
func checkTimed(b *testing.B, be *Backend, dst, x []float32, w backend.Weight, m int, want *reference) string {
	if !*benchCheck {
		return "skipped"
	}
	for i := range dst {
		dst[i] = float32(math.NaN())
	}
	if err := be.MatMul(dst, x, w, m); err != nil {
		b.Fatal(err)
	}
	if err := want.check(dst); err != nil {
		return err.Error()
	}
	return "ok"
}

// timeVariant times the current tuning on ws: first calls until warm has passed (a GPU idle
// during the case's set-up runs at lower clocks, memory clock too, for a while after work
// resumes), then 3 passes of enough dispatches for ≥ 20 ms of GPU time each (-nibble.reps at
// least); it returns the median per call.
func timeVariant(be *Backend, ws []backend.Weight, m int, warm time.Duration) (per, wall time.Duration, reps int, err error) {
	reps = *benchReps
	start := time.Now()
	for {
		g, w, err := be.timeKernels(ws, m, reps)
		if err != nil {
			return 0, 0, 0, err
		}
		p := g
		if p == 0 {
			p = w
		}
		if p > 0 {
			reps = int(min(20000, max(int64(*benchReps), int64(20*time.Millisecond/p)+1)))
		}
		if time.Since(start) >= warm {
			break
		}
	}
	var pers, walls []time.Duration
	for range 3 {
		g, w, err := be.timeKernels(ws, m, reps)
		if err != nil {
			return 0, 0, 0, err
		}
		if g == 0 {
			g = w
		}
		pers, walls = append(pers, g), append(walls, w)
	}
	sort.Slice(pers, func(i, j int) bool { return pers[i] < pers[j] })
	sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
	return pers[1], walls[1], reps, nil
}

// reference holds the float64 products at sampled outputs: rows 0 and m−1 (and one between),
// 96 columns spread over N with the first and the last; and how far a kernel may be from each.
type reference struct {
	name        string
	rows, cols  []int
	want, bound []float64 // per (row, col)
	n, k        int
}

func newReference(rng *rand.Rand, t *quant.Tensor, x []float32, m int) *reference {
	r := &reference{name: t.Name, rows: []int{0}, n: t.N, k: t.K}
	if m > 2 {
		r.rows = append(r.rows, 1+rng.IntN(m-2))
	}
	if m > 1 {
		r.rows = append(r.rows, m-1)
	}
	r.cols = []int{0, t.N - 1}
	for range min(94, t.N) {
		r.cols = append(r.cols, rng.IntN(t.N))
	}
	sort.Ints(r.cols)
	row := make([]float32, t.K)
	r.want = make([]float64, len(r.rows)*len(r.cols))
	r.bound = make([]float64, len(r.want))
	// backendtest's f32 bound, γ·Σ|x·w| with γ = 3u + (K+1)u (f16 products are not timed here).
	const u = 0x1p-24
	gamma := 3*u + float64(t.K+1)*u
	for j, n := range r.cols {
		t.DequantizeRow(n, row)
		for i, mi := range r.rows {
			var s, a float64
			for k, wv := range row {
				p := float64(x[mi*t.K+k]) * float64(wv)
				s += p
				a += math.Abs(p)
			}
			r.want[i*len(r.cols)+j], r.bound[i*len(r.cols)+j] = s, gamma*a+1e-30
		}
	}
	return r
}

// int8Activations is the reference of the int8-activation GEMV at r's sampled outputs
// (quant.MatMulA8 over the sampled weight rows, A8Product.Bound).
func (r *reference) int8Activations(t *quant.Tensor, x []float32, m int) (*reference, error) {
	sub := &quant.Tensor{Name: t.Name, N: len(r.cols), K: t.K, Format: t.Format}
	rs, ss, zs := t.RowStride(t.K), t.Groups(t.K)*t.Format.Scales.Size(), t.ZeroStride(t.K)
	for _, n := range r.cols {
		sub.Data = append(sub.Data, t.Data[n*rs:(n+1)*rs]...)
		sub.Scales = append(sub.Scales, t.Scales[n*ss:(n+1)*ss]...)
		sub.Zeros = append(sub.Zeros, t.Zeros[n*zs:(n+1)*zs]...)
	}
	a, err := quant.QuantizeActivations(x, m, t.K, quant.ActivationBlock(t.Bits))
	if err != nil {
		return nil, err
	}
	p, err := quant.MatMulA8(a, sub)
	if err != nil {
		return nil, err
	}
	out := *r
	out.name = t.Name + " int8 activations"
	out.want, out.bound = make([]float64, len(r.want)), make([]float64, len(r.want))
	for i, mi := range r.rows {
		for j := range r.cols {
			out.want[i*len(r.cols)+j], out.bound[i*len(r.cols)+j] = p.Y[mi*sub.N+j], p.Bound(mi, j)
		}
	}
	return &out, nil
}

// check compares got (m×N) at the sampled outputs with the reference under its bound.
func (r *reference) check(got []float32) error {
	bad := 0
	var first string
	for i, mi := range r.rows {
		for j, n := range r.cols {
			g, w := float64(got[mi*r.n+n]), r.want[i*len(r.cols)+j]
			if math.IsNaN(g) || math.Abs(g-w) > r.bound[i*len(r.cols)+j] {
				if bad == 0 {
					first = fmt.Sprintf("y[%d][%d] = %g, want %g", mi, n, g, w)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d of %d sampled outputs wrong, first %s", r.name, bad, len(r.want), first)
	}
	return nil
}

// saved snapshots the variables ps point to and returns what puts them back: the tests and
// benchmarks that set the package's tuning switches restore them as they found them, so no
// default is written out a second time.
func saved[T any](ps ...*T) func() {
	vs := make([]T, len(ps))
	for i, p := range ps {
		vs[i] = *p
	}
	return func() {
		for i, p := range ps {
			*p = vs[i]
		}
	}
}

// TestMain prints the benchmark results as one table after every benchmark ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if len(results) > 0 {
		printSummary()
	}
	os.Exit(code)
}

func printSummary() {
	fmt.Println("\nNIBBLE_SUMMARY (kernel time per call; GB/s of weight bytes; % of the read ceiling)")
	if ceilingGBps > 0 {
		fmt.Printf("read ceiling: %.0f GB/s\n", ceilingGBps)
	}
	fmt.Printf("%-5s %-16s %-22s %-16s %-48s %10s %9s %6s %8s %s\n", "kind", "m×n×k", "format", "variant", "key", "ms", "GB/s", "%ceil", "TFLOP/s", "check")
	type ck struct{ kind, shape, format, variant string }
	med := map[ck][]result{}
	var order []ck
	for _, r := range results {
		if r.Bench == "ceiling" {
			continue
		}
		fmt.Printf("%-5s %-16s %-22s %-16s %-48s %10.4f %9.0f %6.1f %8.2f %s\n", r.Bench, fmt.Sprintf("%dx%dx%d", r.M, r.N, r.K),
			r.Format, r.Variant, r.Key, r.MS, r.GBps, r.PctCeiling, r.TFLOPs, r.Check)
		c := ck{r.Bench, fmt.Sprintf("%dx%dx%d", r.M, r.N, r.K), r.Format, r.Variant}
		if _, ok := med[c]; !ok {
			order = append(order, c)
		}
		med[c] = append(med[c], r)
	}
	// The median of the rounds of each (case, variant); a failed check disqualifies the variant.
	median := func(rs []result) (result, bool) {
		for _, r := range rs {
			if r.Check != "ok" && r.Check != "skipped" {
				return r, false
			}
		}
		s := append([]result(nil), rs...)
		sort.Slice(s, func(i, j int) bool { return s[i].MS < s[j].MS })
		return s[len(s)/2], true
	}
	type cs struct{ kind, shape, format string }
	best := map[cs]result{}
	var corder []cs
	for _, c := range order {
		r, ok := median(med[c])
		if !ok {
			continue
		}
		k := cs{c.kind, c.shape, c.format}
		if b, seen := best[k]; !seen || r.MS < b.MS {
			if !seen {
				corder = append(corder, k)
			}
			best[k] = r
		}
	}
	fmt.Printf("\nNIBBLE_BEST (fastest checked variant per case, median of %d rounds)\n", *benchRounds)
	for _, k := range corder {
		r := best[k]
		fmt.Printf("%-5s %-16s %-22s %-16s %10.4f ms %9.0f GB/s %6.1f%% %8.2f TFLOP/s\n", k.kind, k.shape, k.format, r.Variant, r.MS, r.GBps, r.PctCeiling, r.TFLOPs)
	}
	// The default variants as markdown: shapes down, formats across.
	for _, kind := range []string{"gemv", "gemm"} {
		var shapes, formats []string
		cell := map[[2]string]string{}
		for _, c := range order {
			if c.kind != kind || c.variant != "default" {
				continue
			}
			r, ok := median(med[c])
			if !ok {
				continue
			}
			if !slices.Contains(shapes, c.shape) {
				shapes = append(shapes, c.shape)
			}
			if !slices.Contains(formats, c.format) {
				formats = append(formats, c.format)
			}
			v := fmt.Sprintf("%.4f ms, %.0f GB/s", r.MS, r.GBps)
			if r.PctCeiling > 0 {
				v += fmt.Sprintf(" (%.0f%%)", r.PctCeiling)
			}
			if kind == "gemm" {
				v = fmt.Sprintf("%.3f ms, %.1f TFLOP/s", r.MS, r.TFLOPs)
			}
			cell[[2]string{c.shape, c.format}] = v
		}
		if len(shapes) == 0 {
			continue
		}
		fmt.Printf("\nNIBBLE_MARKDOWN %s (default variants, median of %d rounds)\n| %s | m×n×k | %s |\n|---|---|%s\n", kind, *benchRounds, kind, strings.Join(formats, " | "), strings.Repeat("---|", len(formats)))
		for _, sh := range shapes {
			row := make([]string, len(formats))
			for i, f := range formats {
				row[i] = cell[[2]string{sh, f}]
			}
			fmt.Printf("| %s | %s | %s |\n", strings.ToUpper(kind), sh, strings.Join(row, " | "))
		}
	}
}
