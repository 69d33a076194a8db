//go:build js && wasm

package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestGraphKVWrite's decode step: q of 32 rows (4 heads), k and v of 16 (2 heads of 8: a head
// of 4 rotated pairs), caches of 9 rows. N is whole workgroups of 8 and of 16 rows.
const kvHeads, kvDh, kvQ, kvRows = 2, 8, 32, 9

// kvGraph is one decode step's q, k and v of an RMS norm of x (K wide), k rotated by the
// tables as wasm/model/llama rotates it and written with v into caches of the given storage at
// pos: inputs x, gain, pos, cos, sin; outputs q and both whole caches (read back through the
// state read, so every row is checked).
func kvGraph(g *graph.Graph, K int, storage graph.StateFormat) error {
	N, P := kvHeads*kvDh, kvDh/2
	x := g.Input("x", graph.Float32, 1, K)
	gain := g.Input("gain", graph.Float32, K)
	pos := g.Input("pos", graph.Int32, 1)
	cos := g.Input("cos", graph.Float32, 1, 1, P, 1)
	sin := g.Input("sin", graph.Float32, 1, 1, P, 1)
	h := g.RMSNorm("norm", x, gain, swiGLUEps)
	q := g.Linear("q", h, g.Weight("wq", kvQ, K), graph.None)
	k := g.Linear("k", h, g.Weight("wk", N, K), graph.None)
	v := g.Linear("v", h, g.Weight("wv", N, K), graph.None)
	kp := g.Reshape("k pairs", k, 1, kvHeads, P, 2)
	x0, x1 := g.Slice("k0", kp, 3, 0, 1), g.Slice("k1", kp, 3, 1, 2)
	y0 := g.Sub("y0", g.Mul("x0 cos", x0, cos), g.Mul("x1 sin", x1, sin))
	y1 := g.Add("y1", g.Mul("x0 sin", x0, sin), g.Mul("x1 cos", x1, cos))
	kr := g.Reshape("k heads", g.Concat("k rope", 3, y0, y1), 1, kvHeads, kvDh)
	vh := g.Reshape("v heads", v, 1, kvHeads, kvDh)
	ks := g.StateWrite("k write", g.State("k", storage, kvRows, kvHeads, kvDh), kr, pos, kvRows)
	vs := g.StateWrite("v write", g.State("v", storage, kvRows, kvHeads, kvDh), vh, pos, kvRows)
	return g.Output(q, ks, vs)
}

// kvPositions are the steps TestGraphKVWrite runs: the first row, rows after it, one again,
// the last.
var kvPositions = []int{0, 5, 1, 5, kvRows - 1}

// kvInputs are a step's inputs at pos: x, a gain about 1, the position, the tables of a
// rotation by angles drawn at random.
func kvInputs(rng *rand.Rand, K, pos int) []graph.Tensor {
	gain := normalInput(K)(rng)
	for i := range gain.F32 {
		gain.F32[i] = 1 + gain.F32[i]/4
	}
	c, s := make([]float32, kvDh/2), make([]float32, kvDh/2)
	for i := range c {
		a := rng.Float64() * 2 * math.Pi
		c[i], s[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	return []graph.Tensor{normalInput(1, K)(rng), gain, graph.I32Tensor([]int32{int32(pos)}, 1),
		graph.F32Tensor(c, 1, 1, kvDh/2, 1), graph.F32Tensor(s, 1, 1, kvDh/2, 1)}
}

// kvProgram compiles kvGraph on b (a backend and its state allocator) with caches of its own.
func kvProgram(t *testing.T, b interface {
	backend.Backend
	backend.Compiler
	backend.StateAllocator
}, K int, storage graph.StateFormat, ws map[string]*quant.Tensor) backend.Program {
	t.Helper()
	g := graph.New(fmt.Sprintf("kv write/%s/K%d", storage, K))
	if err := kvGraph(g, K, storage); err != nil {
		t.Fatal(err)
	}
	prog, err := b.Compile(g, backend.WithStates(uploadAll(t, b, ws), newStates(t, b, g)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Release() })
	return prog
}

// newStates allocates g's states on a, released when the test ends.
func newStates(t *testing.T, a backend.StateAllocator, g *graph.Graph) backend.StateMap {
	t.Helper()
	states := backend.StateMap{}
	for _, sp := range g.States() {
		st, err := a.NewState(sp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Release() })
		states[sp.Name] = st
	}
	return states
}

// kvWeights are q's, k's and v's weights of K columns in format f.
func kvWeights(t *testing.T, rng *rand.Rand, K int, f quant.Format) map[string]*quant.Tensor {
	N := kvHeads * kvDh
	return map[string]*quant.Tensor{"wq": quantized(t, "wq", rng, kvQ, K, f), "wk": quantized(t, "wk", rng, N, K, f), "wv": quantized(t, "wv", rng, N, K, f)}
}

// kvWriteExpected says whether p's q, k, v GEMV should write the caches (TestDecodeDispatches):
// fuseKVWrite, and the device has the storage buffers for that GEMV's weights (kvWriteFits).
func kvWriteExpected(p *program) bool {
	for _, s := range p.steps {
		if s.mm == nil || s.mm.key.Weights != 3 {
			continue
		}
		per := 1
		if s.mm.key.Quantized() {
			per++
			if s.mm.key.Asym {
				per++
			}
		}
		return fuseKVWrite && 6+3*per <= p.b.dev.Limits().MaxStorageBuffersPerShaderStage
	}
	return false
}

// checkKVFused fails unless prog's plan writes the caches in its q/k/v GEMV and dispatches no
// cache write, where the device has the storage buffers (x, y, the gain, the weights'
// buffers, the position and tables, two caches: kvWriteFits); else unless it does not.
func checkKVFused(t *testing.T, prog backend.Program, f quant.Format) {
	t.Helper()
	p := prog.(*program)
	per := map[bool]int{true: 2, false: 1}[f.Bits <= 8]
	if f.Scheme == quant.Asymmetric {
		per++
	}
	want := 0
	if 6+3*per <= p.b.dev.Limits().MaxStorageBuffersPerShaderStage {
		want = 1
	}
	kv, writes := 0, 0
	for _, s := range p.steps {
		if s.mm != nil && s.mm.key.KVWrite {
			kv++
		}
		if s.pl != nil && strings.Contains(s.pl.Label(), "op-state_write") {
			writes++
		}
	}
	if len(p.plan.kvWrites) != want || kv != want || writes != 1-want {
		t.Fatalf("%d GEMVs write caches (%d steps), %d cache write dispatches (paired); want %d, %d, %d (%d storage buffers a stage)",
			len(p.plan.kvWrites), kv, writes, want, want, 1-want, p.b.dev.Limits().MaxStorageBuffersPerShaderStage)
	}
}

// TestGraphKVWrite checks the q/k/v GEMV that writes k (rotated) and v into their caches
// (kvwrite.go, gemv_reduce.wgsl KV_WRITE; forced on: SwiftShader is a software adapter)
// against the cpu on poisoned arenas, with f16 and f32 caches, in float, int4 and int8 weights
// (K 100 for float weights, ragged to the GEMV's 128 threads; 160 for codes), with and without
// subgroups: after each step at positions 0, 5, 1, 5 and the last, q and both whole caches
// (the rows not written must be as they were) match the cpu's within 2e-4 of |want| + RMS
// (f32 cache) or 1e-3 (an f16 cache: a sum rounded otherwise may round to the next half).
func TestGraphKVWrite(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&gemvNormF32))
	gemvNormF32 = true // the cache-writing GEMV with the norm inside
	t.Cleanup(saved(&forceKVWrite))
	forceKVWrite = true
	tu := DefaultTuning
	rng := rand.New(rand.NewPCG(21, 22))
	ref := cpu.New()
	for _, noSG := range []bool{false, true} {
		b := newBackend(t, Options{Tuning: &tu, NoSubgroups: noSG})
		for _, f := range fusionFormats[:3] {
			K := map[bool]int{true: 100, false: swiGLUK}[f.Bits == 32]
			for _, storage := range []graph.StateFormat{graph.StateF16, graph.StateF32} {
				t.Run(fmt.Sprintf("nosubgroups=%v/%v/%s", noSG, f, storage), func(t *testing.T) {
					ws := kvWeights(t, rng, K, f)
					got, want := kvProgram(t, b, K, storage, ws), kvProgram(t, ref, K, storage, ws)
					checkKVFused(t, got, f)
					tol := map[graph.StateFormat]float64{graph.StateF16: 1e-3, graph.StateF32: 2e-4}[storage]
					for step, pos := range kvPositions {
						in := kvInputs(rng, K, pos)
						w, err := want.Run(context.Background(), in)
						if err != nil {
							t.Fatal(err)
						}
						o, err := got.Run(context.Background(), in)
						if err != nil {
							t.Fatal(err)
						}
						for j := range w {
							if err := backendtest.CompareTensors(w[j], o[j], tol); err != nil {
								t.Fatalf("step %d (pos %d), output %d: %v", step, pos, j, err)
							}
						}
					}
				})
			}
		}
	}
}

// TestGraphKVWriteA8 checks the cache-writing GEMV on gemv_a8.wgsl (int8 activations) at 8
// rows a workgroup and 16 (two groups of 8, stored one after the other), on poisoned arenas,
// in int4 and int8 weights with f16 and f32 caches, against the reference within
// TestGraphA8's bounds (a8Linear): q within e_q; the written row of the k cache within
// |cos|·e₀ + |sin|·e₁ of the rotation of the reference's k (plus its own roundings), of the v
// cache within e_v (an f16 cache: plus half an f16 step); every other row exactly as the step
// before left it (zeros at first).
func TestGraphKVWriteA8(t *testing.T) {
	poisoned(t)
	t.Cleanup(saved(&forceKVWrite))
	forceKVWrite = true
	rows16 := DefaultTuning
	rows16.GEMVInt8Workgroup, rows16.GEMVInt8Rows = 64, 16
	rng := rand.New(rand.NewPCG(23, 24))
	t.Cleanup(saved(&a8NormPrepass))
	for ti, tu := range []Tuning{DefaultTuning, rows16, DefaultTuning} {
		a8NormPrepass = ti == 2 // the norm's x·gain quantized by a pre-pass (normpre_js.go)
		b := newBackend(t, Options{Int8Activations: true, Tuning: &tu})
		for _, f := range []quant.Format{quant.Q4, {Bits: 8, GroupSize: 32}} {
			for _, storage := range []graph.StateFormat{graph.StateF16, graph.StateF32} {
				t.Run(fmt.Sprintf("rows%d/normpre=%v/%v/%s", max(tu.GEMVInt8Rows, tu.GEMVRows), a8NormPrepass, f, storage), func(t *testing.T) {
					ws := kvWeights(t, rng, swiGLUK, f)
					prog := kvProgram(t, b, swiGLUK, storage, ws)
					checkKVFused(t, prog, f)
					N := kvHeads * kvDh
					prev := [2][]float32{make([]float32, kvRows*N), make([]float32, kvRows*N)}
					for step, pos := range kvPositions {
						in := kvInputs(rng, swiGLUK, pos)
						out, err := prog.Run(context.Background(), in)
						if err != nil {
							t.Fatal(err)
						}
						checkKVA8(t, fmt.Sprintf("step %d (pos %d)", step, pos), in, out, prev, f, ws, storage)
						prev = [2][]float32{out[1].F32, out[2].F32}
					}
				})
			}
		}
	}
}

// checkKVA8 is one step of TestGraphKVWriteA8: out is q and both caches after in, prev the
// caches before.
func checkKVA8(t *testing.T, what string, in, out []graph.Tensor, prev [2][]float32, f quant.Format, ws map[string]*quant.Tensor, storage graph.StateFormat) {
	t.Helper()
	x, gain, pos := in[0].F32, in[1].F32, int(in[2].I32[0])
	q, eq := a8Linear(t, x, gain, 1, f, ws["wq"])
	checkWithin(t, what+": q", out[0].F32, q, eq, 0)
	k, ek := a8Linear(t, x, gain, 1, f, ws["wk"])
	v, ev := a8Linear(t, x, gain, 1, f, ws["wv"])
	half := map[graph.StateFormat]float64{graph.StateF16: 0x1p-11, graph.StateF32: 0}[storage]
	N, P := kvHeads*kvDh, kvDh/2
	rk, rb := make([]float64, N), make([]float64, N)
	for e := 0; e < N; e += 2 {
		c, s := float64(in[3].F32[e/2%P]), float64(in[4].F32[e/2%P])
		rk[e], rk[e+1] = k[e]*c-k[e+1]*s, k[e]*s+k[e+1]*c
		ulps := 3 * 0x1p-24 * (math.Abs(k[e]) + math.Abs(k[e+1])) // the rotation's own roundings
		rb[e] = math.Abs(c)*ek[e] + math.Abs(s)*ek[e+1] + ulps
		rb[e+1] = math.Abs(s)*ek[e] + math.Abs(c)*ek[e+1] + ulps
	}
	for ci, c := range []struct {
		name        string
		want, bound []float64
	}{{"k cache", rk, rb}, {"v cache", v, ev}} {
		got := out[1+ci].F32
		for r := range kvRows {
			row := got[r*N : (r+1)*N]
			if r == pos {
				checkWithin(t, fmt.Sprintf("%s: %s row %d", what, c.name, r), row, c.want, c.bound, half)
				continue
			}
			for e, g := range row {
				if math.Float32bits(g) != math.Float32bits(prev[ci][r*N+e]) {
					t.Fatalf("%s: %s row %d (not written) [%d] = %g, was %g", what, c.name, r, e, g, prev[ci][r*N+e])
				}
			}
		}
	}
}

// checkWithin fails where got[j] is NaN or further than bound[j] from want[j], plus half of
// |want[j]| + bound[j] (an f16 rounding).
func checkWithin(t *testing.T, what string, got []float32, want, bound []float64, half float64) {
	t.Helper()
	for j := range want {
		lim := bound[j] + half*(math.Abs(want[j])+bound[j])
		if d := math.Abs(float64(got[j]) - want[j]); math.IsNaN(d) || d > lim {
			t.Fatalf("%s: [%d] = %g, want %g: |diff| %.3g > bound %.3g", what, j, got[j], want[j], d, lim)
		}
	}
}
