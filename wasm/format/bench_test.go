package format

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchFile builds a ~32 MB file of 1024×2048 matrices of d.
func benchFile(b *testing.B, kind fileKind, d DType) []byte {
	rng := rand.New(rand.NewPCG(1, 1))
	var infos []TensorInfo
	var data [][]byte
	_, bb := d.blockShape()
	be, _ := d.blockShape()
	for i := 0; len(infos) == 0 || int64(len(infos))*1024*2048/be*bb < 32<<20; i++ {
		info, _, raw := randomTensor(rng, "blk."+string(rune('a'+i))+".weight", d, 1024, 2048)
		infos, data = append(infos, info), append(data, raw)
	}
	return writeFile(b, kind, infos, data, rng)
}

func benchRead(b *testing.B, file []byte, open func(io.Reader) (Reader, error), convert func(*Tensor) error) {
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := open(bytes.NewReader(file))
		if err != nil {
			b.Fatal(err)
		}
		for {
			t, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if convert != nil {
				if err := convert(t); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

func openST(r io.Reader) (Reader, error)   { return NewSafetensors(r, nil) }
func openGGUF(r io.Reader) (Reader, error) { return NewGGUF(r, nil) }
func toF32(t *Tensor) error                { _, err := t.Float32(); return err }
func toQuant(t *Tensor) error              { _, err := t.Quant(); return err }

func BenchmarkSafetensorsF16(b *testing.B) {
	benchRead(b, benchFile(b, kindSafetensors, F16), openST, nil)
}

func BenchmarkSafetensorsF16ToFloat32(b *testing.B) {
	benchRead(b, benchFile(b, kindSafetensors, F16), openST, toF32)
}

func BenchmarkSafetensorsBF16ToFloat32(b *testing.B) {
	benchRead(b, benchFile(b, kindSafetensors, BF16), openST, toF32)
}

func BenchmarkGGUFQ4_0(b *testing.B) {
	benchRead(b, benchFile(b, kindGGUF, Q4_0), openGGUF, nil)
}

func BenchmarkGGUFQ4_0ToQuant(b *testing.B) {
	benchRead(b, benchFile(b, kindGGUF, Q4_0), openGGUF, toQuant)
}

func BenchmarkGGUFQ8_0ToQuant(b *testing.B) {
	benchRead(b, benchFile(b, kindGGUF, Q8_0), openGGUF, toQuant)
}

func BenchmarkGGUFQ4_0ToFloat32(b *testing.B) {
	benchRead(b, benchFile(b, kindGGUF, Q4_0), openGGUF, toF32)
}

// BenchmarkTFJSRealModel streams USE-lite's 27.9 MB of shards from memory.
func BenchmarkTFJSRealModel(b *testing.B) {
	f, err := os.Open(filepath.Join(useDir, "model.json"))
	if err != nil {
		b.Skipf("npm model not installed: %v", err)
	}
	m, err := ParseTFJSModel(f, nil)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	var shards []byte
	for _, g := range m {
		for _, p := range g.Paths {
			s, err := os.ReadFile(filepath.Join(useDir, p))
			if err != nil {
				b.Fatal(err)
			}
			shards = append(shards, s...)
		}
	}
	open := func(r io.Reader) (Reader, error) { return NewTFJS(m, r, nil) }
	b.Run("raw", func(b *testing.B) { benchRead(b, shards, open, nil) })
	b.Run("float32", func(b *testing.B) { benchRead(b, shards, open, toF32) })
}

// BenchmarkSafetensorsF16Sized is BenchmarkSafetensorsF16 with the stream length known, as with a
// Content-Length: one exact allocation per tensor instead of a doubling buffer.
func BenchmarkSafetensorsF16Sized(b *testing.B) {
	file := benchFile(b, kindSafetensors, F16)
	benchRead(b, file, func(r io.Reader) (Reader, error) {
		return NewSafetensors(r, &Limits{StreamSize: int64(len(file))})
	}, nil)
}

// The decoders alone, into a reused buffer: what a CPU backend pays per weight after loading.
func benchDecode(b *testing.B, d DType, decode func([]float32, []byte)) {
	rng := rand.New(rand.NewPCG(2, 2))
	_, _, raw := randomTensor(rng, "w", d, 1024, 4096)
	dst := make([]float32, 1024*4096)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		decode(dst, raw)
	}
}

func BenchmarkDecodeQ4_0(b *testing.B) { benchDecode(b, Q4_0, DecodeQ4_0) }
func BenchmarkDecodeQ8_0(b *testing.B) { benchDecode(b, Q8_0, DecodeQ8_0) }
