package testutil

import (
	"bytes"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
)

// TestFiles: both writers give files their readers read back, tensor for tensor.
func TestFiles(t *testing.T) {
	infos := []format.TensorInfo{{Name: "a", DType: format.F32, Shape: []int{2, 3}}, {Name: "b", DType: format.F32, Shape: []int{4}}}
	a, b := make([]byte, 24), make([]byte, 16)
	format.EncodeF32(a, []float32{1, 2, 3, 4, 5, 6})
	format.EncodeF32(b, []float32{7, 8, 9, 10})
	for _, c := range []struct {
		name string
		file []byte
		open func([]byte) (format.Reader, error)
	}{
		{"safetensors", Safetensors(t, infos, map[string]string{"format": "pt"}, a, b), func(f []byte) (format.Reader, error) { return format.NewSafetensors(bytes.NewReader(f), nil) }},
		{"safetensors, one slice", Safetensors(t, infos, nil, append(a, b...)), func(f []byte) (format.Reader, error) { return format.NewSafetensors(bytes.NewReader(f), nil) }},
		{"gguf", GGUF(t, infos, []format.GGUFKV{{Key: "general.name", Value: "t"}}, a, b), func(f []byte) (format.Reader, error) { return format.NewGGUF(bytes.NewReader(f), nil) }},
	} {
		r, err := c.open(c.file)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, want := range [][]byte{a, b} {
			tn, err := r.Next()
			if err != nil || tn.Name != infos[i].Name || !bytes.Equal(tn.Data, want) {
				t.Fatalf("%s: tensor %d: %v (%v), want %q with its bytes", c.name, i, tn, err, infos[i].Name)
			}
		}
	}
}
