//go:build !(js && wasm)

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/nibble-ml/nibble/wasm/quant"
)

func randomTensor(t *testing.T, rng *rand.Rand, n, k int, f quant.Format) *quant.Tensor {
	t.Helper()
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * 0.05
	}
	q, err := quant.Quantize("w", w, n, k, f, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// The conversion must not change one bit of any dequantized weight: ORT's (code − zero)·scale
// over the converted bytes equals nibble's s·(q − z) over the original ones, exactly.
func TestToORTExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		for _, scales := range []quant.ScaleType{quant.ScaleF32, quant.ScaleF16} {
			for _, group := range []int{16, 32, 64, 128} {
				// K: whole blocks (fast path), an odd number of blocks (zero-point padding),
				// a short last block (ORT's padded blob), an odd K (nibble row padding).
				for _, k := range []int{256, 96, 40, 77} {
					f := quant.Format{Bits: 4, Scheme: scheme, GroupSize: group, Scales: scales}
					name := fmt.Sprintf("%s/k%d", f, k)
					t.Run(name, func(t *testing.T) {
						q := randomTensor(t, rng, 7, k, f)
						o, err := ToORT(q)
						if err != nil {
							t.Fatal(err)
						}
						blocks := (k + group - 1) / group
						if o.Blocks != blocks || o.BlobSize != group/2 || len(o.B) != 7*blocks*group/2 || len(o.Scales) != 7*blocks {
							t.Fatalf("layout: blocks %d blob %d len(B) %d len(scales) %d", o.Blocks, o.BlobSize, len(o.B), len(o.Scales))
						}
						if scheme == quant.Symmetric && o.ZeroPoints != nil {
							t.Fatal("symmetric weights must use ORT's default zero point, not a zero_points input")
						}
						if scheme == quant.Asymmetric && len(o.ZeroPoints) != 7*((blocks+1)/2) {
							t.Fatalf("zero_points: %d bytes, want N·ceil(blocks/2) = %d", len(o.ZeroPoints), 7*((blocks+1)/2))
						}
						want, got := quant.Dequantize(q), o.Dequantize()
						for i := range want {
							if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
								t.Fatalf("weight (%d,%d): ORT layout gives %v, nibble %v", i/k, i%k, got[i], want[i])
							}
						}
						// Blob padding must dequantize to zero (code = zero point).
						for n := 0; n < 7; n++ {
							for kk := k; kk < blocks*group; kk++ {
								z := ortDefaultZero4
								if o.ZeroPoints != nil {
									z = quant.Code(o.ZeroPoints[n*((blocks+1)/2):], 4, kk/group, false)
								}
								if c := quant.Code(o.B[n*blocks*group/2:], 4, kk, false); c != z {
									t.Fatalf("row %d padding element %d: code %d, want the zero point %d", n, kk, c, z)
								}
							}
						}
					})
				}
			}
		}
	}
}

// Element 2i is the low nibble, and a symmetric code q is stored as q+8.
func TestToORTNibbleOrder(t *testing.T) {
	q := &quant.Tensor{Name: "w", N: 1, K: 32, Format: quant.Q4, Data: make([]byte, 16), Scales: make([]byte, 4)}
	binary.LittleEndian.PutUint32(q.Scales, math.Float32bits(1))
	quant.PutCode(q.Data, 4, 0, -8)
	quant.PutCode(q.Data, 4, 1, 7)
	quant.PutCode(q.Data, 4, 2, 0)
	quant.PutCode(q.Data, 4, 3, -1)
	o, err := ToORT(q)
	if err != nil {
		t.Fatal(err)
	}
	// element 0: −8+8 = 0 (low), element 1: 7+8 = 15 (high) → 0xF0; elements 2, 3: 8, 7 → 0x78.
	if o.B[0] != 0xF0 || o.B[1] != 0x78 || o.B[2] != 0x88 {
		t.Fatalf("first bytes % x, want f0 78 88", o.B[:3])
	}
}

func TestToORTRejects(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, f := range []quant.Format{
		{Bits: 8, GroupSize: 32},
		{Bits: 4, GroupSize: 0},
		{Bits: 4, GroupSize: 48},
	} {
		if _, err := ToORT(randomTensor(t, rng, 2, 96, f)); err == nil {
			t.Errorf("%s: converted, want an error", f)
		}
	}
}

// A tiny protobuf reader: enough to walk the messages onnx.go writes.
type field struct {
	num  int
	wire int
	v    uint64 // varint
	b    []byte // length-delimited
}

func decode(t *testing.T, b []byte) []field {
	t.Helper()
	var out []field
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			t.Fatalf("bad tag at %d bytes from the end", len(b))
		}
		b = b[n:]
		f := field{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				t.Fatal("bad varint")
			}
			b = b[n:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				t.Fatal("bad length")
			}
			f.b = b[n : n+int(l)]
			b = b[n+int(l):]
		default:
			t.Fatalf("field %d: wire type %d is never written", f.num, f.wire)
		}
		out = append(out, f)
	}
	return out
}

func fields(t *testing.T, b []byte, num int) []field {
	var out []field
	for _, f := range decode(t, b) {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

func one(t *testing.T, b []byte, num int) field {
	t.Helper()
	fs := fields(t, b, num)
	if len(fs) != 1 {
		t.Fatalf("field %d appears %d times, want once", num, len(fs))
	}
	return fs[0]
}

func TestONNXRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		q := randomTensor(t, rng, 12, 96, quant.Format{Bits: 4, Scheme: scheme, GroupSize: 32})
		o, err := ToORT(q)
		if err != nil {
			t.Fatal(err)
		}
		const m = 3
		model := MatMulNBitsModel(o, m)

		if v := one(t, model, 1).v; v != onnxIRVersion {
			t.Errorf("ir_version %d", v)
		}
		opsets := map[string]uint64{}
		for _, f := range fields(t, model, 8) {
			opsets[string(one(t, f.b, 1).b)] = one(t, f.b, 2).v
		}
		if opsets[""] != onnxDefaultOpset || opsets["com.microsoft"] != 1 {
			t.Errorf("opset_import %v", opsets)
		}
		graph := one(t, model, 7).b
		node := one(t, graph, 1).b
		if s := string(one(t, node, 4).b); s != "MatMulNBits" {
			t.Errorf("op_type %q", s)
		}
		if s := string(one(t, node, 7).b); s != "com.microsoft" {
			t.Errorf("domain %q", s)
		}
		var inputs []string
		for _, f := range fields(t, node, 1) {
			inputs = append(inputs, string(f.b))
		}
		wantInputs := []string{"A", "B", "scales"}
		if scheme == quant.Asymmetric {
			wantInputs = append(wantInputs, "zero_points")
		}
		if !slices.Equal(inputs, wantInputs) || string(one(t, node, 2).b) != "Y" {
			t.Errorf("node inputs %v", inputs)
		}
		attrs := map[string]uint64{}
		for _, f := range fields(t, node, 5) {
			if typ := one(t, f.b, 20).v; typ != attrInt {
				t.Errorf("attribute type %d", typ)
			}
			attrs[string(one(t, f.b, 1).b)] = one(t, f.b, 3).v
		}
		if attrs["K"] != 96 || attrs["N"] != 12 || attrs["bits"] != 4 || attrs["block_size"] != 32 {
			t.Errorf("attributes %v", attrs)
		}
		inits := map[string]field{}
		for _, f := range fields(t, graph, 5) {
			inits[string(one(t, f.b, 8).b)] = f
		}
		check := func(name string, typ uint64, dims []uint64, raw []byte) {
			f, ok := inits[name]
			if !ok {
				t.Errorf("initializer %s missing", name)
				return
			}
			var d []uint64
			for _, g := range fields(t, f.b, 1) {
				d = append(d, g.v)
			}
			if !slices.Equal(d, dims) || one(t, f.b, 2).v != typ || !bytes.Equal(one(t, f.b, 9).b, raw) {
				t.Errorf("initializer %s: dims %v type %d, want %v %d (or raw data differs)", name, d, one(t, f.b, 2).v, dims, typ)
			}
		}
		check("B", onnxUint8, []uint64{12, 3, 16}, o.B)
		check("scales", onnxFloat, []uint64{36}, float32Bytes(o.Scales))
		if scheme == quant.Asymmetric {
			check("zero_points", onnxUint8, []uint64{12 * 2}, o.ZeroPoints)
		} else if len(inits) != 2 {
			t.Errorf("%d initializers, want B and scales", len(inits))
		}
		for _, io := range []struct {
			field int
			name  string
			dims  []uint64
		}{{11, "A", []uint64{m, 96}}, {12, "Y", []uint64{m, 12}}} {
			vi := one(t, graph, io.field).b
			if s := string(one(t, vi, 1).b); s != io.name {
				t.Errorf("value info %q, want %q", s, io.name)
			}
			tensor := one(t, one(t, vi, 2).b, 1).b
			if one(t, tensor, 1).v != onnxFloat {
				t.Errorf("%s: elem_type", io.name)
			}
			var d []uint64
			for _, dim := range fields(t, one(t, tensor, 2).b, 1) {
				d = append(d, one(t, dim.b, 1).v)
			}
			if !slices.Equal(d, io.dims) {
				t.Errorf("%s: dims %v, want %v", io.name, d, io.dims)
			}
		}
	}
}

func TestParseShapes(t *testing.T) {
	s, err := ParseShapes("1x4096x4096, 128x4096x4096")
	if err != nil || !slices.Equal(s, []Shape{{1, 4096, 4096}, {128, 4096, 4096}}) {
		t.Fatalf("got %v, %v", s, err)
	}
	for _, bad := range []string{"", "1x2", "1x0x3", "ax2x3"} {
		if _, err := ParseShapes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLinesCompare(t *testing.T) {
	c, err := NewCase(Shape{2, 64, 96}, quant.Q4, 1)
	if err != nil {
		t.Fatal(err)
	}
	exact := slices.Clone(c.Ref)
	off := slices.Clone(c.Ref)
	off[0] += 1
	res := map[string]*Result{
		key("nibble-webnn", c.Name): {MS: []float64{2, 1, 3}, Output: exact},
		key("ort-webnn", c.Name):    {MS: []float64{4, 4, 4}, Output: off},
	}
	lines := Lines([]*Case{c}, []string{"nibble-webnn", "ort-webnn", "ort-wasm"}, res, nil)
	if l := lines[0]; l.RelRMS != 0 || l.MS != 2 || l.Speedup != 2 || l.Peer != "ort-webnn" || math.Abs(l.PeerMax-1) > 1e-6 {
		t.Errorf("nibble line %+v", l)
	}
	if l := lines[1]; math.Abs(l.MaxAbs-1) > 1e-6 || l.Peer != "" {
		t.Errorf("ort line %+v", l)
	}
	if l := lines[2]; l.Error == "" {
		t.Errorf("missing runtime reported no error: %+v", l)
	}
}

// Two rounds of one runtime pool their timed runs and keep the newest output; pages post the
// output before the result.
func TestServerPoolsRounds(t *testing.T) {
	c, err := NewCase(Shape{1, 32, 64}, quant.Q4, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cases: map[string]*Case{c.Name: c}, results: map[string]*Result{}, done: make(chan doneMsg, 1), logf: t.Logf}
	ts := httptest.NewServer(s.handler())
	defer ts.Close()
	postTo := func(path string, body []byte) {
		t.Helper()
		r, err := http.Post(ts.URL+path, "application/octet-stream", bytes.NewReader(body))
		if err != nil || r.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %v %v", path, err, r.Status)
		}
		r.Body.Close()
	}
	for round, v := range []float32{1, 2} {
		out := make([]float32, 32)
		out[0] = v
		postTo("/output?runtime=ort-wasm&case="+c.Name, float32Bytes(out))
		postTo("/result", []byte(fmt.Sprintf(`{"runtime":"ort-wasm","case":%q,"first_ms":%d,"ms":[%d,%d]}`, c.Name, 10*(round+1), round, round)))
	}
	r := s.results[key("ort-wasm", c.Name)]
	if !slices.Equal(r.MS, []float64{0, 0, 1, 1}) || r.FirstMS != 10 || r.Output[0] != 2 {
		t.Fatalf("pooled result: ms %v first %v output[0] %v", r.MS, r.FirstMS, r.Output[0])
	}
	// A /done from a page that is not awaited is dropped.
	s.expect("ort-webgpu")
	postTo("/done", []byte(`{"runtime":"ort-wasm"}`))
	postTo("/done", []byte(`{"runtime":"ort-webgpu"}`))
	if d := <-s.done; d.Runtime != "ort-webgpu" {
		t.Fatalf("done from %s", d.Runtime)
	}
}
