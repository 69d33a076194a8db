//go:build !(js && wasm)

// The native tests build GGUF files with tools/mkmodel through the go command, which a test
// binary in the browser cannot run.

package llama

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// TestBigShape (NIBBLE_LLAMA_BIG=layers) writes a Llama-3.2-1B-shaped Q4_0 file with that many
// layers (real: 16), loads it on the cpu and generates: peak Go heap while loading, prefill and
// decode tokens/s, KV bytes per token for each cache storage.
func TestBigShape(t *testing.T) {
	layers, _ := strconv.Atoi(os.Getenv("NIBBLE_LLAMA_BIG"))
	if layers == 0 {
		t.Skip("set NIBBLE_LLAMA_BIG=<layers> to run a 1B-shaped Q4_0 model")
	}
	path := filepath.Join(t.TempDir(), "1b.gguf")
	if out, err := exec.Command("go", "run", "github.com/nibble-ml/nibble/tools/mkmodel", "-llm", "-shape", "llama-1b", "-layers", strconv.Itoa(layers), "-format", "gguf-q4_0", "-ctx", "2048", "-o", path).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	fi, _ := os.Stat(path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var peak uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	file, err := ReadGGUF(f, cpu.New())
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Release()
	t.Logf("%d layers, %.0f MB file: loaded in %v, peak heap %.0f MB", layers, float64(fi.Size())/1e6, time.Since(start).Round(time.Millisecond), float64(peak)/1e6)
	ids := append([]int32{file.Tokenizer.BOS}, file.Tokenizer.Encode("The quick brown fox jumps over the lazy dog", false)...)
	for _, st := range []graph.StateFormat{graph.StateF32, graph.StateF16, graph.StateInt8} {
		m, err := New(file.Config, cpu.New(), file.Weights, Options{Context: 256, Cache: st})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		logits, err := m.Forward(context.Background(), ids, false)
		if err != nil {
			t.Fatal(err)
		}
		pre := time.Since(t0)
		const n = 8
		t1 := time.Now()
		z, _ := NewSampler(Sampling{})
		for i := 0; i < n; i++ {
			if logits, err = m.Forward(context.Background(), []int32{z.Next(logits[0])}, false); err != nil {
				t.Fatal(err)
			}
		}
		dec := time.Since(t1)
		t.Logf("cache %s: KV %d bytes/token (%d layers), prefill %d tokens %.1f tok/s, decode %.2f tok/s", st, m.KVBytesPerToken(), layers, len(ids), float64(len(ids))/pre.Seconds(), n/dec.Seconds())
		m.Release()
	}
}
