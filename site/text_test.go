package site

import (
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/engine"
)

func TestWebGPULineSaysSoftware(t *testing.T) {
	sw := WebGPULine(engine.WebGPUFacts{Available: true, Vendor: "google", Architecture: "swiftshader", Software: true})
	if !strings.Contains(sw, "software adapter") || !strings.Contains(sw, "swiftshader") {
		t.Errorf("software: %q", sw)
	}
	hw := WebGPULine(engine.WebGPUFacts{Available: true, Vendor: "nvidia", Architecture: "hopper"})
	if strings.Contains(hw, "software") || !strings.Contains(hw, "nvidia hopper") {
		t.Errorf("hardware: %q", hw)
	}
	if no := WebGPULine(engine.WebGPUFacts{Error: "navigator.gpu is undefined"}); !strings.Contains(no, "undefined") {
		t.Errorf("unavailable: %q", no)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 27903656: "26.6 MiB", 3 << 30: "3 GiB", -2048: "-2 KiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLoadLine(t *testing.T) {
	for _, c := range []struct {
		p      engine.Progress
		cached bool
		want   string
	}{
		{engine.Progress{ElapsedMS: 812, BytesReceived: 27903656, CacheWritten: 7 << 20}, true, "Downloaded and quantized in 812 ms (26.6 MiB); 7 MiB written to the cache"},
		{engine.Progress{ElapsedMS: 95, CacheHits: 1, CacheRead: 7 << 20}, true, "Loaded from the cache in 95 ms: 7 MiB"},
		{engine.Progress{ElapsedMS: 300, CacheHits: 1, CacheRead: 1 << 20, BytesReceived: 2 << 20}, true, "1 files from the cache (1 MiB read) and 2 MiB downloaded"},
		{engine.Progress{ElapsedMS: 700, BytesReceived: 1 << 20}, false, "the cache was not used"},
	} {
		if got := LoadLine(c.p, c.cached); !strings.Contains(got, c.want) {
			t.Errorf("LoadLine(%+v, %v) = %q, want it to contain %q", c.p, c.cached, got, c.want)
		}
	}
}
