//go:build js && wasm

package llama

import (
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
)

// TestBrowserChainedGreedy runs greedy generation on webgpu, where Generate chains the decode
// steps (ArgMax on the device, ChainDepth queued ahead), against the step-by-step loop on the
// cpu and on webgpu itself (ChainDepth 0): the same ids, stops, errors and Pos. The cache it
// leaves gives the next token's logits as the step-by-step webgpu's does, exactly, and as the
// cpu's within float32 summation order (with f32 products: f16 ones are held to webgpu only).
func TestBrowserChainedGreedy(t *testing.T) {
	c := chainTiny
	g, err := gpu.New(gpu.Options{Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var eos int32
	run := func(b interface {
		Backend
		backend.Backend
	}, depth int) map[string]generation {
		old := ChainDepth
		ChainDepth = depth
		defer func() { ChainDepth = old }()
		m, err := New(&c, b, randomWeights(t, b, &c, 3), Options{Context: chainContext})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Release()
		if eos < 0 {
			eos = chainEOS(t, m)
		}
		out := chainCases(t, m, chainPrompt, eos)
		greedy := 0
		for k := range m.progs {
			if k.greedy {
				greedy++
			}
		}
		if want := map[bool]int{true: 3, false: 0}[depth > 0]; greedy != want {
			t.Errorf("%s, ChainDepth %d: %d programs end in ArgMax, want %d (one per cache bucket)", b.Name(), depth, greedy, want)
		}
		return out
	}
	eos = -1
	want := run(cpu.New(), 0)
	stepwise := run(g, 0)
	chained := run(g, ChainDepth)
	compareGenerations(t, chained, stepwise, 0)
	if g.ComputeF16() {
		// f16 products (Firefox's lavapipe) move the logits by ~2e-3: near ties may flip.
		t.Log("f16 products: the cpu comparison is skipped; chained and step by step agree exactly")
		return
	}
	compareGenerations(t, chained, want, 1e-4)
}
