//go:build !(js && wasm)

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Shape is one product y[M×N] = x[M×K] · Wᵀ.
type Shape struct{ M, N, K int }

func (s Shape) String() string { return fmt.Sprintf("%dx%dx%d", s.M, s.N, s.K) }

// Kind says which regime the shape measures: one activation row is a decode step (GEMV,
// memory-bound), many rows a prefill or batch (GEMM, compute-bound).
func (s Shape) Kind() string {
	if s.M == 1 {
		return "gemv"
	}
	return "gemm"
}

// The shapes issue 3 asks for: Llama-7B's attention (4096×4096) and MLP (11008×4096 up,
// 4096×11008 down) matrices for one token, and the square one for a 128-token prefill.
var (
	fullShapes  = []Shape{{1, 4096, 4096}, {1, 11008, 4096}, {1, 4096, 11008}, {128, 4096, 4096}}
	quickShapes = []Shape{{1, 4096, 4096}, {8, 1024, 4096}}
)

// ParseShapes reads a comma-separated list of MxNxK triples.
func ParseShapes(s string) ([]Shape, error) {
	var out []Shape
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, "x")
		if len(parts) != 3 {
			return nil, fmt.Errorf("shape %q: want MxNxK, e.g. 1x4096x4096", f)
		}
		var v [3]int
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("shape %q: %q is not a positive integer", f, p)
			}
			v[i] = n
		}
		out = append(out, Shape{v[0], v[1], v[2]})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no shapes in %q", s)
	}
	return out, nil
}

// Case is one shape with its weights, activations and float64 reference, in both layouts.
type Case struct {
	Name  string
	Shape Shape
	T     *quant.Tensor
	ORT   *onnx.ORTWeight
	X     []float32
	Ref   []float32 // quant.MatMul: float64 accumulation over nibble's dequantized weights
	Model []byte    // the ONNX model with ORT's layout of T as initializers
}

// WeightBytes is the figure the GB/s columns divide by: codes, scales and zero points as ORT
// stores them. For K a multiple of 32 it equals nibble's Bytes() (no row padding then).
func (c *Case) WeightBytes() int { return c.ORT.Bytes() }

// NewCase quantizes random weights of a realistic distribution (backendtest.RandomWeights: per-row
// scales, one outlier column) once with nibble's quantizer, converts them to ORT's layout and
// computes the reference output.
func NewCase(s Shape, f quant.Format, seed uint64) (*Case, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(s.M)<<40|uint64(s.N)<<20|uint64(s.K)))
	name := s.String()
	t, err := quant.Quantize(name, backendtest.RandomWeights(rng, s.N, s.K), s.N, s.K, f, quant.Options{})
	if err != nil {
		return nil, err
	}
	ort, err := onnx.ToORT(t)
	if err != nil {
		return nil, err
	}
	x := make([]float32, s.M*s.K)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	ref, err := quant.MatMul(x, s.M, t)
	if err != nil {
		return nil, err
	}
	return &Case{Name: name, Shape: s, T: t, ORT: ort, X: x, Ref: ref, Model: onnx.MatMulNBitsModel(ort, s.M)}, nil
}

// caseMeta is what the page learns about a case from /plan.json; the bytes come from
// /case/NAME/{x,data,scales,zeros}.bin and /case/NAME/model.onnx.
type caseMeta struct {
	Name        string `json:"name"`
	M           int    `json:"m"`
	N           int    `json:"n"`
	K           int    `json:"k"`
	Bits        int    `json:"bits"`
	Scheme      string `json:"scheme"` // "sym" or "asym"
	GroupSize   int    `json:"group_size"`
	Format      string `json:"format"`
	WeightBytes int    `json:"weight_bytes"`
}

// Plan is /plan.json: everything a page needs to run its share of the benchmark.
type Plan struct {
	Warmup int        `json:"warmup"`
	Runs   int        `json:"runs"`
	Cases  []caseMeta `json:"cases"`
}

func (c *Case) meta() caseMeta {
	scheme := "sym"
	if c.T.Scheme == quant.Asymmetric {
		scheme = "asym"
	}
	return caseMeta{Name: c.Name, M: c.Shape.M, N: c.Shape.N, K: c.Shape.K, Bits: c.T.Bits, Scheme: scheme,
		GroupSize: c.T.GroupSize, Format: c.T.Format.String(), WeightBytes: c.WeightBytes()}
}

func (p Plan) JSON() []byte {
	b, _ := json.Marshal(p)
	return b
}
