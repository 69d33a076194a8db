package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// fuzzLimits keep each fuzz input cheap; the properties hold for any limits.
var fuzzLimits = &Limits{MaxHeaderBytes: 1 << 20, MaxTensorBytes: 1 << 24, MaxTensors: 1 << 12, MaxArrayLen: 1 << 16, MaxStringBytes: 1 << 16}

// drain reads every tensor and checks the invariants that must hold for any input: errors wrap
// a sentinel, data matches the declared size, offsets only grow, and conversions never panic.
func drain(t *testing.T, r Reader, err error) {
	if err != nil {
		checkSentinel(t, err)
		return
	}
	var end int64
	for {
		tn, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if int64(len(tn.Data)) != tn.Size {
			t.Fatalf("%s: %d bytes, header says %d", tn.Name, len(tn.Data), tn.Size)
		}
		if tn.Offset < end {
			t.Fatalf("%s at %d overlaps data ending at %d", tn.Name, tn.Offset, end)
		}
		end = tn.Offset + tn.Size
		if _, err := tn.Float32(); err != nil {
			checkSentinel(t, err)
		}
		if q, err := tn.Quant(); err == nil {
			if err := q.Check(); err != nil {
				t.Fatalf("%s: Quant gave an inconsistent tensor: %v", tn.Name, err)
			}
		}
	}
}

func checkSentinel(t *testing.T, err error) {
	for _, s := range []error{ErrTruncated, ErrCorrupt, ErrUnsupported, ErrLimit} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

func seedFiles(tb testing.TB, kind fileKind) [][]byte {
	rng := rand.New(rand.NewPCG(9, 9))
	var out [][]byte
	dts := []DType{F32, F16, BF16, I8, U8}
	if kind == kindGGUF {
		dts = []DType{F32, F16, Q4_0, Q8_0, BF16}
	}
	var infos []TensorInfo
	var data [][]byte
	for _, d := range dts {
		info, _, b := randomTensor(rng, "t."+d.String(), d, 2, 32)
		infos, data = append(infos, info), append(data, b)
		out = append(out, writeFile(tb, kind, infos, data, rng))
	}
	return out
}

func FuzzSafetensors(f *testing.F) {
	for _, s := range seedFiles(f, kindSafetensors) {
		f.Add(s)
	}
	f.Add(st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(st(`{"__metadata__":{"a":"b"},"w":{"dtype":"BF16","shape":[1,2],"data_offsets":[4,8]}}   `, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewSafetensors(bytes.NewReader(data), fuzzLimits)
		drain(t, r, err)
	})
}

func FuzzGGUF(f *testing.F) {
	for _, s := range seedFiles(f, kindGGUF) {
		f.Add(s)
	}
	f.Add(gg(func(e *ggufEncoder) {
		ggHead(e, 2, 2, 1)
		e.str("general.alignment")
		e.u32(uint32(GGUFUint32))
		e.u32(8)
		ggTensor(e, "a", 2, 0, 32)
		ggTensor(e, "b", 8, 24, 32)
		e.raw(make([]byte, 64))
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewGGUF(bytes.NewReader(data), fuzzLimits)
		drain(t, r, err)
	})
}

func FuzzTFJS(f *testing.F) {
	m, data, _ := tfjsFixture()
	f.Add(mustJSON(map[string]any{"weightsManifest": m}), data)
	f.Add([]byte(`{"weightsManifest":[{"paths":["a"],"weights":[{"name":"w","shape":[2,2],"dtype":"float32","quantization":{"dtype":"uint8","scale":0.5,"min":-1}}]}]}`), []byte{1, 2, 3, 4})
	f.Add([]byte(`{"weightsManifest":[{"paths":["a"],"weights":[{"name":"w","shape":[3],"dtype":"int32","quantization":{"dtype":"uint16","scale":2,"min":1}}]}]}`), binary.LittleEndian.AppendUint16(nil, 7))
	f.Fuzz(func(t *testing.T, model, shards []byte) {
		m, err := ParseTFJSModel(bytes.NewReader(model), fuzzLimits)
		if err != nil {
			checkSentinel(t, err)
			return
		}
		r, err := NewTFJS(m, bytes.NewReader(shards), fuzzLimits)
		drain(t, r, err)
	})
}
