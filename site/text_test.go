package site

import (
	"strings"
	"testing"
	"time"

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

func TestRateLineAndTokens(t *testing.T) {
	if got := RateLine(8, 40*time.Millisecond, 10*time.Millisecond, true); got != "8 tokens in 40 ms: 200.0 tokens/s (first token after 10 ms, prompt included)." {
		t.Errorf("rate: %q", got)
	}
	if got := RateLine(0, 0, 0, false); strings.Contains(got, "tokens/s") {
		t.Errorf("no tokens yet: %q", got)
	}
	if got := VisibleToken("a\x06\nb\x7f"); got != "a\u2406\nb\u2421" {
		t.Errorf("visible: %q", got)
	}
	if !SyntheticLLM("llama-tiny") || SyntheticLLM("use-lite") {
		t.Error("SyntheticLLM")
	}
}

func TestErrorLine(t *testing.T) {
	long := strings.Repeat("word ", 60)
	for _, tc := range []struct {
		msg, want string
		cut       bool
	}{
		{"load failed", "load failed", false},
		{"  fetch:\tnetwork   error  ", "fetch: network error", false},
		{"first line\nstack frame 1\nstack frame 2", "first line", true},
		{"only line\n\n", "only line", false},
		{"", "unknown error", false},
		{long, strings.TrimRight(long[:errLineMax-1], " ") + "…", true},
	} {
		got, cut := ErrorLine(tc.msg)
		if got != tc.want || cut != tc.cut {
			t.Errorf("ErrorLine(%q) = %q, %v; want %q, %v", tc.msg, got, cut, tc.want, tc.cut)
		}
		if strings.Contains(got, "\n") || len([]rune(got)) > errLineMax {
			t.Errorf("ErrorLine(%q) = %q: not one line of at most %d characters", tc.msg, got, errLineMax)
		}
	}
}
