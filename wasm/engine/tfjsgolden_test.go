package engine

import (
	"encoding/json"
	"os"
	"testing"
)

// tfjsGolden is TF.js's own USE-lite output for the sentence set, token ids included
// (wasm/model/uselite/testdata/embeddings_tfjs.json, written by its gen/embed.mjs under node):
// the oracle of the native and the browser embed tests.
type tfjsGolden struct {
	Cases []struct {
		Text      string    `json:"text"`
		IDs       []int32   `json:"ids"`
		Embedding []float32 `json:"embedding"`
	} `json:"cases"`
}

func readTFJSGolden(t *testing.T) tfjsGolden {
	t.Helper()
	raw, err := os.ReadFile("../model/uselite/testdata/embeddings_tfjs.json")
	if err != nil {
		t.Fatal(err)
	}
	var g tfjsGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}
