package site

import (
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/cmd/nibble/engine"
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
