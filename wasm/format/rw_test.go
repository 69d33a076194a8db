package format

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// chunkReader hands out the stream in small, irregular pieces, as a network would.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	off  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data)-c.off, 1+c.rng.IntN(4096))
	copy(p, c.data[c.off:c.off+n])
	c.off += n
	return n, nil
}

// randomTensor returns values with a few large ones, encoded as d.
func randomTensor(rng *rand.Rand, name string, d DType, shape ...int) (TensorInfo, []float32, []byte) {
	info := TensorInfo{Name: name, DType: d, Shape: shape}
	n := int(info.NumElements())
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
		if rng.IntN(50) == 0 {
			f[i] *= 20
		}
	}
	be, bb := d.blockShape()
	b := make([]byte, int64(n)/be*bb)
	switch d {
	case F32:
		EncodeF32(b, f)
	case F16:
		EncodeF16(b, f)
	case BF16:
		EncodeBF16(b, f)
	case Q8_0:
		EncodeQ8_0(b, f)
	case Q4_0:
		EncodeQ4_0(b, f)
	case I8, U8:
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
	}
	return info, f, b
}

type fileKind int

const (
	kindSafetensors fileKind = iota
	kindGGUF
)

// writeFile writes tensors through the streaming writer in irregular pieces.
func writeFile(t testing.TB, kind fileKind, infos []TensorInfo, data [][]byte, rng *rand.Rand) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		io.Writer
		Close() error
	}
	var err error
	if kind == kindSafetensors {
		w, err = NewSafetensorsWriter(&buf, infos, map[string]string{"format": "pt", "seed": "1"})
	} else {
		w, err = NewGGUFWriter(&buf, infos, []GGUFKV{
			{Key: "general.architecture", Value: "llama"},
			{Key: "general.alignment", Value: uint32(64)},
			{Key: "llama.block_count", Value: uint32(1)},
			{Key: "tokenizer.ggml.tokens", Value: []string{"<s>", "</s>", "hello"}},
			{Key: "tokenizer.ggml.scores", Value: []float32{0, 0, -1.5}},
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		for len(d) > 0 {
			n := min(len(d), 1+rng.IntN(3000))
			if _, err := w.Write(d[:n]); err != nil {
				t.Fatal(err)
			}
			d = d[n:]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openKind(kind fileKind, r io.Reader) (Reader, error) {
	if kind == kindSafetensors {
		return NewSafetensors(r, nil)
	}
	return NewGGUF(r, nil)
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		kind   fileKind
		dtypes []DType
	}{
		{kindSafetensors, []DType{F32, F16, BF16, I8, U8}},
		{kindGGUF, []DType{F32, F16, BF16, Q8_0, Q4_0, I8}},
	}
	for _, c := range cases {
		var infos []TensorInfo
		var data [][]byte
		for i, d := range c.dtypes {
			info, _, b := randomTensor(rng, "layer."+d.String()+".weight", d, 3+i, 64)
			infos = append(infos, info)
			data = append(data, b)
			info, _, b = randomTensor(rng, "layer."+d.String()+".bias", d, 96)
			infos = append(infos, info)
			data = append(data, b)
		}
		file := writeFile(t, c.kind, infos, data, rng)
		for _, open := range []func() (Reader, error){
			func() (Reader, error) { return openKind(c.kind, &chunkReader{data: file, rng: rng}) },
			func() (Reader, error) { return Open(bytes.NewReader(file), nil) },
		} {
			r, err := open()
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Tensors()) != len(infos) {
				t.Fatalf("header lists %d tensors, wrote %d", len(r.Tensors()), len(infos))
			}
			for i := 0; ; i++ {
				tn, err := r.Next()
				if err == io.EOF {
					if i != len(infos) {
						t.Fatalf("read %d tensors, wrote %d", i, len(infos))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if tn.Name != infos[i].Name || tn.DType != infos[i].DType || !equalInts(tn.Shape, infos[i].Shape) {
					t.Fatalf("tensor %d: got %s %v %v, want %s %v %v", i, tn.Name, tn.DType, tn.Shape, infos[i].Name, infos[i].DType, infos[i].Shape)
				}
				if !bytes.Equal(tn.Data, data[i]) {
					t.Fatalf("%s: data differs", tn.Name)
				}
				if _, err := tn.Float32(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestEmitsAtLastByte checks that a tensor is delivered as soon as its last byte is read, and
// not a byte later: the loader must be able to quantize tensor i while tensor i+1 downloads.
func TestEmitsAtLastByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var infos []TensorInfo
	var data [][]byte
	for i := range 4 {
		info, _, b := randomTensor(rng, string(rune('a'+i)), F16, 8, 32)
		infos, data = append(infos, info), append(data, b)
	}
	for _, kind := range []fileKind{kindSafetensors, kindGGUF} {
		file := writeFile(t, kind, infos, data, rng)
		r, err := openKind(kind, bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		for {
			tn, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			off := r.Offset()
			if want := tn.Offset + tn.Size; off != want {
				t.Fatalf("kind %d %s: consumed %d bytes at emission, tensor ends at %d", kind, tn.Name, off, want)
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQuantLossless checks that Q4_0/Q8_0/F16/F32 map onto quant.Tensor with the exact values
// ggml's dequantization gives.
func TestQuantLossless(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, d := range []DType{Q4_0, Q8_0, F16, F32} {
		for _, shape := range [][]int{{3, 64}, {96}, {2, 2, 32}, {5, 7}} {
			if (d == Q4_0 || d == Q8_0) && shape[len(shape)-1]%32 != 0 {
				continue
			}
			info, _, b := randomTensor(rng, "w", d, shape...)
			tn := &Tensor{TensorInfo: info, Data: b}
			want, err := tn.Float32()
			if err != nil {
				t.Fatal(err)
			}
			q, err := tn.Quant()
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Check(); err != nil {
				t.Fatalf("%v %v: %v", d, shape, err)
			}
			got := quant.Dequantize(q)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v %v: element %d: quant gives %v, ggml %v", d, shape, i, got[i], want[i])
				}
			}
		}
	}
	if _, err := (&Tensor{TensorInfo: TensorInfo{Name: "b", DType: BF16, Shape: []int{2}}, Data: make([]byte, 4)}).Quant(); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("BF16 Quant: got %v, want ErrUnsupported", err)
	}
}

// TestQ4_0Layout pins the nibble order with a hand-built block: element j in the low nibble of
// byte j, element j+16 in the high nibble.
func TestQ4_0Layout(t *testing.T) {
	blk := make([]byte, Q4_0BlockBytes)
	blk[0], blk[1] = 0x00, 0x3C // f16 1.0
	for j := range 16 {
		blk[2+j] = byte(j) | byte(15-j)<<4
	}
	tn := &Tensor{TensorInfo: TensorInfo{Name: "q", DType: Q4_0, Shape: []int{32}}, Data: blk}
	f, err := tn.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for j := range 16 {
		if f[j] != float32(j-8) || f[j+16] != float32(7-j) {
			t.Fatalf("element %d = %v, %d = %v; want %d, %d", j, f[j], j+16, f[j+16], j-8, 7-j)
		}
	}
	q, _ := tn.Quant()
	for k := range 32 {
		if q.Q(0, k) != int(f[k]) {
			t.Fatalf("quant code %d = %d, want %v", k, q.Q(0, k), f[k])
		}
	}
}

func TestGGUFMetadata(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	info, _, b := randomTensor(rng, "w", Q4_0, 2, 32)
	file := writeFile(t, kindGGUF, []TensorInfo{info}, [][]byte{b}, rng)
	g, err := NewGGUF(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.Alignment != 64 || g.DataOffset%64 != 0 {
		t.Fatalf("alignment %d, data at %d", g.Alignment, g.DataOffset)
	}
	if v, _ := g.Meta("general.architecture"); v != "llama" {
		t.Fatalf("architecture %v", v)
	}
	if n, ok := GGUFMeta[uint32](g, "llama.block_count"); !ok || n != 1 {
		t.Fatalf("block_count %v %v", n, ok)
	}
	if _, ok := GGUFMeta[string](g, "llama.block_count"); ok {
		t.Fatal("block_count read as a string")
	}
	if v, _ := g.Meta("tokenizer.ggml.tokens"); len(v.([]string)) != 3 {
		t.Fatalf("tokens %v", v)
	}
	if v, _ := g.Meta("tokenizer.ggml.scores"); v.([]float32)[2] != -1.5 {
		t.Fatalf("scores %v", v)
	}
}

func TestNextIntoReuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var infos []TensorInfo
	var data [][]byte
	for i := range 3 {
		info, _, b := randomTensor(rng, string(rune('a'+i)), F32, 4+i, 32)
		infos, data = append(infos, info), append(data, b)
	}
	file := writeFile(t, kindSafetensors, infos, data, rng)
	r, err := NewSafetensors(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	for i := range 3 {
		tn, err := r.NextInto(buf)
		if err != nil {
			t.Fatal(err)
		}
		if &tn.Data[0] != &buf[0] || !bytes.Equal(tn.Data, data[i]) {
			t.Fatalf("tensor %d: not read into the caller's buffer, or wrong bytes", i)
		}
	}
}

func TestFloat8(t *testing.T) {
	cases := []struct {
		d    DType
		b    byte
		want float64
	}{
		{F8E4M3, 0x38, 1}, {F8E4M3, 0x7E, 448}, {F8E4M3, 0xB8, -1}, {F8E4M3, 0x01, math.Ldexp(1, -9)},
		{F8E4M3, 0x7F, math.NaN()}, {F8E5M2, 0x3C, 1}, {F8E5M2, 0x7B, 57344}, {F8E5M2, 0x7C, math.Inf(1)},
	}
	for _, c := range cases {
		tn := &Tensor{TensorInfo: TensorInfo{Name: "f8", DType: c.d, Shape: []int{1}}, Data: []byte{c.b}}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		g := float64(got[0])
		if g != c.want && !(math.IsNaN(g) && math.IsNaN(c.want)) {
			t.Errorf("%v %#02x = %v, want %v", c.d, c.b, g, c.want)
		}
	}
}
