package format

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// st builds a safetensors stream from a literal header and data.
func st(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// gg builds a GGUF stream with the encoder the writer uses, so tests can write anything.
func gg(build func(e *ggufEncoder)) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	build(&ggufEncoder{w: w})
	w.Flush()
	return buf.Bytes()
}

// ggHead writes magic, version and counts.
func ggHead(e *ggufEncoder, version uint32, tensors, kvs uint64) {
	e.raw([]byte(GGUFMagic))
	e.u32(version)
	e.u64(tensors)
	e.u64(kvs)
}

// ggTensor writes one tensor info; ne is innermost first, as in the file.
func ggTensor(e *ggufEncoder, name string, typ uint32, off uint64, ne ...uint64) {
	e.str(name)
	e.u32(uint32(len(ne)))
	for _, v := range ne {
		e.u64(v)
	}
	e.u32(typ)
	e.u64(off)
}

// readAll runs a reader to the end and returns the first error (nil at a clean EOF).
func readAll(r Reader, err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func TestSafetensorsHostile(t *testing.T) {
	f32x2 := make([]byte, 8)
	cases := []struct {
		name    string
		file    []byte
		want    error  // nil: must read cleanly
		mention string // the error must name this
	}{
		{"empty", nil, ErrTruncated, "byte 0"},
		{"header size only", st("", nil)[:8], ErrCorrupt, ""},
		{"huge header size", binary.LittleEndian.AppendUint64(nil, 1<<40), ErrLimit, ""},
		{"header declared, absent", binary.LittleEndian.AppendUint64(nil, 1000), ErrTruncated, ""},
		{"not an object", st(`[1,2]`, nil), ErrCorrupt, ""},
		{"bad json", st(`{"a":`, nil), ErrCorrupt, ""},
		{"trailing garbage", st(`{}xx`, nil), ErrCorrupt, ""},
		{"padded header", st(`{}      `, nil), nil, ""},
		{"unknown dtype", st(`{"w":{"dtype":"F4","shape":[2],"data_offsets":[0,2]}}`, f32x2), ErrUnsupported, `"w"`},
		{"no shape", st(`{"w":{"dtype":"F32","data_offsets":[0,8]}}`, f32x2), ErrCorrupt, `"w"`},
		{"negative dim", st(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32x2), ErrCorrupt, `"w"`},
		{"shape overflow", st(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}`, f32x2), ErrLimit, `"w"`},
		{"offsets disagree with shape", st(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, f32x2), ErrCorrupt, `"w"`},
		{"offsets reversed", st(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, f32x2), ErrCorrupt, `"w"`},
		{"one offset", st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, f32x2), ErrCorrupt, `"w"`},
		{"huge offset", st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[9223372036854775800,9223372036854775808]}}`, f32x2), ErrCorrupt, `"w"`},
		{"overlap", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32x2), ErrCorrupt, "overlaps"},
		{"duplicate", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32x2), ErrCorrupt, "twice"},
		{"metadata not strings", st(`{"__metadata__":{"a":1}}`, nil), ErrCorrupt, "__metadata__"},
		{"truncated data", st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32x2[:5]), ErrTruncated, `"w" at byte 62`},
		{"truncated in gap", st(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[100,104]}}`, f32x2), ErrTruncated, `"w"`},
		{"gap skipped", st(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32x2), nil, ""},
		{"zero-size", st(`{"e":{"dtype":"F16","shape":[0,3],"data_offsets":[8,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32x2), nil, ""},
		{"scalar", st(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32x2[:4]), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readAll(NewSafetensors(bytes.NewReader(c.file), nil))
			checkErr(t, err, c.want, c.mention)
		})
	}
}

func checkErr(t *testing.T, err, want error, mention string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), mention) {
		t.Fatalf("error %q does not mention %q", err, mention)
	}
}

func TestGGUFHostile(t *testing.T) {
	pad := func(e *ggufEncoder) { e.raw(make([]byte, int(alignUp(e.n, 32)-e.n))) }
	ok := func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 2); pad(e); e.raw(make([]byte, 8)) }
	cases := []struct {
		name    string
		file    []byte
		want    error
		mention string
	}{
		{"valid", gg(ok), nil, ""},
		{"valid v2", gg(func(e *ggufEncoder) { ggHead(e, 2, 1, 0); ggTensor(e, "w", 0, 0, 2); pad(e); e.raw(make([]byte, 8)) }), nil, ""},
		{"empty", nil, ErrTruncated, ""},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), ErrCorrupt, "magic"},
		{"version 1", gg(func(e *ggufEncoder) { ggHead(e, 1, 0, 0) }), ErrUnsupported, "version 1"},
		{"too many tensors", gg(func(e *ggufEncoder) { ggHead(e, 3, 1<<40, 0) }), ErrLimit, ""},
		{"too many kvs", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1<<40) }), ErrLimit, ""},
		{"huge key", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.u64(1 << 50) }), ErrLimit, "string"},
		{"key declared, absent", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.u64(1 << 20) }), ErrTruncated, "metadata entry 0"},
		{"bad value type", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("k"); e.u32(13) }), ErrCorrupt, `"k"`},
		{"bad bool", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("k"); e.u32(7); e.u8(2) }), ErrCorrupt, "bool"},
		{"huge array", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("k"); e.u32(9); e.u32(0); e.u64(1 << 40) }), ErrLimit, "array"},
		{"array declared, absent", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("k"); e.u32(9); e.u32(8); e.u64(1 << 20) }), ErrTruncated, `"k"`},
		{"deep arrays", gg(func(e *ggufEncoder) {
			ggHead(e, 3, 0, 1)
			e.str("k")
			e.u32(9) // value type: array
			for range 4 {
				e.u32(9) // element type: array
				e.u64(1)
			}
		}), ErrLimit, "nested"},
		{"alignment zero", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("general.alignment"); e.u32(4); e.u32(0) }), ErrCorrupt, "alignment"},
		{"alignment wrong type", gg(func(e *ggufEncoder) { ggHead(e, 3, 0, 1); e.str("general.alignment"); e.u32(10); e.u64(32) }), ErrCorrupt, "alignment"},
		{"too many dims", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1) }), ErrLimit, `"w"`},
		{"dims overflow", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 1<<40, 1<<40) }), ErrLimit, `"w"`},
		{"unknown type", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 16, 0, 256) }), ErrUnsupported, "ggml type 16"},
		{"q4_k streams raw", gg(func(e *ggufEncoder) {
			ggHead(e, 3, 1, 0)
			ggTensor(e, "w", 12, 0, 256, 2)
			pad(e)
			e.raw(make([]byte, 288))
		}), nil, ""},
		{"q6_k row not whole blocks", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 14, 0, 128) }), ErrCorrupt, "multiple of 256"},
		{"q4_0 row not whole blocks", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 2, 0, 48, 2) }), ErrCorrupt, `"w"`},
		{"misaligned offset", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 4, 2) }), ErrCorrupt, "alignment"},
		{"overlap", gg(func(e *ggufEncoder) { ggHead(e, 3, 2, 0); ggTensor(e, "a", 0, 0, 16); ggTensor(e, "b", 0, 32, 16) }), ErrCorrupt, "overlaps"},
		{"duplicate", gg(func(e *ggufEncoder) { ggHead(e, 3, 2, 0); ggTensor(e, "a", 0, 0, 2); ggTensor(e, "a", 0, 32, 2) }), ErrCorrupt, "twice"},
		{"truncated info", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); e.str("w"); e.u32(2); e.u64(2) }), ErrTruncated, `"w"`},
		{"truncated data", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 2); pad(e); e.raw(make([]byte, 7)) }), ErrTruncated, "got 7 of 8"},
		{"truncated padding", gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 2) }), ErrTruncated, `"w"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkErr(t, readAll(NewGGUF(bytes.NewReader(c.file), nil)), c.want, c.mention)
		})
	}
}

func TestTFJSHostile(t *testing.T) {
	w := func(name string, shape []int64, dtype string, q *TFJSQuantization) TFJSManifest {
		return TFJSManifest{{Paths: []string{"s"}, Weights: []TFJSWeight{{Name: name, Shape: shape, DType: dtype, Quantization: q}}}}
	}
	cases := []struct {
		name    string
		m       TFJSManifest
		data    []byte
		want    error
		mention string
	}{
		{"string dtype", w("s", []int64{1}, "string", nil), nil, ErrUnsupported, `"s"`},
		{"complex", w("c", []int64{1}, "complex64", nil), nil, ErrUnsupported, `"c"`},
		{"negative", w("n", []int64{-1}, "float32", nil), nil, ErrCorrupt, `"n"`},
		{"overflow", w("o", []int64{1 << 40, 1 << 40}, "float32", nil), nil, ErrLimit, `"o"`},
		{"bad quant", w("q", []int64{1}, "float32", &TFJSQuantization{DType: "int4"}), nil, ErrUnsupported, `"q"`},
		{"bool quant", w("b", []int64{1}, "bool", &TFJSQuantization{DType: "uint8"}), nil, ErrUnsupported, `"b"`},
		{"f16 of int", w("i", []int64{1}, "int32", &TFJSQuantization{DType: "float16"}), nil, ErrUnsupported, `"i"`},
		{"truncated", w("t", []int64{4}, "float32", nil), make([]byte, 15), ErrTruncated, `"t" at byte 0: truncated: got 15 of 16`},
		{"ok", w("t", []int64{4}, "float32", nil), make([]byte, 16), nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkErr(t, readAll(NewTFJS(c.m, bytes.NewReader(c.data), nil)), c.want, c.mention)
		})
	}
	if _, err := ParseTFJSModel(strings.NewReader(`{"weightsManifest":[`), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad model.json: %v", err)
	}
	if _, err := ParseTFJSModel(strings.NewReader(`{"modelTopology":{}}`), nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("no manifest: %v", err)
	}
	if _, err := ParseTFJSModel(strings.NewReader(`{"weightsManifest":[]}        `), &Limits{MaxHeaderBytes: 10}); !errors.Is(err, ErrLimit) {
		t.Fatalf("over limit: %v", err)
	}
}

// TestAllocationBoundedByPresentBytes: a header that declares a 60 GB tensor over a stream of
// a few KB must not make the reader allocate gigabytes before noticing the stream is short.
func TestAllocationBoundedByPresentBytes(t *testing.T) {
	files := map[string]func() (Reader, error){
		"safetensors": func() (Reader, error) {
			return NewSafetensors(bytes.NewReader(st(`{"w":{"dtype":"F32","shape":[15000000000],"data_offsets":[0,60000000000]}}`, make([]byte, 4096))), nil)
		},
		"gguf": func() (Reader, error) {
			return NewGGUF(bytes.NewReader(gg(func(e *ggufEncoder) {
				ggHead(e, 3, 1, 0)
				ggTensor(e, "w", 0, 0, 15000000000)
				e.raw(make([]byte, 4096))
			})), nil)
		},
		"tfjs": func() (Reader, error) {
			return NewTFJS(TFJSManifest{{Weights: []TFJSWeight{{Name: "w", Shape: []int64{15000000000}, DType: "float32"}}}}, bytes.NewReader(make([]byte, 4096)), nil)
		},
	}
	for name, open := range files {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := readAll(open())
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("%s: got %v, want ErrTruncated", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Fatalf("%s: allocated %d bytes for a 4 KB stream", name, alloc)
		}
	}
}

// TestStreamSize: with the stream length known, a tensor past the end fails with the header,
// before any data is read.
func TestStreamSize(t *testing.T) {
	file := st(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, make([]byte, 16))
	lim := &Limits{StreamSize: int64(len(file)) - 1}
	if _, err := NewSafetensors(bytes.NewReader(file), lim); !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), `"w"`) {
		t.Fatalf("safetensors: got %v, want ErrTruncated naming \"w\"", err)
	}
	if _, err := NewSafetensors(bytes.NewReader(file), &Limits{StreamSize: 20}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("safetensors header past the end: got %v", err)
	}
	lim.StreamSize++
	checkErr(t, readAll(NewSafetensors(bytes.NewReader(file), lim)), nil, "")
	g := gg(func(e *ggufEncoder) { ggHead(e, 3, 1, 0); ggTensor(e, "w", 0, 0, 2); e.raw(make([]byte, 8)) })
	if _, err := NewGGUF(bytes.NewReader(g), &Limits{StreamSize: int64(len(g))}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("gguf: got %v, want ErrTruncated", err)
	}
	m := TFJSManifest{{Weights: []TFJSWeight{{Name: "w", Shape: []int64{4}, DType: "float32"}}}}
	if _, err := NewTFJS(m, bytes.NewReader(nil), &Limits{StreamSize: 15}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("tfjs: got %v, want ErrTruncated", err)
	}
}
