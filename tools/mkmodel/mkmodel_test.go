package main

import (
	"bytes"
	"io"
	"math"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
)

// TestRoundTrip reads back what mkmodel writes with wasm/format's readers, in every format, and
// checks every tensor holds exactly the bytes its regenerated rows encode to.
func TestRoundTrip(t *testing.T) {
	cases := []options{
		{Shape: "custom", Rows: 64, Cols: 96},
		{Shape: "bert-base", Layers: 1},
	}
	for _, base := range cases {
		for name := range outFormats {
			o := base
			o.Format, o.Seed = name, 7
			if o.Shape == "bert-base" && name != "gguf-q4_0" && name != "safetensors-bf16" {
				continue // one quantized and one float pass over a real shape keep the test fast
			}
			var buf bytes.Buffer
			sum, err := generate(&buf, o)
			if err != nil {
				t.Fatalf("%v: %v", o, err)
			}
			r, err := format.Open(bytes.NewReader(buf.Bytes()), nil)
			if err != nil {
				t.Fatalf("%v: %v", o, err)
			}
			of := outFormats[name]
			m, _ := buildModel(o.Shape, o.Layers, o.Rows, o.Cols, o.Embed, of.gguf)
			specs := map[string]tensorSpec{}
			for _, s := range m.Tensors {
				specs[s.Name] = s
			}
			n := 0
			for {
				tn, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%v: %v", o, err)
				}
				n++
				spec, ok := specs[tn.Name]
				if !ok {
					t.Fatalf("%v: unexpected tensor %q", o, tn.Name)
				}
				want := regenerate(o.Seed, spec, tn.DType)
				if !bytes.Equal(tn.Data, want) {
					t.Fatalf("%v: %s: bytes differ from the regenerated rows", o, tn.Name)
				}
				if tn.DType == format.F32 {
					got, _ := tn.Float32()
					vals := values(o.Seed, spec)
					for i := range vals {
						if math.Float32bits(got[i]) != math.Float32bits(vals[i]) {
							t.Fatalf("%s[%d] = %v, generated %v", tn.Name, i, got[i], vals[i])
						}
					}
				}
			}
			if n != sum.Tensors || n != len(m.Tensors) {
				t.Fatalf("%v: read %d tensors, wrote %d", o, n, sum.Tensors)
			}
		}
	}
}

func values(seed uint64, s tensorSpec) []float32 {
	src := newRowSource(seed, s)
	out := make([]float32, src.n*src.k)
	for r := range src.n {
		src.next(out[r*src.k : (r+1)*src.k])
	}
	return out
}

func regenerate(seed uint64, s tensorSpec, d format.DType) []byte {
	src := newRowSource(seed, s)
	rb := rowBytes(d, src.k)
	out := make([]byte, src.n*rb)
	row := make([]float32, src.k)
	for r := range src.n {
		src.next(row)
		encodeRow(d, out[r*rb:(r+1)*rb], row)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	gen := func(seed uint64) []byte {
		var buf bytes.Buffer
		if _, err := generate(&buf, options{Shape: "custom", Rows: 32, Cols: 64, Format: "safetensors-f16", Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if !bytes.Equal(gen(3), gen(3)) {
		t.Fatal("same seed, different bytes")
	}
	if bytes.Equal(gen(3), gen(4)) {
		t.Fatal("different seeds, same bytes")
	}
}

// TestStatistics checks the weights look trained, not like a test pattern: spread near
// 1/sqrt(K), heavy tails from the outlier channels, and rows of different scales.
func TestStatistics(t *testing.T) {
	const n, k = 256, 1024
	w := values(1, tensorSpec{Name: "w", Shape: []int{n, k}})
	var sum, sq, m4, maxAbs float64
	rowRMS := make([]float64, n)
	for i, v := range w {
		x := float64(v)
		sum += x
		sq += x * x
		maxAbs = math.Max(maxAbs, math.Abs(x))
		rowRMS[i/k] += x * x
	}
	mean, std := sum/float64(len(w)), math.Sqrt(sq/float64(len(w)))
	for _, v := range w {
		d := float64(v) / std
		m4 += d * d * d * d
	}
	kurt := m4 / float64(len(w))
	if math.Abs(mean) > 0.1*std || std == 0 {
		t.Fatalf("mean %g, std %g", mean, std)
	}
	if base := 1 / math.Sqrt(k); std < base || std > 20*base {
		t.Fatalf("std %g, want near %g plus outliers", std, base)
	}
	if kurt < 5 {
		t.Fatalf("kurtosis %.1f: no heavy tails (normal is 3, uniform 1.8)", kurt)
	}
	if maxAbs < 10/math.Sqrt(k) {
		t.Fatalf("max |w| %g: outlier channels missing", maxAbs)
	}
	lo, hi := math.Inf(1), 0.0
	for _, r := range rowRMS {
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	if hi/lo < 2 {
		t.Fatalf("row energies within %.2f×: no per-row scale variation", hi/lo)
	}
	t.Logf("std %.4g (1/sqrt(K) = %.4g), kurtosis %.1f, max |w| %.3g, row energy spread %.1f×", std, 1/math.Sqrt(k), kurt, maxAbs, hi/lo)
}

func TestShapes(t *testing.T) {
	want := map[string]map[string][]int{
		"llama-7b": {
			"model.layers.0.self_attn.q_proj.weight": {4096, 4096},
			"model.layers.0.self_attn.k_proj.weight": {4096, 4096},
			"model.layers.0.mlp.gate_proj.weight":    {11008, 4096},
			"model.layers.0.mlp.up_proj.weight":      {11008, 4096},
			"model.layers.0.mlp.down_proj.weight":    {4096, 11008},
		},
		"llama-1b": {
			"model.layers.0.self_attn.k_proj.weight": {512, 2048},
			"model.layers.0.mlp.down_proj.weight":    {2048, 8192},
			"model.embed_tokens.weight":              {128256, 2048},
			"lm_head.weight":                         {128256, 2048},
		},
		"bert-base": {
			"bert.encoder.layer.0.intermediate.dense.weight": {3072, 768},
			"bert.encoder.layer.0.output.dense.weight":       {768, 3072},
		},
		"single-4096": {"weight": {4096, 4096}},
	}
	for shape, tensors := range want {
		m, err := buildModel(shape, 2, 0, 0, true, false)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]int{}
		for _, s := range m.Tensors {
			got[s.Name] = s.Shape
		}
		for name, sh := range tensors {
			if g := got[name]; len(g) != len(sh) || g[0] != sh[0] || g[1] != sh[1] {
				t.Errorf("%s: %s is %v, want %v", shape, name, g, sh)
			}
		}
	}
	if _, err := generate(io.Discard, options{Shape: "custom", Rows: 4, Cols: 48, Format: "gguf-q4_0"}); err == nil {
		t.Fatal("Q4_0 with rows of 48 values: want an error")
	}
}

// TestJobs checks that -j writes the same bytes as one tensor at a time.
func TestJobs(t *testing.T) {
	for _, o := range []options{
		{Shape: "llama-tiny", Format: "gguf-mixed", Seed: 3, Layers: 3, LLM: true},
		{Shape: "bert-base", Format: "safetensors-bf16", Seed: 3, Layers: 1},
	} {
		var one bytes.Buffer
		want, err := generate(&one, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, jobs := range []int{2, 5} {
			o.Jobs = jobs
			var many bytes.Buffer
			got, err := generate(&many, o)
			if err != nil {
				t.Fatal(err)
			}
			if got != want || !bytes.Equal(many.Bytes(), one.Bytes()) {
				t.Errorf("%s -j %d: %+v, %d bytes; one at a time %+v, %d bytes (or the bytes differ)", o.Shape, jobs, got, many.Len(), want, one.Len())
			}
		}
	}
}
