//go:build js && wasm

package nn

import (
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestArgMaxRejected: a graph with ArgMax fails to compile with an error naming the op
// (greedy decoding on WebNN picks the token on the host).
func TestArgMaxRejected(t *testing.T) {
	b := newBackend(t, Options{})
	g := graph.New("argmax")
	if err := g.Output(g.ArgMax("next", g.Input("x", graph.Float32, 1, 8))); err != nil {
		t.Fatal(err)
	}
	p, err := b.Compile(g, backend.WeightMap{})
	if err == nil || !strings.Contains(err.Error(), "argmax is not supported on WebNN") {
		t.Errorf("compile: %v, want argmax named as unsupported", err)
	}
	if p != nil {
		t.Errorf("compile returned a program with its error")
	}
}
