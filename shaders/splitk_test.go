package shaders

import (
	"strings"
	"testing"
)

// TestSplitKKeys: one slice of K is the unsplit kernel (same key, same code); slices add the
// KSLICES code and a name suffix; the reduction's key keeps only what it uses.
func TestSplitKKeys(t *testing.T) {
	for _, bits := range []int{2, 4, 32} {
		base := Key{Kernel: GEMMTile, Bits: bits, Asym: bits == 2, WG: 128, WGM: 8, TM: 4, Rows: 4, BK: 32, KSplit: 2}
		one := base
		one.KSlices = 1
		if one.Normalize() != base.Normalize() {
			t.Errorf("%s: KSlices 1 normalizes to %+v, want the unsplit key", base.Name(), one.Normalize())
		}
		a, err := base.Source()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(a.Code, "const SLICES") || strings.Contains(a.Code, "slice * params.m") {
			t.Errorf("%s: unsplit code has the split's lines", base.Name())
		}
		split := base
		split.KSlices = 3
		src, err := split.Source()
		if err != nil {
			t.Fatalf("%s: %v", split.Name(), err)
		}
		if !strings.Contains(src.Code, "const SLICES: u32 = 3u;") || !strings.Contains(src.Code, "slice * params.m") || !strings.HasSuffix(split.Name(), "-sk3") {
			t.Errorf("%s: split code or name lacks its slices", split.Name())
		}
	}
	r := Key{Kernel: GEMMReduce, Bits: 4, Asym: true, ScaleF16: true, WG: 256, Rows: 8, TM: 4, KSlices: 4}.Normalize()
	if r != (Key{Kernel: GEMMReduce, Bits: 32, WG: 256, KSlices: 4}) || r.Name() != "gemm-reduce-f32-wg256-sk4" {
		t.Errorf("reduce key %+v (%s)", r, r.Name())
	}
	src, err := r.Source()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(src.Code, "const SLICES: u32 = 4u;") || !strings.Contains(src.Code, "var<storage, read> part") {
		t.Errorf("%s: code lacks SLICES or part", r.Name())
	}
	for _, k := range []Key{
		{Kernel: GEMMReduce, WG: 256, KSlices: 1},
		{Kernel: GEMMReduce, WG: 200, KSlices: 2},
		{Kernel: GEMMTile, Bits: 4, WG: 128, WGM: 8, TM: 4, Rows: 4, BK: 32, KSlices: maxKSlices + 1},
	} {
		if k.Normalize().Validate() == nil {
			t.Errorf("%+v: want an error", k)
		}
	}
}
