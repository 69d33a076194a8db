//go:build js && wasm

package nn

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
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
