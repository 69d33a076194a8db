//go:build js && wasm

package nn

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// benchLine is the JSON form every backend's benchmarks print, one object a line.
type benchLine struct {
	Backend string  `json:"backend"`
	Kernel  string  `json:"kernel"` // the graph shape
	M       int     `json:"m"`
	N       int     `json:"n"`
	K       int     `json:"k"`
	Bits    int     `json:"bits"`
	Format  string  `json:"format"`
	MS      float64 `json:"ms"`   // median of the timed runs: writeTensor + dispatch + readTensor
	GBps    float64 `json:"gbps"` // packed weight bytes per second (what a memory-bound kernel streams)
	BuildMS float64 `json:"build_ms"`
	Path    Path    `json:"path"`
	Device  string  `json:"device"`
}

type benchCase struct {
	m, n, k int
	f       quant.Format
	shapes  []GraphShape
}

var (
	shapeDefault = GraphShape{}
	shapeCast    = GraphShape{Dequant: DequantCast}
	shapeMatmul  = GraphShape{Product: ProductMatmul}
	shapeRank2   = GraphShape{Rank2: true}
	f32          = quant.Format{Bits: 32}
	q8pc         = quant.Format{Bits: 8}
	q8g32        = quant.Format{Bits: 8, GroupSize: 32}
	q4g32        = quant.Q4
)

// BenchmarkWebNN prints one JSON line per (shape, format, graph shape). Run it with
//
//	bash tools/browser/test-js.sh ./wasm/backend/nn -run=^$ -bench=WebNN -benchtime=1x
//
// Each case builds its own graph once, runs twice to warm, then times five runs.
func BenchmarkWebNN(b *testing.B) {
	all := []GraphShape{shapeDefault, shapeCast, shapeMatmul}
	cases := []benchCase{
		{1, 4096, 4096, f32, []GraphShape{shapeDefault, shapeMatmul}},
		{1, 4096, 4096, q8pc, []GraphShape{shapeDefault, shapeCast}},
		{1, 4096, 4096, q8g32, append(all, shapeRank2)},
		{1, 4096, 4096, q4g32, []GraphShape{shapeDefault, shapeMatmul, shapeRank2}},
		{1, 11008, 4096, f32, []GraphShape{shapeDefault}},
		{1, 11008, 4096, q8g32, []GraphShape{shapeDefault, shapeCast}},
		{1, 11008, 4096, q4g32, []GraphShape{shapeDefault}},
		{1, 4096, 11008, f32, []GraphShape{shapeDefault}},
		{1, 4096, 11008, q8g32, []GraphShape{shapeDefault, shapeCast}},
		{1, 4096, 11008, q4g32, []GraphShape{shapeDefault}},
		{128, 4096, 4096, f32, []GraphShape{shapeDefault}},
		{128, 4096, 4096, q8g32, []GraphShape{shapeDefault, shapeCast}},
		{128, 4096, 4096, q4g32, []GraphShape{shapeDefault}},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			q, err := quant.Quantize("bench", backendtest.RandomWeights(rng, c.n, c.k), c.n, c.k, c.f, quant.Options{})
			if err != nil {
				b.Fatal(err)
			}
			x := make([]float32, c.m*c.k)
			for j := range x {
				x[j] = float32(rng.NormFloat64())
			}
			dst := make([]float32, c.m*c.n)
			for _, shape := range c.shapes {
				line, err := benchOne(q, x, dst, c.m, shape)
				if err != nil {
					fmt.Printf("{\"backend\":\"webnn\",\"kernel\":%q,\"m\":%d,\"n\":%d,\"k\":%d,\"bits\":%d,\"error\":%q}\n", shape, c.m, c.n, c.k, c.f.Bits, err)
					continue
				}
				out, _ := json.Marshal(line)
				fmt.Println(string(out))
			}
		}
	}
}

func benchOne(q *quant.Tensor, x, dst []float32, m int, shape GraphShape) (*benchLine, error) {
	be, err := New(Options{Graph: shape})
	if err != nil {
		return nil, err
	}
	defer be.Close()
	start := time.Now()
	bw, err := be.Upload(q)
	if err != nil {
		return nil, err
	}
	defer bw.Release()
	w := bw.(*Weight)
	if _, err := w.graph(class(m)); err != nil {
		return nil, err
	}
	build := time.Since(start)
	for range 2 {
		if err := be.MatMul(dst, x, w, m); err != nil {
			return nil, err
		}
	}
	var ts []float64
	for range 5 {
		t0 := time.Now()
		if err := be.MatMul(dst, x, w, m); err != nil {
			return nil, err
		}
		ts = append(ts, float64(time.Since(t0).Microseconds())/1000)
	}
	slices.Sort(ts)
	ms := ts[len(ts)/2]
	return &benchLine{Backend: "webnn", Kernel: shape.String(), M: m, N: q.N, K: q.K, Bits: q.Bits, Format: q.Format.String(),
		MS: ms, GBps: float64(w.bytes) / (ms / 1000) / 1e9, BuildMS: float64(build.Microseconds()) / 1000,
		Path: w.Path(), Device: "cpu (Chromium 153 headless_shell, TFLite)"}, nil
}

// graphLine is one whole-graph measurement: a mode on a weight format at one batch size.
type graphLine struct {
	Backend string `json:"backend"`
	Graph   string `json:"graph"`
	B       int    `json:"b"`
	T       int    `json:"t"`
	Weights string `json:"weights"`
	// Mode is f32 (float32 weights, exact), dq (quantized weights through dequantizeLinear,
	// exact) or qdq (calibrated int8 Linears in TFLite's fused form), with the int4 policy.
	Mode    string  `json:"mode"`
	MS      float64 `json:"ms"` // median Run: writeTensor + one dispatch + readTensor
	BuildMS float64 `json:"build_ms"`
	// RelRMS and MinCos compare the output with the cpu on the same weights (the mode's own
	// error); RelRMSF32 with the cpu on the float32 weights (weights and activations together).
	RelRMS    float64 `json:"rel_rms"`
	MinCos    float64 `json:"min_cos"`
	RelRMSF32 float64 `json:"rel_rms_f32"`
	Notes     int     `json:"notes"`
}

// BenchmarkGraphModes measures the USE-lite-sized encoder (width 512, FFN 1536, 16 tokens, two
// layers, mean pooling, tanh dense, L2) as one MLGraph in each mode, for 1 and 30 sentences:
//
//	bash tools/browser/test-js.sh ./wasm/backend/nn -run=^$ -bench=GraphModes -benchtime=1x -timeout=20m
//
// All programs of a batch size are built first and then timed round-robin, one Run of each per
// round over 15 rounds, so a machine whose load drifts (a shared 2-core one) slows every mode
// alike; the medians are printed. The QDQ programs are calibrated on other random inputs than the
// one measured (32 sentences, through the exact program); errors are against the pure-Go cpu
// interpreter.
func BenchmarkGraphModes(b *testing.B) {
	q8pcSym := quant.Format{Bits: 8, Scheme: quant.Symmetric}
	q8g32Sym := quant.Format{Bits: 8, Scheme: quant.Symmetric, GroupSize: 32}
	type mode struct {
		name string
		opt  *CompileOptions // nil: exact
	}
	exact := []mode{{"dq", nil}}
	qdq := func(p Int4Policy) mode { return mode{"qdq+" + p.String(), &CompileOptions{Int4: p}} }
	cases := []struct {
		f     quant.Format
		modes []mode
	}{
		{f32, []mode{{"f32", nil}}},
		{q8pcSym, append(exact, mode{"qdq", &CompileOptions{}})},
		{q8g32Sym, append(exact, mode{"qdq", &CompileOptions{}})},
		{q4g32, append(exact, qdq(Int4Widen), qdq(Int4QDQ))},
	}
	for i := 0; i < b.N; i++ {
		for _, batch := range []int{1, 30} {
			var ref []graph.Tensor // the f32 model's output
			var runs []*benchProgram
			for _, c := range cases {
				e := useLite(batch, c.f)
				g, ws, err := e.build(rand.New(rand.NewPCG(11, 12)))
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(13, uint64(batch)))
				in := e.inputs(rng)
				var cal [][]graph.Tensor
				for range max(1, 32/batch) {
					cal = append(cal, e.inputs(rng))
				}
				want := cpuRun(b, g, ws, in)
				if c.f.Bits == 32 {
					ref = want
				}
				for _, m := range c.modes {
					bp, err := prepareGraph(b, e, g, ws, in, cal, want, ref, m.opt)
					if err != nil {
						fmt.Printf("{\"backend\":\"webnn\",\"b\":%d,\"weights\":%q,\"mode\":%q,\"error\":%q}\n", batch, c.f, m.name, err)
						continue
					}
					bp.line.Mode = m.name
					runs = append(runs, bp)
				}
			}
			ts := make([][]float64, len(runs))
			for range 15 {
				for j, r := range runs {
					t0 := time.Now()
					if _, err := r.p.Run(context.Background(), r.in); err != nil {
						b.Fatal(err)
					}
					ts[j] = append(ts[j], float64(time.Since(t0).Microseconds())/1000)
				}
			}
			for j, r := range runs {
				slices.Sort(ts[j])
				r.line.MS = ts[j][len(ts[j])/2]
				out, _ := json.Marshal(r.line)
				fmt.Println(string(out))
				r.close()
			}
		}
	}
}

// benchProgram is one compiled mode, ready to time.
type benchProgram struct {
	line  *graphLine
	p     backend.Program
	in    []graph.Tensor
	close func()
}

func prepareGraph(tb testing.TB, e encoder, g *graph.Graph, ws map[string]*quant.Tensor, in []graph.Tensor, calIn [][]graph.Tensor, want, ref []graph.Tensor, opt *CompileOptions) (*benchProgram, error) {
	be, err := New(Options{})
	if err != nil {
		return nil, err
	}
	nw := upload(tb, be, ws)
	o := CompileOptions{}
	if opt != nil {
		o = *opt
		if o.Calibration, err = backend.Calibrate(context.Background(), be, g, nw, calIn); err != nil {
			be.Close()
			return nil, err
		}
	}
	start := time.Now()
	p, err := be.CompileWith(g, nw, o)
	if err != nil {
		be.Close()
		return nil, err
	}
	build := time.Since(start)
	var got []graph.Tensor
	for range 2 { // warm
		if got, err = p.Run(context.Background(), in); err != nil {
			p.Release()
			be.Close()
			return nil, err
		}
	}
	return &benchProgram{p: p, in: in, close: func() { p.Release(); be.Close() },
		line: &graphLine{Backend: "webnn", Graph: "use-lite-sized encoder", B: e.B, T: e.T, Weights: e.Weights.String(),
			BuildMS: float64(build.Microseconds()) / 1000,
			RelRMS:  relRMS(got[0].F32, want[0].F32), MinCos: minCosine(got[0].F32, want[0].F32, e.D),
			RelRMSF32: relRMS(got[0].F32, ref[0].F32), Notes: len(p.(*program).Notes())}}, nil
}
