package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/nibble-ml/nibble/wasm/format"
)

// outFormat is a -format value: a container and the stored types of matrices and of vectors.
// low, where set, is the type of the FFN's matrices and of the token table (gguf-mixed).
type outFormat struct {
	gguf                bool
	matrix, vector, low format.DType
}

// GGUF files keep 1-D tensors (norms, biases) in F32, as llama.cpp's converters do.
var outFormats = map[string]outFormat{
	"safetensors-f32":  {gguf: false, matrix: format.F32, vector: format.F32},
	"safetensors-f16":  {gguf: false, matrix: format.F16, vector: format.F16},
	"safetensors-bf16": {gguf: false, matrix: format.BF16, vector: format.BF16},
	"gguf-f32":         {gguf: true, matrix: format.F32, vector: format.F32},
	"gguf-f16":         {gguf: true, matrix: format.F16, vector: format.F32},
	"gguf-q8_0":        {gguf: true, matrix: format.Q8_0, vector: format.F32},
	"gguf-q4_0":        {gguf: true, matrix: format.Q4_0, vector: format.F32},
	// The formats of the GPU backend's 7B decode benchmark (wasm/backend/gpu BenchmarkDecode):
	// int8 attention and head, int4 FFN and token table, as llama.cpp's types.
	"gguf-mixed": {gguf: true, matrix: format.Q8_0, vector: format.F32, low: format.Q4_0},
}

// matrixType is the stored type of the matrix called name.
func (of outFormat) matrixType(name string) format.DType {
	if of.low != format.DTypeInvalid && (strings.HasPrefix(name, "token_embd.") || strings.Contains(name, ".ffn_")) {
		return of.low
	}
	return of.matrix
}

// options are the command line, minus the output path.
type options struct {
	Shape, Format string
	Seed          uint64
	Layers        int
	Rows, Cols    int
	Embed         bool // add embeddings, final norm and output head
	LLM           bool // a complete decoder llama.cpp runs (llm.go): metadata and tokenizer too
	Tokenizer     string
	Context       int
	Peak          float64
	Jobs          int // tensors encoded at once (writeParallel); ≤ 1: one row at a time
}

// summary is what generate reports.
type summary struct {
	Tensors int
	Params  int64
}

// generate writes the model to w one row at a time: memory stays at a row's worth of values,
// whatever the model size.
func generate(w io.Writer, o options) (summary, error) {
	of, ok := outFormats[o.Format]
	if !ok {
		return summary{}, fmt.Errorf("unknown -format %q (want safetensors-f32|f16|bf16 or gguf-f32|f16|q8_0|q4_0|mixed)", o.Format)
	}
	var m *model
	var err error
	if o.LLM {
		m, err = llmModel(o)
	} else {
		m, err = buildModel(o.Shape, o.Layers, o.Rows, o.Cols, o.Embed, of.gguf)
	}
	if err != nil {
		return summary{}, err
	}
	infos := make([]format.TensorInfo, len(m.Tensors))
	for i, t := range m.Tensors {
		d := of.vector
		if len(t.Shape) == 2 {
			d = of.matrixType(t.Name)
			if (d == format.Q4_0 || d == format.Q8_0) && t.Shape[1]%format.BlockElems != 0 {
				return summary{}, fmt.Errorf("%s: %v needs rows of a multiple of %d values, %s has %d", o.Format, d, format.BlockElems, t.Name, t.Shape[1])
			}
		}
		infos[i] = format.TensorInfo{Name: t.Name, DType: d, Shape: t.Shape}
	}
	var out writeCloser
	if of.gguf {
		meta := append([]format.GGUFKV{
			{Key: "general.name", Value: fmt.Sprintf("nibble synthetic %s seed %d", o.Shape, o.Seed)},
		}, m.Meta...)
		out, err = format.NewGGUFWriter(w, infos, meta)
	} else {
		out, err = format.NewSafetensorsWriter(w, infos, map[string]string{
			"format": "pt", "generator": "nibble/tools/mkmodel", "shape": o.Shape, "seed": fmt.Sprint(o.Seed),
		})
	}
	if err != nil {
		return summary{}, err
	}
	if o.Jobs > 1 {
		return writeParallel(out, o, m, infos)
	}
	var sum summary
	for i, t := range m.Tensors {
		n, err := encodeTensor(o.Seed, m, t, infos[i].DType, func(b []byte) error {
			_, err := out.Write(b)
			return err
		})
		if err != nil {
			return sum, err
		}
		sum.Tensors++
		sum.Params += n
	}
	return sum, out.Close()
}

// writeCloser is a model file's writer (GGUF or safetensors).
type writeCloser interface {
	io.Writer
	Close() error
}

// encodeTensor generates tensor t row by row, encodes each row as d and hands it to emit (the
// row's buffer is reused for the next); it returns the tensor's parameters.
func encodeTensor(seed uint64, m *model, t tensorSpec, d format.DType, emit func([]byte) error) (int64, error) {
	src := newRowSource(seed, t)
	if sc, ok := m.Scale[t.Name]; ok {
		src.std *= sc
	}
	row := make([]float32, src.k)
	buf := make([]byte, rowBytes(d, src.k))
	for range src.n {
		if f, ok := m.Fixed[t.Name]; ok {
			copy(row, f)
		} else {
			src.next(row)
		}
		encodeRow(d, buf, row)
		if err := emit(buf); err != nil {
			return 0, fmt.Errorf("%s: %w", t.Name, err)
		}
	}
	return int64(src.n) * int64(src.k), nil
}

// writeParallel is generate's loop with o.Jobs tensors encoded at once, each whole in memory,
// written in order: the same bytes as one at a time, with at most o.Jobs tensors held.
func writeParallel(out writeCloser, o options, m *model, infos []format.TensorInfo) (summary, error) {
	type encoded struct {
		data   []byte
		params int64
		err    error
	}
	done := make([]chan encoded, len(m.Tensors))
	for i := range done {
		done[i] = make(chan encoded, 1)
	}
	slots := make(chan struct{}, o.Jobs) // a slot a tensor encoded and not yet written
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, t := range m.Tensors {
			select {
			case slots <- struct{}{}:
			case <-stop:
				return
			}
			go func() {
				var e encoded
				e.params, e.err = encodeTensor(o.Seed, m, t, infos[i].DType, func(b []byte) error {
					e.data = append(e.data, b...)
					return nil
				})
				done[i] <- e
			}()
		}
	}()
	var sum summary
	for i := range m.Tensors {
		e := <-done[i]
		if e.err != nil {
			return sum, e.err
		}
		if _, err := out.Write(e.data); err != nil {
			return sum, fmt.Errorf("%s: %w", m.Tensors[i].Name, err)
		}
		<-slots
		sum.Tensors++
		sum.Params += e.params
	}
	return sum, out.Close()
}

func rowBytes(d format.DType, k int) int {
	switch d {
	case format.F32:
		return 4 * k
	case format.F16, format.BF16:
		return 2 * k
	case format.Q8_0:
		return k / format.BlockElems * format.Q8_0BlockBytes
	case format.Q4_0:
		return k / format.BlockElems * format.Q4_0BlockBytes
	}
	panic("mkmodel: no encoder for " + d.String())
}

func encodeRow(d format.DType, dst []byte, row []float32) {
	switch d {
	case format.F32:
		format.EncodeF32(dst, row)
	case format.F16:
		format.EncodeF16(dst, row)
	case format.BF16:
		format.EncodeBF16(dst, row)
	case format.Q8_0:
		format.EncodeQ8_0(dst, row)
	case format.Q4_0:
		format.EncodeQ4_0(dst, row)
	}
}

// rowSource draws one tensor's values row by row. Its stream depends only on the seed and the
// tensor's name, so any tensor can be regenerated alone (tests do) and values do not shift when
// layers are added.
type rowSource struct {
	rng      *rand.Rand
	kind     kind
	n, k     int
	std      float64
	colScale []float32 // weights: 1, or 10–50 for the outlier input channels
}

func newRowSource(seed uint64, t tensorSpec) *rowSource {
	h := fnv.New64a()
	h.Write([]byte(t.Name))
	s := &rowSource{rng: rand.New(rand.NewPCG(seed, h.Sum64())), kind: t.Kind, n: 1, k: t.Shape[0]}
	if len(t.Shape) == 2 {
		s.n, s.k = t.Shape[0], t.Shape[1]
	}
	if s.kind != weight && s.kind != embedding {
		return s
	}
	// Init-like spread (Llama-7B's projections have std ≈ 0.02 for K = 4096).
	s.std = 1 / math.Sqrt(float64(s.k))
	// Trained transformers have a few input channels far larger than the rest (the "emergent
	// outliers" that make per-tensor int8 fail): about one in 512, at least one, 10–50×.
	s.colScale = make([]float32, s.k)
	for i := range s.colScale {
		s.colScale[i] = 1
	}
	if s.kind == embedding {
		return s
	}
	for range max(1, s.k/512) {
		s.colScale[s.rng.IntN(s.k)] = float32(10 + 40*s.rng.Float64())
	}
	return s
}

// next fills row with the next row's values.
func (s *rowSource) next(row []float32) {
	switch s.kind {
	case gain:
		for i := range row {
			row[i] = float32(1 + 0.05*s.rng.NormFloat64())
		}
	case bias:
		for i := range row {
			row[i] = float32(0.02 * s.rng.NormFloat64())
		}
	default:
		// Row norms vary over about a factor of two either way (log-normal), as trained rows do.
		rs := s.std * math.Exp(0.35*s.rng.NormFloat64())
		for i := range row {
			row[i] = float32(rs*s.rng.NormFloat64()) * s.colScale[i]
		}
	}
}
