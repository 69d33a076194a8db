//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// swiGLUN, swiGLUK: N ragged for every row count (not a multiple of 2, 4 or 8 rows a weight),
// K whole device rows of int4 and int8 (int2's pads to 192: nothing fuses).
const swiGLUN, swiGLUK, swiGLUEps = 37, 160, 1e-5

// swiGLUGraph is SiLU(x·gateᵀ)·(x·upᵀ) for m = 1 and 3, on x as it is and on an RMS norm of
// it: inputs gain, then x1, x3; outputs plain m=1, normed m=1, plain m=3, normed m=3.
func swiGLUGraph(g *graph.Graph) error {
	gain := g.Input("gain", graph.Float32, swiGLUK)
	var outs []graph.Value
	for _, m := range []int{1, 3} {
		x := g.Input(fmt.Sprint("x", m), graph.Float32, m, swiGLUK)
		for _, in := range []graph.Value{x, g.RMSNorm(fmt.Sprint("norm", m), x, gain, swiGLUEps)} {
			gate := g.Linear(fmt.Sprintf("gate%d", in), in, g.Weight("wg", swiGLUN, swiGLUK), graph.None)
			up := g.Linear(fmt.Sprintf("up%d", in), in, g.Weight("wu", swiGLUN, swiGLUK), graph.None)
			outs = append(outs, g.Mul(fmt.Sprintf("swiglu%d", in), g.SiLU(fmt.Sprintf("silu%d", in), gate), up))
		}
	}
	return g.Output(outs...)
}

// swiGLUs counts the SwiGLU GEMVs of a compiled program and their pipelines' kernel.
func swiGLUs(t *testing.T, b *Backend, g *graph.Graph, ws map[string]*quant.Tensor) (int, map[shaders.Kernel]bool) {
	t.Helper()
	prog, err := b.Compile(g, uploadAll(t, b, ws))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	kernels := map[shaders.Kernel]bool{}
	for _, s := range prog.(*program).steps {
		if s.mm != nil && s.mm.key.SwiGLU {
			kernels[s.mm.key.Kernel] = true
		}
	}
	return len(prog.(*program).plan.swiglus), kernels
}

// TestGraphSwiGLU checks the SwiGLU GEMV (swiglu.go, gemv_hw.wgsl SWIGLU: 4 gate rows and 4 up
// rows a workgroup) against the cpu, on poisoned arenas (forced on: SwiftShader is a software
// adapter): m = 1 and 3, on x and on an RMS norm's input, N = 37 (ragged), in each fusion
// format; only where x is read as it is (not int2's padded K) does it fuse.
func TestGraphSwiGLU(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&gemvNormF32))
	gemvNormF32 = true // the SwiGLU GEMV on a norm's input with the norm inside
	forceSwiGLU = true
	t.Cleanup(func() { forceSwiGLU = false })
	tu := DefaultTuning
	rng := rand.New(rand.NewPCG(17, 18))
	for _, noSG := range []bool{false, true} {
		b := newBackend(t, Options{Tuning: &tu, NoSubgroups: noSG})
		for _, f := range fusionFormats {
			t.Run(fmt.Sprintf("nosubgroups=%v/%v", noSG, f), func(t *testing.T) {
				swiGLUHW(t, b, rng, f)
			})
		}
	}
}

// swiGLUHW is one case of TestGraphSwiGLU.
func swiGLUHW(t *testing.T, b *Backend, rng *rand.Rand, f quant.Format) {
	ws := map[string]*quant.Tensor{"wg": quantized(t, "wg", rng, swiGLUN, swiGLUK, f), "wu": quantized(t, "wu", rng, swiGLUN, swiGLUK, f)}
	var g *graph.Graph
	checkLocal(t, b, "swiglu "+f.String(), func(gr *graph.Graph, w map[string]*quant.Tensor) error {
		g, w["wg"], w["wu"] = gr, ws["wg"], ws["wu"]
		return swiGLUGraph(gr)
	}, func(rng *rand.Rand) []graph.Tensor {
		return []graph.Tensor{normalInput(swiGLUK)(rng), normalInput(1, swiGLUK)(rng), normalInput(3, swiGLUK)(rng)}
	})
	n, kernels := swiGLUs(t, b, g, ws)
	if want := map[bool]int{true: 4}[f.Bits != 2]; n != want || (n > 0) != kernels[shaders.GEMVHW] {
		t.Errorf("%d SwiGLU GEMVs (kernels %v), want %d on gemv-hw", n, kernels, want)
	}
}

// TestGraphSwiGLUA8 checks the SwiGLU GEMV on gemv_a8.wgsl (int8 activations) at 8 rows a
// workgroup (4 of each weight, one reduction) and 16 (8 of each, the gate's group reduced
// first) on poisoned arenas, against the reference: g and u each quant.MatMulA8 of x (x·gain
// with the norm, times 1/√(mean(x²) + eps)) within TestGraphA8's bounds e_g, e_u, and the
// output within |SiLU'|·e_g·(|u| + e_u) + |SiLU(g)|·e_u (|SiLU'| ≤ 1.1) plus the GPU's own
// SiLU·mul roundings, a relative ρ (a8SiLUProduct's) of the product.
func TestGraphSwiGLUA8(t *testing.T) {
	poisoned(t)
	forceSwiGLU = true
	t.Cleanup(func() { forceSwiGLU = false })
	rows16 := DefaultTuning
	rows16.GEMVInt8Workgroup, rows16.GEMVInt8Rows = 64, 16
	// 16 rows, two workgroups looping over the row groups with x in workgroup memory.
	persist := rows16
	persist.GEMVInt8Persist = A8Persist{Groups: 2, MaxK: swiGLUK}
	rng := rand.New(rand.NewPCG(19, 20))
	defer saved(&a8NormPrepass)()
	for ti, tu := range []Tuning{DefaultTuning, rows16, rows16, persist, rows16} {
		noSG := ti == 2
		a8NormPrepass = ti == 4 // the norm's x·gain quantized by a pre-pass
		b := newBackend(t, Options{Int8Activations: true, Tuning: &tu, NoSubgroups: noSG})
		for _, f := range []quant.Format{quant.Q4, {Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16}} {
			t.Run(fmt.Sprintf("rows%d/nosubgroups=%v/persist=%d/normpre=%v/%v", max(tu.GEMVInt8Rows, tu.GEMVRows), noSG, tu.GEMVInt8Persist.Groups, a8NormPrepass, f), func(t *testing.T) {
				ws := map[string]*quant.Tensor{"wg": quantized(t, "wg", rng, swiGLUN, swiGLUK, f), "wu": quantized(t, "wu", rng, swiGLUN, swiGLUK, f)}
				g := graph.New("swiglu a8")
				if err := swiGLUGraph(g); err != nil {
					t.Fatal(err)
				}
				if n, kernels := swiGLUs(t, b, g, ws); n != 4 || !kernels[shaders.GEMVA8] {
					t.Fatalf("%d SwiGLU GEMVs (kernels %v), want 4 on gemv-a8", n, kernels)
				}
				prog, err := b.Compile(g, uploadAll(t, b, ws))
				if err != nil {
					t.Fatal(err)
				}
				defer prog.Release()
				in := []graph.Tensor{normalInput(swiGLUK)(rng), normalInput(1, swiGLUK)(rng), normalInput(3, swiGLUK)(rng)}
				out, err := prog.Run(context.Background(), in)
				if err != nil {
					t.Fatal(err)
				}
				for o, c := range []struct {
					m    int
					norm bool
				}{{1, false}, {1, true}, {3, false}, {3, true}} {
					gain := in[0].F32
					if !c.norm {
						gain = nil
					}
					checkSwiGLUA8(t, fmt.Sprintf("output %d (m %d, norm %v)", o, c.m, c.norm), in[1+o/2].F32, gain, c.m, f, ws, out[o].F32)
				}
			})
		}
	}
}

// checkSwiGLUA8 compares got with SiLU(g)·u under TestGraphSwiGLUA8's bound; gain nil: no norm.
func checkSwiGLUA8(t *testing.T, name string, x, gain []float32, m int, f quant.Format, ws map[string]*quant.Tensor, got []float32) {
	t.Helper()
	g, eg := a8Linear(t, x, gain, m, f, ws["wg"])
	u, eu := a8Linear(t, x, gain, m, f, ws["wu"])
	for j := range got {
		sg := g[j] / (1 + math.Exp(-g[j]))
		want := sg * u[j]
		rho := 2 * (8 + 2*math.Abs(g[j])) * 0x1p-23
		bound := 1.1*eg[j]*(math.Abs(u[j])+eu[j]) + math.Abs(sg)*eu[j] + rho*(math.Abs(sg)+1.1*eg[j])*(math.Abs(u[j])+eu[j])
		if d := math.Abs(float64(got[j]) - want); math.IsNaN(d) || d > bound {
			t.Fatalf("%s: y[%d] = %g, want %g (g %g, u %g): |diff| %.3g > bound %.3g", name, j, got[j], want, g[j], u[j], d, bound)
		}
	}
}

// a8Linear is x·wᵀ as gemv_a8.wgsl computes it (x·gain quantized where gain is not nil, the
// sums scaled by the norm) and TestGraphA8's bound on the GPU's distance from it.
func a8Linear(t *testing.T, x, gain []float32, m int, f quant.Format, w *quant.Tensor) (want, bound []float64) {
	t.Helper()
	const u = 0x1p-24
	K := swiGLUK
	v, rn := x, make([]float64, m)
	for i := range rn {
		rn[i] = 1
	}
	if gain != nil {
		v = make([]float32, len(x))
		for i := range v {
			v[i] = x[i] * gain[i%K]
		}
		for i := range rn {
			var ss float64
			for _, xv := range x[i*K : (i+1)*K] {
				ss += float64(xv) * float64(xv)
			}
			rn[i] = 1 / math.Sqrt(ss/float64(K)+swiGLUEps)
		}
	}
	a, err := quant.QuantizeActivations(v, m, K, quant.ActivationBlock(f.Bits))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := quant.MatMulA8(a, w)
	if err != nil {
		t.Fatal(err)
	}
	want, bound = make([]float64, m*w.N), make([]float64, m*w.N)
	for i := 0; i < m; i++ {
		for n := 0; n < w.N; n++ {
			j := i*w.N + n
			want[j], bound[j] = ref.Y[j]*rn[i], rn[i]*ref.Bound(i, n)
			if gain != nil {
				bound[j] += u * float64((K+6)/2+1) * math.Abs(want[j]) // the norm's roundings
			}
		}
	}
	return want, bound
}

// TestGraphXTailA8 checks the SwiGLU GEMVs that write their output also as the down GEMV's
// activation blocks (swiglu.go's findXTail, gemv_a8.wgsl XTAIL) against the same graph without
// (the down GEMV quantizing its x in every workgroup, which TestGraphA8 holds to the reference):
// the outputs must be the same floats, since a block is formed from the same stored values by
// the same function. A feed-forward, its norm's blocks written by a pre-pass: x → RMSNorm →
// SiLU(·gateᵀ)·(·upᵀ) → ·downᵀ, plus r at m = 1, without at m = 3; int4, int8 asymmetric and
// int2 down weights (blocks of 32 and 16, both schemes), the SwiGLU GEMV at 8 rows a workgroup
// and, at 8192 outputs, at 16 (a block from 8 and from 4 workgroups). Three runs on fresh
// inputs: a block's counter left set makes the next run's blocks stale.
func TestGraphXTailA8(t *testing.T) {
	t.Cleanup(saved(&forceSwiGLU))
	forceSwiGLU = true
	b := tailBackend(t, 0) // normtail_js_test.go
	rng := rand.New(rand.NewPCG(25, 26))
	q8a := quant.Format{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 32, Scales: quant.ScaleF16}
	for _, c := range []struct {
		f, fd quant.Format
		n     int
	}{{quant.Q4, quant.Q4, 352}, {quant.Q4, q8a, 352}, {quant.Format{Bits: 8, GroupSize: 32}, quant.Format{Bits: 2, GroupSize: 64}, 384}, {quant.Q4, quant.Q4, 8192}} {
		t.Run(fmt.Sprintf("%v/down-%v/n%d", c.f, c.fd, c.n), func(t *testing.T) {
			const K = 192
			ws := map[string]*quant.Tensor{"wg": quantized(t, "wg", rng, c.n, K, c.f), "wu": quantized(t, "wu", rng, c.n, K, c.f),
				"wd": quantized(t, "wd", rng, K, c.n, c.fd)}
			g := graph.New("swiglu x tails")
			gain := g.Input("gain", graph.Float32, K)
			var outs []graph.Value
			for _, m := range []int{1, 3} {
				nx := g.RMSNorm(fmt.Sprint("norm", m), g.Input(fmt.Sprint("x", m), graph.Float32, m, K), gain, swiGLUEps)
				gate := g.Linear(fmt.Sprint("gate", m), nx, g.Weight("wg", c.n, K), graph.None)
				up := g.Linear(fmt.Sprint("up", m), nx, g.Weight("wu", c.n, K), graph.None)
				h := g.Mul(fmt.Sprint("swiglu", m), g.SiLU(fmt.Sprint("silu", m), gate), up)
				down := g.Linear(fmt.Sprint("down", m), h, g.Weight("wd", K, c.n), graph.None)
				if m == 1 {
					down = g.Add("res", g.Input("r", graph.Float32, 1, K), down)
				}
				outs = append(outs, down)
			}
			if err := g.Output(outs...); err != nil {
				t.Fatal(err)
			}
			progs := compileBoth(t, b, g, uploadAll(t, b, ws), &fuseA8XTail)
			tails := 0
			for _, s := range progs[0].(*program).plan.swiglus {
				if s.tail.a8 && s.tail.bits == c.fd.Bits {
					tails++
				}
			}
			if len(progs[0].(*program).plan.swiglus) != 2 || tails != 2 || len(progs[1].(*program).plan.xTailOf) != 0 {
				t.Fatalf("%d SwiGLU GEMVs, %d writing their down GEMV's blocks, want 2 and 2 (without: %d)", len(progs[0].(*program).plan.swiglus), tails, len(progs[1].(*program).plan.xTailOf))
			}
			sameRuns(t, g, outs, progs, rng, 3, func(rng *rand.Rand) []graph.Tensor {
				return []graph.Tensor{normalInput(K)(rng), normalInput(1, K)(rng), normalInput(1, K)(rng), normalInput(3, K)(rng)}
			})
		})
	}
}
