//go:build js && wasm

package nn

import (
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
)

// TestGraphConformance runs the shared graph section (every op alone at awkward sizes, every
// weight format in Linear and Gather, an encoder and a decoder block) in the exact mode against
// the cpu interpreter, at the suite's default float32 bound.
func TestGraphConformance(t *testing.T) {
	b := newBackend(t, Options{})
	backendtest.RunGraphs(t, b, backendtest.GraphOptions{})
	for _, n := range b.Caps().Notes {
		t.Log("note: ", n)
	}
}
