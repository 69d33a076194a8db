// Package testutil holds the test helpers more than one package needs: model files written in
// memory. Only tests import it.
package testutil

import (
	"bytes"
	"io"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
)

// Safetensors returns a safetensors file declaring infos, with the header metadata meta, whose
// tensors hold data: each tensor's bytes in order (or all of them in one slice).
func Safetensors(t testing.TB, infos []format.TensorInfo, meta map[string]string, data ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := format.NewSafetensorsWriter(&buf, infos, meta)
	writeAll(t, w, err, data)
	return buf.Bytes()
}

// GGUF returns a GGUF file declaring infos, with the metadata meta, whose tensors hold data: each
// tensor's bytes in order (or all of them in one slice).
func GGUF(t testing.TB, infos []format.TensorInfo, meta []format.GGUFKV, data ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := format.NewGGUFWriter(&buf, infos, meta)
	writeAll(t, w, err, data)
	return buf.Bytes()
}

// writeAll writes data through w (err: the writer's constructor's) and closes it, failing t on
// any error: a writer refuses a byte more or less than the header declares.
func writeAll(t testing.TB, w io.WriteCloser, err error, data [][]byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		if _, err := w.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
