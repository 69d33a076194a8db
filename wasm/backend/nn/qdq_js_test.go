//go:build js && wasm

package nn

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestQDQLinear checks the fused form computes exactly the int8 arithmetic it stands for: x
// rounded to int8 over its calibrated interval, the weight's per-channel int8 codes (requantized
// when stored otherwise), the int32 bias, the output rounded to int8 over its interval. The reference does that
// arithmetic in Go; the graph may differ from it by one output step where TFLite's requantization
// rounds a value lying at a step boundary the other way, and by nothing else.
func TestQDQLinear(t *testing.T) {
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []quant.Format{{Bits: 8, Scheme: quant.Symmetric}, {Bits: 8, Scheme: quant.Symmetric, GroupSize: 32}, {Bits: 8, Scheme: quant.Asymmetric, GroupSize: 0}, quant.Q4} {
		t.Run(f.String(), func(t *testing.T) {
			const N, K = 67, 301
			g := graph.New("qdq-linear")
			x := g.Input("x", graph.Float32, 2, 3, K)
			w := g.Weight("w", N, K)
			// With a constant bias (int32 in gemm's c), without, and with one computed in the graph
			// (added after the int8 product).
			y := g.Linear("fc", x, w, g.Weight("b", N))
			y0 := g.Linear("fc-nobias", g.Reshape("flat", x, 6, K), w, graph.None)
			y1 := g.Linear("fc-graph-bias", x, w, g.Scale("b×2", g.Weight("b", N), 2))
			if err := g.Output(y, y0, y1); err != nil {
				t.Fatal(err)
			}
			wq, err := quant.Quantize("w", scaled(randnF(rng, N*K), 0.05), N, K, f, quant.Options{})
			if err != nil {
				t.Fatal(err)
			}
			bias := scaled(randnF(rng, N), 0.3)
			bq, _ := quant.Quantize("b", bias, 1, N, quant.Format{Bits: 32}, quant.Options{})
			ws := map[string]*quant.Tensor{"w": wq, "b": bq}
			in := []graph.Tensor{graph.F32Tensor(randnF(rng, 6*K), 2, 3, K)}
			ref := cpu.New()
			cal, err := backend.Calibrate(context.Background(), ref, g, upload(t, ref, ws), [][]graph.Tensor{in})
			if err != nil {
				t.Fatal(err)
			}
			nw := upload(t, b, ws)
			held := nw["w"].Bytes()
			p, err := b.CompileCalibrated(g, nw, cal)
			if err != nil {
				t.Fatal(err)
			}
			// The graph holds int8 codes, one scale and one zero point a row.
			if d := nw["w"].Bytes() - held; d != N*K+5*N {
				t.Errorf("compiled graph adds %d bytes to the weight, want %d", d, N*K+5*N)
			}
			defer func() {
				p.Release()
				if nw["w"].Bytes() != held {
					t.Errorf("after Release the weight holds %d bytes, want %d", nw["w"].Bytes(), held)
				}
			}()
			for _, n := range p.(*program).Notes() {
				t.Log("note: ", n)
				if strings.Contains(n, "runs in float32") {
					t.Fatalf("a Linear was not lowered to QDQ: %s", n)
				}
			}
			out, err := p.Run(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			// The int8 arithmetic, in Go.
			codes, sw, _ := perChannelSym(quant.Dequantize(wq), N, K, 8)
			sat := func(v float64) float64 { return max(-128, min(127, math.RoundToEven(v))) }
			for o, c := range []struct {
				label string
				bias  []float32 // int32 in c
				after []float32 // float32 after the output's dequantize
			}{{"fc", bias, nil}, {"fc-nobias", nil, nil}, {"fc-graph-bias", nil, scaled(append([]float32(nil), bias...), 2)}} {
				r := cal.Linear[c.label]
				sx, zx, _ := r.In.Int8()
				sy, zy, _ := r.Out.Int8()
				qb := make([]int32, N)
				if c.bias != nil {
					qb, _ = quantizeBias(c.bias, sx, sw)
				}
				step, worst, off := float64(sy), 0.0, 0
				for m := 0; m < 6; m++ {
					xr := in[0].F32[m*K : (m+1)*K]
					for n := 0; n < N; n++ {
						acc := float64(qb[n])
						for k := 0; k < K; k++ {
							acc += (sat(math.RoundToEven(float64(xr[k]/sx))+float64(zx)) - float64(zx)) * float64(codes[n*K+k])
						}
						want := (sat(math.RoundToEven(acc*float64(sx)*float64(sw[n])/step)+float64(zy)) - float64(zy)) * step
						if c.after != nil {
							want += float64(c.after[n])
						}
						d := math.Abs(float64(out[o].F32[m*N+n]) - want)
						worst = max(worst, d/step)
						if d > 1e-3*step {
							off++
						}
					}
				}
				t.Logf("%s: sx %.4g zx %d sy %.4g zy %d: %d of %d outputs one step off the Go int8 arithmetic (worst %.3g steps)", c.label, sx, zx, sy, zy, off, 6*N, worst)
				if worst > 1+1e-3 || off > 6*N/20 {
					t.Errorf("%s: worst %.3g output steps from the int8 arithmetic, %d of %d off (want ≤ 1 step, on ≤ 5%%)", c.label, worst, off, 6*N)
				}
			}
		})
	}
}

// TestQDQEncoder runs a small encoder with int8 weights in the QDQ mode, calibrated on other
// inputs than it is checked on, against the cpu with the same weights.
//
// The bound is derived, not fitted: rounding to int8 over a calibrated interval of half-width h
// has a step h/127.5 and an RMS error of step/√12, so a value whose h is c times its RMS comes
// back with a relative RMS error of c/(127.5·√12). Each Linear rounds twice (input and output);
// independent roundings add in quadrature through the residual stream, along the path of L
// Linears: √(2L)·c/(127.5·√12). Attention counts the q/k errors twice (both enter each logit):
// a factor √2. c = 6 bounds the half-width/RMS of every Linear's input and output here
// (measured 3.1–5.7 on this network).
func TestQDQEncoder(t *testing.T) {
	b := newBackend(t, Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	e := encoder{B: 2, T: 7, D: 64, H: 4, F: 96, Layers: 2, Weights: quant.Format{Bits: 8, Scheme: quant.Symmetric}}
	g, ws, err := e.build(rng)
	if err != nil {
		t.Fatal(err)
	}
	nw := upload(t, b, ws)
	var sets [][]graph.Tensor
	for range 16 {
		sets = append(sets, e.inputs(rng))
	}
	cal, err := backend.Calibrate(context.Background(), b, g, nw, sets)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.CompileCalibrated(g, nw, cal)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	for _, n := range p.(*program).Notes() {
		if strings.Contains(n, "runs in float32") {
			t.Fatalf("every Linear should be in QDQ form: %s", n)
		}
	}
	const c = 6
	linears := 4*e.Layers + 1
	bound := math.Sqrt(2) * math.Sqrt(2*float64(linears)) * c / (127.5 * math.Sqrt(12))
	for run := range 2 {
		in := e.inputs(rng)
		want := cpuRun(t, g, ws, in)
		got, err := p.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		rr := relRMS(got[0].F32, want[0].F32)
		t.Logf("run %d: relative RMS %.4f (bound %.4f), min cosine %.6f", run, rr, bound, minCosine(got[0].F32, want[0].F32, e.D))
		if !(rr <= bound) {
			t.Errorf("run %d: QDQ encoder output relative RMS %.4f > derived bound %.4f", run, rr, bound)
		}
	}
}

func randnF(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func scaled(v []float32, s float32) []float32 {
	for i := range v {
		v[i] *= s
	}
	return v
}
