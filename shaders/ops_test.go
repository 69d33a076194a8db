package shaders

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allOpKeys lists every op kernel variant, the weight gather in every storage format.
func allOpKeys() []OpKey {
	var ks []OpKey
	for f := OpFamily(0); f < numOpFamilies; f++ {
		for _, v := range f.Variants() {
			if f == OpGather && v == "weight" {
				for _, bits := range []int{2, 4, 8, 16, 32} {
					for _, asym := range []bool{false, true} {
						for _, sf16 := range []bool{false, true} {
							k := OpKey{Family: f, Variant: v, WG: 64, Bits: bits, Asym: asym, ScaleF16: sf16}.Normalize()
							if (bits == 16 || bits == 32) && (asym || sf16) {
								continue
							}
							ks = append(ks, k)
						}
					}
				}
				continue
			}
			if f == OpAttention { // always a softmax; keys and values of each storage
				for _, st := range append([]string{""}, StateFormats...) {
					for _, sm := range OpSoftmax.Variants() {
						for _, rope := range []bool{false, true} {
							ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, State: st, Softmax: sm, Rope: rope, Keys: 64})
						}
					}
				}
				ks = append(ks, OpKey{Family: f, Variant: v, WG: 512, State: "f16", Softmax: "masked", Rope: true, Keys: 2048})
				ks = append(ks, OpKey{Family: f, Variant: v, WG: 128, State: "f16", Softmax: "masked", Rope: true, Keys: 32, Aligned: true})
				ks = append(ks, OpKey{Family: f, Variant: v, WG: 512, State: "f16", Softmax: "plain", Rope: true, Keys: 128, Aligned: true, Warm: true})
				continue
			}
			if f == OpMatMul && (v == "ab_chunks" || v == "ab_short" || v == "ab_short_ahead") { // a softmax product only
				for _, st := range append([]string{""}, StateFormats...) {
					for _, sm := range OpSoftmax.Variants() {
						ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, State: st, Softmax: sm})
					}
				}
				continue
			}
			ks = append(ks, OpKey{Family: f, Variant: v, WG: 64})
			if f == OpStateWrite {
				ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, Pair: true}, OpKey{Family: f, Variant: v, WG: 64, Rope: true},
					OpKey{Family: f, Variant: v, WG: 64, Pair: true, Rope: true})
			}
			if f == OpMatMul && v != "ab_merge" {
				for _, st := range append([]string{""}, StateFormats...) {
					if st != "" {
						ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, State: st})
					}
					if v == "ab" || v == "ab_split" {
						for _, sm := range OpSoftmax.Variants() {
							ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, State: st, Softmax: sm})
						}
					}
					ks = append(ks, OpKey{Family: f, Variant: v, WG: 64, State: st, Rope: true})
				}
			}
		}
	}
	return ks
}

// TestOpSourcesResolve builds every op variant; with NIBBLE_WGSL_DUMP set (a directory) it
// writes them out, for an offline compile with naga or tint.
func TestOpSourcesResolve(t *testing.T) {
	dump := os.Getenv("NIBBLE_WGSL_DUMP")
	names := map[string]bool{}
	for _, k := range allOpKeys() {
		src, err := k.Source()
		if err != nil {
			t.Fatalf("%s: %v", k.Name(), err)
		}
		if names[k.Name()] {
			t.Errorf("two variants named %s", k.Name())
		}
		names[k.Name()] = true
		for i, l := range strings.Split(src.Code, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "#") {
				t.Errorf("%s: line %d: directive left in the code: %s", k.Name(), i+1, l)
			}
		}
		if f, _ := src.Locate(len(strings.Split(src.Code, "\n")) - 2); f != "shaders/ops_"+k.Family.String()+".wgsl" {
			t.Errorf("%s: last line maps to %s", k.Name(), f)
		}
		if dump != "" {
			if err := os.WriteFile(filepath.Join(dump, k.Name()+".wgsl"), []byte(src.Code), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestOpValidate(t *testing.T) {
	for _, k := range []OpKey{
		{Family: OpUnary, Variant: "softmax", WG: 64},
		{Family: OpNorm, Variant: "rmsnorm", WG: 48},
		{Family: OpGather, Variant: "weight", WG: 64, Bits: 3},
		{Family: numOpFamilies, Variant: "x", WG: 64},
		{Family: OpMatMul, Variant: "abt", WG: 64, State: "f32"},
		{Family: OpMatMul, Variant: "abt", WG: 64, State: "q4"},
		{Family: OpMatMul, Variant: "abt_split", WG: 64, Softmax: "masked"},
		{Family: OpMatMul, Variant: "abt_group", WG: 64, Softmax: "plain"},
		{Family: OpMatMul, Variant: "abt_group", WG: 1024},
		{Family: OpMatMul, Variant: "ab", WG: 64, Softmax: "exp"},
		{Family: OpMatMul, Variant: "ab_chunks", WG: 64, State: "f16"},
		{Family: OpMatMul, Variant: "ab_chunks", WG: 1024, Softmax: "plain"},
		{Family: OpMatMul, Variant: "ab_merge", WG: 16},
		{Family: OpMatMul, Variant: "ab_short", WG: 64, State: "f16"},
		{Family: OpMatMul, Variant: "ab_short", WG: 1024, Softmax: "plain"},
		{Family: OpMatMul, Variant: "ab_short", WG: 16, Softmax: "plain"},
		{Family: OpSoftmax, Variant: "masked", WG: 64, Softmax: "masked"},
		{Family: OpMatMul, Variant: "ab", WG: 64, Softmax: "masked", Rope: true},
		{Family: OpAttention, Variant: "decode", WG: 64, Softmax: "masked"},            // no Keys
		{Family: OpAttention, Variant: "decode", WG: 64, Softmax: "masked", Keys: 100}, // not a power of two
		{Family: OpAttention, Variant: "decode", WG: 32, Softmax: "masked", Keys: 64},  // one output group
		{Family: OpAttention, Variant: "decode", WG: 64, Keys: 64},                     // no softmax
		{Family: OpAttention, Variant: "decode", WG: 64, State: "q4", Softmax: "plain", Keys: 64},
		{Family: OpAttention, Variant: "decode", WG: 1024, Softmax: "plain", Keys: 2048}, // 16.5 KiB
	} {
		if k.Validate() == nil {
			t.Errorf("%s: want an error", k.Name())
		}
	}
}
