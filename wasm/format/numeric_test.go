package format

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Issue 16: NaN and Inf passed the reader and the lossless mappings unremarked. Quant now names
// the tensor and where the value is; the GGUF block types are checked by their f16 scale.
func TestQuantNotFinite(t *testing.T) {
	vals := make([]float32, 2*64)
	for i := range vals {
		vals[i] = float32(i%7) - 3
	}
	for _, c := range []struct {
		dtype DType
		poke  func(b []byte) // puts a NaN or Inf in row 1
		where string
	}{
		{F32, func(b []byte) { binary.LittleEndian.PutUint32(b[4*(64+9):], math.Float32bits(float32(math.NaN()))) }, "row 1 column 9"},
		{F16, func(b []byte) { binary.LittleEndian.PutUint16(b[2*(64+3):], 0xFC00) }, "row 1 column 3"}, // -Inf
		{Q8_0, func(b []byte) { binary.LittleEndian.PutUint16(b[3*Q8_0BlockBytes:], 0x7E00) }, "row 1 column 32"},
		{Q4_0, func(b []byte) { binary.LittleEndian.PutUint16(b[2*Q4_0BlockBytes:], 0x7C00) }, "row 1 column 0"},
	} {
		data := encodeAs(c.dtype, vals)
		tt := &Tensor{TensorInfo: TensorInfo{Name: "blk.1.w", DType: c.dtype, Shape: []int{2, 64}, Size: int64(len(data))}, Data: data}
		if _, err := tt.Quant(); err != nil {
			t.Fatalf("%v: clean tensor: %v", c.dtype, err)
		}
		c.poke(data)
		_, err := tt.Quant()
		if !errors.Is(err, quant.ErrNotFinite) || !errors.Is(err, ErrCorrupt) || errs.Kind(err) != errs.ErrFormat {
			t.Fatalf("%v: err = %v, want ErrCorrupt and quant.ErrNotFinite", c.dtype, err)
		}
		if !strings.Contains(err.Error(), `"blk.1.w"`) || !strings.Contains(err.Error(), c.where) {
			t.Errorf("%v: %q does not name the tensor and %s", c.dtype, err, c.where)
		}
	}
}

func encodeAs(d DType, v []float32) []byte {
	switch d {
	case F32:
		b := make([]byte, 4*len(v))
		EncodeF32(b, v)
		return b
	case F16:
		b := make([]byte, 2*len(v))
		EncodeF16(b, v)
		return b
	case Q8_0:
		b := make([]byte, len(v)/32*Q8_0BlockBytes)
		EncodeQ8_0(b, v)
		return b
	}
	b := make([]byte, len(v)/32*Q4_0BlockBytes)
	EncodeQ4_0(b, v)
	return b
}

// Issue 16: a missing TF.js shard surfaced as a raw stat error naming the absolute local path.
// It is now errs.ErrNotFound, naming the shard as model.json does.
func TestTFJSDirMissingShard(t *testing.T) {
	m, data, _ := tfjsFixture()
	dir := t.TempDir()
	if _, err := OpenTFJSDir(dir); errs.Kind(err) != errs.ErrNotFound || strings.Contains(err.Error(), dir) {
		t.Fatalf("no model.json: %v, want errs.ErrNotFound without %s", err, dir)
	}
	os.WriteFile(filepath.Join(dir, "model.json"), []byte(`{"weightsManifest":`+string(mustJSON(m))+`}`), 0o644)
	os.WriteFile(filepath.Join(dir, "g1-shard1of1"), data[:6*4+3*4+2], 0o644)
	_, err := OpenTFJSDir(dir)
	if errs.Kind(err) != errs.ErrNotFound || !strings.Contains(err.Error(), "g2-shard1of2") {
		t.Fatalf("missing shard: %v, want errs.ErrNotFound naming g2-shard1of2", err)
	}
	if strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), os.TempDir()) {
		t.Fatalf("%q names a local path", err)
	}
}
