//go:build !(js && wasm)

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// matrix is one weight matrix in nibble's orientation: N rows of K inputs, groups along K.
type matrix struct {
	name string
	n, k int
	w    []float32
}

// loadMatrices reads every weight matrix of a TF.js model. TF.js stores dense and 1×1-conv
// kernels as [in, out] (x·W), so they are transposed to [out][in]: groups must run along the
// input dimension, the one a matmul sums over. Embedding tables ([vocab, dim], gathered by row)
// keep their orientation: each row is one token's vector. Tensors with fewer than 4096 values
// (biases, norms, shape constants) are left out, as the runtime keeps them in float32.
func loadMatrices(dir string) ([]matrix, int64, error) {
	m, err := format.OpenTFJSDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (the default model comes from npm: run make deps)", err)
	}
	defer m.Close()
	var out []matrix
	var fileBytes int64
	for {
		t, err := m.Next()
		if errors.Is(err, io.EOF) {
			return out, fileBytes, nil
		}
		if err != nil {
			return nil, 0, err
		}
		fileBytes += int64(len(t.Data))
		dims := squeeze(t.Shape)
		if len(dims) != 2 || t.NumElements() < 4096 || t.DType != format.F32 {
			continue
		}
		f, err := t.Float32()
		if err != nil {
			return nil, 0, err
		}
		if strings.Contains(strings.ToLower(t.Name), "embedding") {
			out = append(out, matrix{t.Name, dims[0], dims[1], f})
			continue
		}
		in, outDim := dims[0], dims[1]
		tr := make([]float32, len(f))
		for i := 0; i < in; i++ {
			for j := 0; j < outDim; j++ {
				tr[j*in+i] = f[i*outDim+j]
			}
		}
		out = append(out, matrix{t.Name, outDim, in, tr})
	}
}

func squeeze(shape []int) []int {
	for len(shape) > 2 && shape[0] == 1 {
		shape = shape[1:]
	}
	return shape
}

// row is one configuration's result over the whole model.
type row struct {
	Format    string  `json:"format"`
	Bits      int     `json:"bits"`
	Scheme    string  `json:"scheme"`
	Group     int     `json:"group"`
	Search    bool    `json:"search"`
	RelRMS    float64 `json:"rel_rms"`
	SQNR      float64 `json:"sqnr_db"`
	Cosine    float64 `json:"cosine_min"` // worst matrix
	MaxAbs    float64 `json:"max_abs"`
	Bytes     int64   `json:"bytes"`
	F32Bytes  int64   `json:"f32_bytes"`
	Reduction float64 `json:"reduction_pct"`
	Seconds   float64 `json:"quantize_seconds"`
}

func report(w io.Writer, dir string, asJSON bool) error {
	start := time.Now()
	ms, fileBytes, err := loadMatrices(dir)
	if err != nil {
		return err
	}
	var params int64
	for _, m := range ms {
		params += int64(m.n * m.k)
	}
	if !asJSON {
		fmt.Fprintf(w, "model %s\n%d weight matrices, %d parameters (%.1f MB as float32) of %.1f MB of weights in the file, read in %v\n\n",
			dir, len(ms), params, float64(4*params)/1e6, float64(fileBytes)/1e6, time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(w, "%-18s %-6s %9s %9s %9s %10s %12s %10s %8s\n", "format", "search", "relRMS", "SQNR dB", "min cos", "max |err|", "bytes", "vs f32", "time")
	}
	enc := json.NewEncoder(w)
	for _, bits := range []int{2, 4, 8} {
		for _, sch := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
			for _, g := range []int{32, 128} {
				for _, search := range []bool{false, true} {
					f := quant.Format{Bits: bits, Scheme: sch, GroupSize: g}
					r, err := measure(ms, f, search)
					if err != nil {
						return err
					}
					if asJSON {
						enc.Encode(r)
						continue
					}
					fmt.Fprintf(w, "%-18s %-6v %9.4f %9.2f %9.5f %10.4g %12d %9.1f%% %7.2fs\n",
						r.Format, search, r.RelRMS, r.SQNR, r.Cosine, r.MaxAbs, r.Bytes, -r.Reduction, r.Seconds)
				}
			}
		}
	}
	if !asJSON {
		fmt.Fprintf(w, "\nrelRMS and SQNR pool all matrices (‖ŵ−w‖/‖w‖ over the model); bytes count codes, scales and zero points.\n")
	}
	return nil
}

// measure quantizes every matrix in format f on all cores and pools the error.
func measure(ms []matrix, f quant.Format, search bool) (row, error) {
	start := time.Now()
	type result struct {
		sig, noise, cos, maxAbs float64
		bytes                   int64
		err                     error
	}
	results := make([]result, len(ms))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, m := range ms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t, err := quant.Quantize(m.name, m.w, m.n, m.k, f, quant.Options{Search: search})
			if err != nil {
				results[i].err = err
				return
			}
			e, err := quant.WeightError(m.w, t)
			if err != nil {
				results[i].err = err
				return
			}
			var sig float64
			for _, v := range m.w {
				sig += float64(v) * float64(v)
			}
			results[i] = result{sig: sig, noise: e.RelRMS * e.RelRMS * sig, cos: e.Cosine, maxAbs: e.MaxAbs, bytes: int64(t.Bytes())}
		}()
	}
	wg.Wait()
	r := row{Format: f.String(), Bits: f.Bits, Scheme: f.Scheme.String(), Group: f.GroupSize, Search: search, Cosine: 1}
	var sig, noise float64
	for i, res := range results {
		if res.err != nil {
			return r, res.err
		}
		sig += res.sig
		noise += res.noise
		r.Cosine = math.Min(r.Cosine, res.cos)
		r.MaxAbs = math.Max(r.MaxAbs, res.maxAbs)
		r.Bytes += res.bytes
		r.F32Bytes += int64(4 * ms[i].n * ms[i].k)
	}
	r.RelRMS = math.Sqrt(noise / sig)
	r.SQNR = 10 * math.Log10(sig/noise)
	r.Reduction = 100 * (1 - float64(r.Bytes)/float64(r.F32Bytes))
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}
