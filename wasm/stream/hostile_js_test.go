//go:build js && wasm

package stream

import (
	"context"
	"testing"
)

// TestHostileLinearMemory: in the browser the whole hostile corpus, loaded with and without its
// size, grows the page's WebAssembly memory (which never shrinks) by little. Before issue 16 the
// first of these files ended the tab: the runtime cannot grow linear memory past 4 GiB.
func TestHostileLinearMemory(t *testing.T) {
	before := LinearMemoryBytes()
	for _, c := range hostileCases() {
		if c.tfjs != "" {
			continue // TestHostileLoad runs it; here the point is the files' own declarations
		}
		file := hostileFile(t, c.file)
		for _, size := range []int64{0, int64(len(file))} {
			src := Source{Name: c.file, Open: (&memServer{data: file}).open, Size: size}
			_, err := Start(context.Background(), newRecorder(), Options{Workers: 2, RetryDelay: 1}, src).Result(context.Background())
			if err == nil {
				t.Fatalf("%s loaded", c.file)
			}
		}
	}
	grown := LinearMemoryBytes() - before
	t.Logf("wasm linear memory %d MiB → grew %d KiB over %d hostile loads", before>>20, grown>>10, 2*(len(hostileCases())-1))
	if grown > 32<<20 {
		t.Errorf("linear memory grew %d MiB", grown>>20)
	}
}
