package gpu

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

func TestLayoutPadsRowsTo16Bytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range backendtest.AllFormats() {
		for _, k := range []int{17, 300, 1000, 4096} {
			q, err := quant.Quantize("t", backendtest.RandomWeights(rng, 3, k), 3, k, f, quant.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := newLayout(q)
			if l.rowBytes%RowAlign != 0 || l.rowBytes < l.rowStride || l.rowBytes-l.rowStride >= RowAlign {
				t.Fatalf("%v K=%d: rowBytes %d for stride %d", f, k, l.rowBytes, l.rowStride)
			}
			if l.kp < k || l.kp%4 != 0 || l.kp*f.Bits != l.rowBytes*8 {
				t.Fatalf("%v K=%d: kp %d", f, k, l.kp)
			}
			p := padRows(q.Data, 0, 3, l.rowStride, l.rowBytes)
			for r := 0; r < 3; r++ {
				row := p[r*l.rowBytes : (r+1)*l.rowBytes]
				if !bytes.Equal(row[:l.rowStride], q.Data[r*l.rowStride:(r+1)*l.rowStride]) {
					t.Fatalf("%v K=%d: row %d changed", f, k, r)
				}
				for _, b := range row[l.rowStride:] {
					if b != 0 {
						t.Fatalf("%v K=%d: padding not zero", f, k)
					}
				}
			}
		}
	}
}

func TestPlanChunks(t *testing.T) {
	q, _ := quant.Quantize("t", make([]float32, 130*1000), 130, 1000, quant.Format{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 16, Scales: quant.ScaleF16}, quant.Options{})
	l := newLayout(q)
	cs, err := planChunks(l, 4096, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, c := range cs {
		if c.r0 != next || c.r1 <= c.r0 {
			t.Fatalf("chunks not contiguous: %v", cs)
		}
		next = c.r1
		rows := int64(c.r1 - c.r0)
		for _, b := range []int64{rows * int64(l.rowBytes), (rows*int64(l.scaleBytes) + 3) &^ 3, rows * int64(l.zeroBytes)} {
			if b > 4096 {
				t.Fatalf("chunk %v holds %d bytes > 4096", c, b)
			}
		}
	}
	if next != 130 || len(cs) < 30 {
		t.Fatalf("chunks %v", cs)
	}
	if cs, _ := planChunks(l, 1<<30, 7); len(cs) != 19 {
		t.Fatalf("dispatch cap of 7 rows: %d chunks, want 19", len(cs))
	}
	if _, err := planChunks(l, 512, 1<<20); err == nil {
		t.Fatal("a row larger than the binding: want an error")
	}
}

func TestKeyChoice(t *testing.T) {
	feat := features{subgroups: true}
	if k := keyFor(quant.Q4, 4096, 1, feat, DefaultTuning); k.Kernel != shaders.GEMVHW || !k.Subgroups || !k.ScalePerVec {
		t.Fatalf("m=1: %s", k.Name())
	}
	if k := keyFor(quant.Q4, 4096, 1, feat, SoftwareTuning); k.Kernel != shaders.GEMV || !k.Subgroups || !k.ScalePerVec {
		t.Fatalf("m=1 software: %s", k.Name())
	}
	if k := keyFor(quant.Q4, 4096, GEMVMaxM+1, feat, DefaultTuning); k.Kernel != shaders.GEMMTile || k.Subgroups {
		t.Fatalf("m=%d: %s", GEMVMaxM+1, k.Name())
	}
	if k := keyFor(quant.Q4, 4096, GEMVMaxM+1, feat, SoftwareTuning); k.Kernel != shaders.GEMM || k.Subgroups {
		t.Fatalf("m=%d software: %s", GEMVMaxM+1, k.Name())
	}
	// Each tile serves the m up to its MaxM; m past the last MaxM takes the last tile.
	lo := GEMVMaxM + 1
	for _, tl := range DefaultTuning.Tiles {
		for _, m := range []int{lo, tl.MaxM} {
			if got := DefaultTuning.tileFor(m); got != tl {
				t.Errorf("m=%d: tile %+v, want %+v", m, got, tl)
			}
		}
		lo = tl.MaxM + 1
	}
	if got := DefaultTuning.tileFor(1 << 31); got != DefaultTuning.Tiles[len(DefaultTuning.Tiles)-1] {
		t.Errorf("m=2³¹: tile %+v, want the last", got)
	}
	a := keyFor(quant.Format{Bits: 32, GroupSize: 64, Scales: quant.ScaleF16}, 4096, 1, feat, DefaultTuning)
	b := keyFor(quant.Format{Bits: 32}, 4096, 1, feat, DefaultTuning)
	if a != b {
		t.Fatalf("f32 weights: %s != %s: unused fields must not split the cache", a.Name(), b.Name())
	}
	for _, f := range backendtest.AllFormats() {
		for _, m := range []int{1, 19} {
			if err := keyFor(f, 4096, m, features{f16: true, subgroups: true, dot4: true}, DefaultTuning).Validate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if x, y := grid(keyFor(quant.Q4, 4096, 3, feat, DefaultTuning), 130, 3); x != (130+DefaultTuning.GEMVRows-1)/DefaultTuning.GEMVRows || y != 3 {
		t.Fatalf("gemv grid %d×%d", x, y)
	}
	sw := SoftwareTuning
	if x, y := grid(keyFor(quant.Q4, 4096, 19, feat, sw), 130, 19); x != (130+sw.GEMMWorkgroup*sw.GEMMRows-1)/(sw.GEMMWorkgroup*sw.GEMMRows) || y != (19+sw.TM-1)/sw.TM {
		t.Fatalf("gemm grid %d×%d", x, y)
	}
	k := keyFor(quant.Q4, 4096, 19, feat, DefaultTuning)
	bm, bn, _ := k.Tile()
	if x, y := grid(k, 130, 19); x != (130+bn-1)/bn || y != max(1, k.KSlices)*((19+bm-1)/bm) { // K's slices along y
		t.Fatalf("gemm-tile %s grid %d×%d", k.Name(), x, y)
	}
}

// TestKeyChoiceInt8 checks that int8 activations are opt-in, apply to GEMV only, to formats
// whose groups are whole activation blocks and where the device has packed dot products, and
// keep the graph's fused variants (Residual, Norm) on the A8 kernel.
func TestKeyChoiceInt8(t *testing.T) {
	feat := features{subgroups: true, dot4: true}
	for _, tu := range []Tuning{DefaultTuning, SoftwareTuning} {
		if tu.GEMVInt8 {
			t.Fatalf("%+v: int8 activations on by default", tu)
		}
		a8 := tu
		a8.GEMVInt8 = true
		for _, f := range backendtest.AllFormats() {
			for _, m := range []int{1, GEMVMaxM, GEMVMaxM + 1} {
				k := keyFor(f, 4096, m, feat, a8)
				want := m <= GEMVMaxM && quant.Int8ActivationsFit(f)
				if (k.Kernel == shaders.GEMVA8) != want {
					t.Errorf("%v m=%d: %s, want A8 %v", f, m, k.Name(), want)
				}
				if k.Kernel == shaders.GEMVA8 && (k.WG != tu.GEMVWorkgroup || k.Rows != tu.GEMVRows || !k.Subgroups) {
					t.Errorf("%v: %s, want the tuning's %d×%d with subgroups", f, k.Name(), tu.GEMVWorkgroup, tu.GEMVRows)
				}
				if err := k.Validate(); err != nil {
					t.Error(err)
				}
				if off := keyFor(f, 4096, m, feat, tu); off.Kernel == shaders.GEMVA8 {
					t.Errorf("%v m=%d: %s without GEMVInt8", f, m, off.Name())
				}
				if k.Kernel == shaders.GEMVA8 {
					k.Residual, k.Norm = true, true
					if n := k.Normalize(); !n.Residual || !n.Norm {
						t.Errorf("%s: the A8 kernel drops Residual or Norm", n.Name())
					}
				}
			}
		}
		if k := keyFor(quant.Q4, 4096, 1, features{subgroups: true}, a8); k.Kernel == shaders.GEMVA8 {
			t.Errorf("no packed dot products: %s", k.Name())
		}
		// Its own launch shape where set, the GEMV's otherwise; the f32 GEMV keeps its own.
		a8.GEMVInt8Workgroup, a8.GEMVInt8Rows = 64, 16
		if k := keyFor(quant.Q4, 4096, 1, feat, a8); k.WG != 64 || k.Rows != 16 || k.Validate() != nil {
			t.Errorf("GEMVInt8 64×16: %s", k.Name())
		}
		if k := keyFor(quant.Format{Bits: 4, GroupSize: 16}, 4096, 1, feat, a8); k.WG != tu.GEMVWorkgroup || k.Rows != tu.GEMVRows {
			t.Errorf("f32 activations under GEMVInt8 64×16: %s", k.Name())
		}
		// Large int4/int2 weights take the wide shape where the tuning has one; int8 never.
		if w := tu.GEMVInt8Wide; w.WG > 0 {
			a8 := tu
			a8.GEMVInt8 = true
			for _, c := range []struct {
				f    quant.Format
				n    int
				wide bool
			}{{quant.Q4, w.MinN, true}, {quant.Format{Bits: 2, GroupSize: 32}, 16384, true}, {quant.Q4, w.MinN - 1, false}, {quant.Format{Bits: 8, GroupSize: 32}, 16384, false}} {
				k := keyFor(c.f, c.n, 1, feat, a8)
				if (k.WG == w.WG && k.Rows == w.Rows) != c.wide || k.Validate() != nil {
					t.Errorf("%v n=%d: %s, want the wide shape %v", c.f, c.n, k.Name(), c.wide)
				}
			}
		}
		// The narrow shape takes the int4/int2 weights the wide one does not; int8 keeps the
		// plain one.
		if w := tu.GEMVInt8Wide; w.WG > 0 {
			nt := tu
			nt.GEMVInt8, nt.GEMVInt8Narrow = true, A8Wide{MaxBits: 4, WG: 256, Rows: 4}
			for _, c := range []struct {
				f         quant.Format
				n, wg, rs int
			}{{quant.Q4, w.MinN - 1, 256, 4}, {quant.Q4, w.MinN, w.WG, w.Rows}, {quant.Format{Bits: 8, GroupSize: 32}, 4096, tu.GEMVWorkgroup, tu.GEMVRows}} {
				if k := keyFor(c.f, c.n, 1, feat, nt); k.WG != c.wg || k.Rows != c.rs || k.Validate() != nil {
					t.Errorf("narrow shape 256×4, %v n=%d: %s, want %d×%d", c.f, c.n, k.Name(), c.wg, c.rs)
				}
			}
			if r := nt.rowsPerWorkgroup(); r > 4 {
				t.Errorf("rowsPerWorkgroup %d with a 4-row narrow shape", r)
			}
		}
		if r := a8.rowsPerWorkgroup(); r > tu.rowsPerWorkgroup() {
			t.Errorf("rowsPerWorkgroup %d with 16-row A8, %d without", r, tu.rowsPerWorkgroup())
		}
	}
}

// TestA8Persist checks the persistent int8-activation GEMV's keys (its workgroup count and x's
// room in blocks: 32 activations a block for int4 and int2 codes, 16 for int8; none with x
// quantized ahead), its grid (at most that many workgroups along the rows) and fit, which
// shrinks x's room to the device's workgroup memory or drops the launch.
func TestA8Persist(t *testing.T) {
	feat := features{subgroups: true, dot4: true}
	tu := DefaultTuning
	tu.GEMVInt8 = true
	tu.GEMVInt8Persist = A8Persist{Groups: 528, MaxK: 11008}
	for _, c := range []struct {
		f          quant.Format
		n, xcap, x int
	}{{quant.Q4, 4096, 344, 512}, {quant.Format{Bits: 8, GroupSize: 32}, 4096, 688, 512}, {quant.Q4, 11008, 344, 528}, {quant.Format{Bits: 2, GroupSize: 32}, 16384, 344, 528}} {
		k := keyFor(c.f, c.n, 1, feat, tu)
		if k.Persist != 528 || k.XCap != c.xcap || k.Validate() != nil {
			t.Errorf("%v n=%d: %s, want 528 workgroups and room for %d blocks", c.f, c.n, k.Name(), c.xcap)
		}
		if x, y := grid(k, c.n, 1); x != c.x || y != 1 {
			t.Errorf("%s over %d rows: grid %d×%d, want %d×1", k.Name(), c.n, x, y, c.x)
		}
	}
	if k := (shaders.Key{Kernel: shaders.GEMVA8, Bits: 4, WG: 64, Rows: 16, Persist: 2, XQ: true}).Normalize(); k.Persist != 0 || k.XCap != 0 {
		t.Errorf("Normalize kept Persist with XQ: %s", k.Name())
	}
	// 11008 int8 activations take 688·28 B of workgroup memory beside the reduction's.
	big := webgpu.Limits{MaxComputeWorkgroupStorageSize: 49152, MaxComputeInvocationsPerWorkgroup: 1024, MaxComputeWorkgroupSizeX: 1024}
	if got, why := tu.fit(big); got.GEMVInt8Persist != tu.GEMVInt8Persist || why != "" {
		t.Errorf("49152 B: %+v (%q), want it unchanged", got.GEMVInt8Persist, why)
	}
	small := webgpu.Limits{MaxComputeWorkgroupStorageSize: 16384, MaxComputeInvocationsPerWorkgroup: 256, MaxComputeWorkgroupSizeX: 256}
	got, why := tu.fit(small)
	p := got.GEMVInt8Persist
	if p.Groups != 528 || p.MaxK >= 11008 || p.MaxK <= 0 || why == "" {
		t.Errorf("16384 B: %+v (%q), want x's room shrunk", p, why)
	}
	for _, bits := range []int{2, 4, 8} {
		for _, wg := range []int{64, 128} {
			k := p.key(shaders.Key{Kernel: shaders.GEMVA8, Bits: bits, WG: wg, Norm: true})
			if b := k.WorkgroupBytes(); b > small.MaxComputeWorkgroupStorageSize {
				t.Errorf("%s: %d B of workgroup memory on a 16384 B device", k.Name(), b)
			}
		}
	}
	tiny := webgpu.Limits{MaxComputeWorkgroupStorageSize: 4096, MaxComputeInvocationsPerWorkgroup: 256, MaxComputeWorkgroupSizeX: 256}
	if got, _ := tu.fit(tiny); got.GEMVInt8Persist != (A8Persist{}) {
		t.Errorf("4096 B: %+v, want no persistent launch", got.GEMVInt8Persist)
	}
}

func TestPadX(t *testing.T) {
	dst := []float32{9, 9, 9, 9, 9, 9, 9, 9}
	padX(dst, []float32{1, 2, 3, 4, 5, 6}, 2, 3, 4)
	want := []float32{1, 2, 3, 0, 4, 5, 6, 0}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("got %v, want %v", dst, want)
		}
	}
}

func TestTuningForAdapter(t *testing.T) {
	for _, c := range []struct {
		info webgpu.AdapterInfo
		want Tuning
	}{
		{webgpu.AdapterInfo{Vendor: "nvidia", Architecture: "hopper"}, DefaultTuning},
		{webgpu.AdapterInfo{Vendor: "apple", Architecture: "metal-3"}, DefaultTuning},
		{webgpu.AdapterInfo{}, DefaultTuning},
		{webgpu.AdapterInfo{IsFallbackAdapter: true}, SoftwareTuning},
		{webgpu.AdapterInfo{Vendor: "google", Architecture: "swiftshader"}, SoftwareTuning},
		{webgpu.AdapterInfo{Description: "llvmpipe (LLVM 15.0.6, 256 bits)"}, SoftwareTuning},
		{webgpu.AdapterInfo{Device: "Lavapipe"}, SoftwareTuning},
	} {
		if got := tuningFor(c.info); got != c.want {
			t.Errorf("%v: %+v, want %+v", c.info, got, c.want)
		}
	}
	if SoftwareTuning == DefaultTuning {
		t.Error("SoftwareTuning equals DefaultTuning: the adapter class would choose nothing")
	}
	// The hardware tiles fit WebGPU's default limits' invocations and a desktop GPU's
	// workgroup memory; with the default 16 KiB they fall back to the GEMM without tiles.
	desk := webgpu.Limits{MaxComputeWorkgroupStorageSize: 32768, MaxComputeInvocationsPerWorkgroup: 1024, MaxComputeWorkgroupSizeX: 1024}
	if tu, why := DefaultTuning.fit(desk); tu != DefaultTuning || why != "" {
		t.Errorf("DefaultTuning does not fit %+v: %s", desk, why)
	}
	small := webgpu.Limits{MaxComputeWorkgroupStorageSize: 1024, MaxComputeInvocationsPerWorkgroup: 256, MaxComputeWorkgroupSizeX: 256}
	if tu, why := DefaultTuning.fit(small); tu.Tiles[0].set() || why == "" {
		t.Errorf("1 KiB of workgroup memory: tiles kept (%+v)", tu.Tiles)
	}
	split := Tuning{Tiles: [6]Tile{{MaxM: 1 << 30, WG: 256, WGM: 16, TM: 4, TN: 4, BK: 32, KS: 2}}}
	base := webgpu.Limits{MaxComputeWorkgroupStorageSize: 16384, MaxComputeInvocationsPerWorkgroup: 256, MaxComputeWorkgroupSizeX: 256}
	if tu, why := split.fit(base); tu.Tiles[0].KS != 1 || !tu.Tiles[0].set() || why == "" {
		t.Errorf("512 threads on a 256-thread device: %+v (%s), want the tile unsplit", tu.Tiles[0], why)
	}
	for _, tu := range []Tuning{DefaultTuning, SoftwareTuning} {
		for _, f := range backendtest.AllFormats() {
			for _, m := range []int{1, GEMVMaxM, GEMVMaxM + 1} {
				if err := keyFor(f, 4096, m, features{f16: true, subgroups: true, dot4: true}, tu).Validate(); err != nil {
					t.Errorf("%+v: %v", tu, err)
				}
			}
		}
	}
}

// TestParamBlockMatchesWGSL checks that paramBlock has as many words as decode.wgsl's struct
// Params, and that the group shift is a shift only where a shift equals the division.
func TestParamBlockMatchesWGSL(t *testing.T) {
	src, err := os.ReadFile("../../../shaders/decode.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.SplitN(strings.SplitN(string(src), "struct Params {", 2)[1], "}", 2)[0]
	if words := strings.Count(body, ": u32,") + strings.Count(body, ": f32,"); int64(words)*4 != paramBytes {
		t.Fatalf("struct Params has %d 32-bit fields, paramBlock %d bytes", words, paramBytes)
	}
	if paramBytes%16 != 0 {
		t.Fatalf("paramBytes %d: a uniform block is a multiple of 16 bytes", paramBytes)
	}
	for _, g := range []int{1, 8, 16, 32, 64, 128, 24, 100, 1000, 4096, 11008} {
		s := groupShift(g)
		for _, k := range []int{0, 7, 31, 32, 33, 1023, 4095, 11007} {
			if s < 32 && k>>s != k/g {
				t.Fatalf("group %d: shift %d gives %d for k %d, division %d", g, s, k>>s, k, k/g)
			}
		}
		if (s == 32) != (g&(g-1) != 0) {
			t.Fatalf("group %d: shift %d", g, s)
		}
	}
}
