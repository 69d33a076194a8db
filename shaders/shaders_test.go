package shaders

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// AllKeys lists one key per kernel × format × feature combination the backend can ask for.
func allKeys() []Key {
	var ks []Key
	for _, kern := range []Kernel{GEMV, GEMM, GEMVHW, GEMMTile} {
		for _, bits := range []int{2, 4, 8, 16, 32} {
			for _, asym := range []bool{false, true} {
				for _, spv := range []bool{false, true} {
					for _, sf16 := range []bool{false, true} {
						for _, f16 := range []bool{false, true} {
							for _, sg := range []bool{false, true} {
								k := Key{Kernel: kern, Bits: bits, Asym: asym, ScalePerVec: spv, ScaleF16: sf16, F16: f16, Subgroups: sg,
									WG: 64, Rows: 2, TM: 16}
								if kern == GEMMTile {
									k.WG, k.WGM, k.TM, k.Rows, k.BK = 128, 8, 4, 8, 16
								}
								ks = append(ks, k.Normalize())
								if kern == GEMVHW {
									k.Prefetch = true
								}
								if kern.IsGEMV() {
									r := k
									r.Residual = true
									ks = append(ks, r.Normalize())
									r.Norm = true
									ks = append(ks, r.Normalize())
								}
								if kern == GEMVHW {
									sx := k
									sx.SiLUX = true
									ks = append(ks, sx.Normalize())
									sx.Residual = true
									ks = append(ks, sx.Normalize())
									// A norm's x·gain and sums written by the GEMV before it, with and without SiLU's x.
									nt := sx
									nt.NormTail, nt.Rows = true, 8
									ks = append(ks, nt.Normalize())
									nt.SiLUX = false
									ks = append(ks, nt.Normalize())
									// And the GEMVs that read it: one weight, several, SwiGLU's, the
									// cache-writing q, k, v.
									np := k
									np.Norm, np.NormPart = true, true
									ks = append(ks, np.Normalize())
									np.Weights = 3
									ks = append(ks, np.Normalize())
									np.KVWrite = true
									ks = append(ks, np.Normalize())
									np.Weights, np.KVWrite, np.SwiGLU, np.Rows = 0, false, true, 8
									ks = append(ks, np.Normalize())
									// Reading one norm and writing the next.
									np.SwiGLU, np.NormTail, np.Residual = false, true, true
									ks = append(ks, np.Normalize())
									sw := k
									sw.SwiGLU, sw.Rows = true, 8
									ks = append(ks, sw.Normalize())
									sw.Norm = true
									ks = append(ks, sw.Normalize())
									for _, nw := range []int{2, 3} {
										mw := k
										mw.Weights = nw
										ks = append(ks, mw.Normalize())
										mw.Norm = true
										ks = append(ks, mw.Normalize())
									}
									for _, f16 := range []bool{false, true} {
										kv := k
										kv.Weights, kv.Norm, kv.KVWrite, kv.KVF16 = 3, true, true, f16
										ks = append(ks, kv.Normalize())
									}
								}
								if kern == GEMMTile {
									k.KSplit = 2
								}
								k = k.Normalize()
								ks = append(ks, k)
							}
						}
					}
				}
			}
		}
	}
	// GEMVA8 takes weight codes only.
	for _, bits := range []int{2, 4, 8} {
		for _, asym := range []bool{false, true} {
			for _, sf16 := range []bool{false, true} {
				for _, sg := range []bool{false, true} {
					k := Key{Kernel: GEMVA8, Bits: bits, Asym: asym, ScaleF16: sf16, Subgroups: sg, WG: 128, Rows: 8}
					ks = append(ks, k.Normalize())
					k.Residual = true
					ks = append(ks, k.Normalize())
					k.Norm = true
					ks = append(ks, k.Normalize())
					for _, n := range []int{2, 3} {
						m := k
						m.Weights, m.Residual = n, false
						ks = append(ks, m.Normalize())
					}
					for _, rows := range []int{8, 16} {
						kv := k
						kv.Weights, kv.Residual, kv.Rows, kv.KVWrite, kv.KVF16 = 3, false, rows, true, rows == 16
						ks = append(ks, kv.Normalize())
					}
					sx := k
					sx.SiLUX, sx.Norm = true, false
					ks = append(ks, sx.Normalize())
					sx.Residual = false
					ks = append(ks, sx.Normalize())
					for _, rows := range []int{4, 8, 16} {
						sw := k
						sw.SwiGLU, sw.Residual, sw.Rows = true, false, rows
						ks = append(ks, sw.Normalize())
					}
					k.Rows = 16
					ks = append(ks, k.Normalize())
					pk := k
					pk.Persist, pk.XCap = 528, 344
					ks = append(ks, pk.Normalize())
					xq := k
					xq.XQ, xq.Norm, xq.Rows = true, false, 4
					ks = append(ks, xq.Normalize(), Key{Kernel: A8Quant, Bits: bits, Asym: asym, ScaleF16: sf16, WG: 64}.Normalize())
					// The norm's pre-pass and the GEMV reading it.
					xq.Norm = true
					ks = append(ks, xq.Normalize(), Key{Kernel: A8Quant, Bits: bits, Asym: asym, WG: 64, Norm: true}.Normalize())
					// A residual GEMV writing the next norm's blocks for codes of every width, with
					// SiLU's x, and one reading a norm's blocks while it writes the next's.
					for _, tb := range []int{2, 4, 8} {
						qt := Key{Kernel: GEMVA8, Bits: bits, Asym: asym, ScaleF16: sf16, Subgroups: sg, WG: 128, Rows: 8,
							Residual: true, NormTail: true, TailBits: tb, TailAsym: asym != (tb == 4)}
						ks = append(ks, qt.Normalize())
						qt.SiLUX = true
						ks = append(ks, qt.Normalize())
						qt.SiLUX, qt.XQ, qt.Norm = false, true, true
						ks = append(ks, qt.Normalize())
						// At 16 rows: two groups of 8 handing their outputs over.
						qt.Rows, qt.XQ, qt.Norm, qt.SiLUX = 16, false, false, true
						ks = append(ks, qt.Normalize())
						// The SwiGLU GEMV writing the down GEMV's blocks, reading a norm's blocks or not.
						for _, rows := range []int{8, 16} {
							xt := Key{Kernel: GEMVA8, Bits: bits, Asym: asym, ScaleF16: sf16, Subgroups: sg, WG: 128, Rows: rows,
								SwiGLU: true, XTail: true, TailBits: tb, TailAsym: asym != (tb == 4)}
							ks = append(ks, xt.Normalize())
							xt.XQ, xt.Norm = true, true
							ks = append(ks, xt.Normalize())
						}
					}
				}
			}
		}
	}
	// Every int8-activation GEMV also with its next span loaded ahead.
	for _, k := range ks {
		if k.Kernel == GEMVA8 && k.Persist == 0 {
			k.Prefetch = true
			ks = append(ks, k.Normalize())
		}
	}
	seen := map[Key]bool{}
	var out []Key
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func TestSourcesResolve(t *testing.T) {
	dump := os.Getenv("NIBBLE_WGSL_DUMP") // a directory: write every variant for an offline compile
	for _, k := range allKeys() {
		src, err := k.Source()
		if err != nil {
			t.Fatalf("%s: %v", k.Name(), err)
		}
		for i, l := range strings.Split(src.Code, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "#") {
				t.Errorf("%s: line %d: directive left in the code: %s", k.Name(), i+1, l)
			}
		}
		if k.Subgroups != strings.Contains(src.Code, "subgroupAdd(") {
			t.Errorf("%s: subgroupAdd present = %v", k.Name(), !k.Subgroups)
		}
		if dump != "" {
			if err := os.WriteFile(filepath.Join(dump, k.Name()+".wgsl"), []byte(src.Code), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestLocateMapsBackToFiles(t *testing.T) {
	k := Key{Kernel: GEMV, Bits: 4, ScalePerVec: true, WG: 64, Rows: 4}
	src, err := k.Source()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(src.Code, "\n")
	want, _ := files.ReadFile("gemv.wgsl")
	wantLines := strings.Split(string(want), "\n")
	for i, l := range lines {
		if !strings.Contains(l, "fn span_dot") {
			continue
		}
		f, n := src.Locate(i + 1)
		if f != "shaders/gemv.wgsl" || !strings.Contains(wantLines[n-1], "fn span_dot") {
			t.Fatalf("code line %d maps to %s:%d = %q", i+1, f, n, wantLines[n-1])
		}
		return
	}
	t.Fatal("fn span_dot not found")
}

func TestPreprocessErrors(t *testing.T) {
	defs := map[string]bool{"A": true}
	for _, bad := range []string{"#if B\n#endif", "#if A\n", "#endif", "#else", "#if A\n#else\n#else\n#endif", "#define X"} {
		if _, err := Preprocess(bad, defs); err == nil {
			t.Errorf("Preprocess(%q): want an error", bad)
		}
	}
	got, err := Preprocess("a\n#if A\nb\n#else\nc\n#endif\n#if !A\nd\n#endif", defs)
	if err != nil || strings.Join(got, "|") != "a||b||||||" {
		t.Fatalf("got %q, %v", strings.Join(got, "|"), err)
	}
}

func TestValidate(t *testing.T) {
	for _, k := range []Key{
		{Kernel: GEMV, Bits: 3, WG: 64, Rows: 4},
		{Kernel: GEMV, Bits: 4, WG: 48, Rows: 4},
		{Kernel: GEMV, Bits: 4, WG: 64, Rows: 9},
		{Kernel: GEMM, Bits: 4, WG: 64, Rows: 2, TM: 32},
		{Kernel: GEMM, Bits: 4, WG: 64, Rows: 3, TM: 16},
		{Kernel: GEMVA8, Bits: 16, WG: 128, Rows: 8},
		{Kernel: GEMVA8, Bits: 32, WG: 128, Rows: 8},
		{Kernel: GEMVA8, Bits: 4, WG: 128, Rows: 8, XQ: true, SiLUX: true},
		{Kernel: GEMVA8, Bits: 4, WG: 128, Rows: 8, Persist: 528},
		{Kernel: A8Quant, Bits: 16, WG: 64},
	} {
		if k.Validate() == nil {
			t.Errorf("%+v: want an error", k)
		}
	}
}
