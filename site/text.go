package site

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/wasm/engine"
)

// The words the page shows, in pure Go so they test natively. Nothing here invents a figure:
// every number comes from engine's measurements.

// Fact is one row of the device table.
type Fact struct{ Key, Value string }

// WebGPULine is the one-line verdict on the WebGPU adapter, honest about software adapters.
func WebGPULine(f engine.WebGPUFacts) string {
	if !f.Available {
		return "WebGPU unavailable: " + f.Error
	}
	name := strings.TrimSpace(strings.Join(nonEmpty(f.Vendor, f.Architecture, f.Device, f.Description), " "))
	if name == "" {
		name = "unnamed adapter"
	}
	if f.Software {
		return "software adapter (" + name + "): WebGPU emulated on the CPU; its timings are not GPU timings"
	}
	return "hardware adapter: " + name
}

// WebGPUFacts lists the adapter's features and limits that matter to nibble's kernels.
func WebGPUFacts(f engine.WebGPUFacts) []Fact {
	if !f.Available {
		return nil
	}
	out := []Fact{
		{"shader-f16", yesNo(f.ShaderF16)},
		{"subgroups", yesNo(f.Subgroups) + subgroupSizes(f)},
		{"timestamp-query", yesNo(f.TimestampQuery)},
	}
	keys := make([]string, 0, len(f.Limits))
	for k := range f.Limits {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := f.Limits[k]
		s := fmt.Sprint(v)
		if strings.HasSuffix(k, "Size") && v >= 1<<20 {
			s = Bytes(v)
		}
		out = append(out, Fact{k, s})
	}
	return out
}

func subgroupSizes(f engine.WebGPUFacts) string {
	if !f.Subgroups || f.SubgroupMaxSize == 0 {
		return ""
	}
	if f.SubgroupMinSize == f.SubgroupMaxSize {
		return fmt.Sprintf(" (size %d)", f.SubgroupMinSize)
	}
	return fmt.Sprintf(" (sizes %d–%d)", f.SubgroupMinSize, f.SubgroupMaxSize)
}

// WebNNLine is the verdict on WebNN.
func WebNNLine(f engine.WebNNFacts) string {
	if !f.Available {
		return "WebNN unavailable: " + f.Error
	}
	dq := "none"
	if len(f.DequantizeLinear) > 0 {
		dq = strings.Join(f.DequantizeLinear, ", ")
	}
	return fmt.Sprintf("WebNN %s context: dequantizeLinear takes %s", f.DeviceType, dq)
}

// ProgressLine summarises a load in progress.
func ProgressLine(p engine.Progress) string {
	s := ""
	if p.CacheHits == 0 || p.BytesTotal > 0 { // a load wholly from the cache receives nothing
		s = fmt.Sprintf("%s of %s received · ", Bytes(p.BytesReceived), Bytes(p.BytesTotal))
	}
	s += fmt.Sprintf("%d of %d tensors ready · %s resident · holding %s in flight (peak %s)",
		p.TensorsReady, p.TensorsTotal, Bytes(p.ResidentBytes), Bytes(p.HeldBytes), Bytes(p.PeakHeldBytes))
	if p.WasmMemoryBytes > 0 {
		s += " · wasm memory " + Bytes(p.WasmMemoryBytes)
	}
	if p.Resumes > 0 {
		s += fmt.Sprintf(" · %d resumes", p.Resumes)
	}
	if p.CacheHits > 0 {
		s += fmt.Sprintf(" · %d from the cache (%s read)", p.CacheHits, Bytes(p.CacheRead))
	}
	if p.CacheWritten > 0 {
		s += " · " + Bytes(p.CacheWritten) + " written to the cache"
	}
	s += fmt.Sprintf(" · %.0f ms", p.ElapsedMS)
	if p.FirstReadyMS > 0 {
		s += fmt.Sprintf(" (first tensor at %.0f ms)", p.FirstReadyMS)
	}
	if p.Error != "" {
		s += " · failed: " + p.Error
	}
	return s
}

// LoadLine says where a finished load came from and how long it took: the figure to compare
// between a first load and a reload from the cache. cached is whether the load used the cache.
func LoadLine(p engine.Progress, cached bool) string {
	switch {
	case p.CacheHits > 0 && p.BytesReceived == 0:
		return fmt.Sprintf("Loaded from the cache in %.0f ms: %s of quantized tensors read, nothing downloaded or quantized.", p.ElapsedMS, Bytes(p.CacheRead))
	case p.CacheHits > 0:
		return fmt.Sprintf("Loaded in %.0f ms, %d files from the cache (%s read) and %s downloaded and quantized.", p.ElapsedMS, p.CacheHits, Bytes(p.CacheRead), Bytes(p.BytesReceived))
	case !cached:
		return fmt.Sprintf("Downloaded and quantized in %.0f ms (%s); the cache was not used.", p.ElapsedMS, Bytes(p.BytesReceived))
	}
	return fmt.Sprintf("Downloaded and quantized in %.0f ms (%s); %s written to the cache for the next load.", p.ElapsedMS, Bytes(p.BytesReceived), Bytes(p.CacheWritten))
}

// Bytes formats a byte count in binary units with three significant digits.
func Bytes(n int64) string {
	switch {
	case n < 0:
		return "-" + Bytes(-n)
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.3g KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.3g MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.3g GiB", float64(n)/(1<<30))
}

// ShortName keeps the informative tail of long TF.js tensor names.
func ShortName(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max+1:]
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// CapsLine is the first screen's one line on what this browser offers; the tables behind it
// are folded away. It keeps WebGPULine and WebNNLine whole: they are the honest verdicts.
func CapsLine(d *engine.Devices) string {
	gpu := WebGPULine(d.WebGPU)
	if d.WebGPU.Available {
		gpu += "; shader-f16 " + yesNo(d.WebGPU.ShaderF16)
	} else {
		gpu += " (nibble uses WebNN or the CPU instead)"
	}
	return "WebGPU: " + gpu + " · " + WebNNLine(d.WebNN) + " · CPU: pure Go, always there"
}

// Sentences splits the text box into at most max non-empty trimmed lines.
func Sentences(text string, max int) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && len(out) < max {
			out = append(out, l)
		}
	}
	return out
}

// PrecisionBars turns per-precision figures into bars, largest first.
func PrecisionBars(by map[string]float64, text func(float64) string) []Bar {
	bars := make([]Bar, 0, len(by))
	for p, v := range by {
		bars = append(bars, Bar{Label: p, Value: v, Text: text(v)})
	}
	sort.Slice(bars, func(i, j int) bool {
		if bars[i].Value != bars[j].Value {
			return bars[i].Value > bars[j].Value
		}
		return bars[i].Label < bars[j].Label
	})
	return bars
}

// LayerErrorBars draws each measured weight matrix's relative RMS error. Labels are numbered
// (the table's row order) before the name's tail, so two layers whose tails match never share
// a label; the table beside it has the full names.
func LayerErrorBars(res []engine.LayerResult) []Bar {
	bars := make([]Bar, 0, len(res))
	for i, r := range res {
		label := fmt.Sprintf("%d %s", i+1, ShortName(r.Name, 14))
		text := fmt.Sprintf("%.2e %s", r.RelRMS, r.Format)
		if r.Error != "" {
			text = "error"
		}
		bars = append(bars, Bar{Label: label, Value: r.RelRMS, Text: text})
	}
	return bars
}

// Latency is one Compare's embedding time, as the page measured it.
type Latency struct {
	MS    float64
	Texts int
}

// LatencyKey names a backend and precision pair in the latency picture.
func LatencyKey(backend, prec string) string { return backend + " × " + prec }

// LatencyBars turns per backend × precision latencies into bars, slowest first.
func LatencyBars(by map[string]Latency) []Bar {
	bars := make([]Bar, 0, len(by))
	for k, l := range by {
		bars = append(bars, Bar{Label: k, Value: l.MS, Text: fmt.Sprintf("%.1f ms, %d texts", l.MS, l.Texts)})
	}
	sort.Slice(bars, func(i, j int) bool {
		if bars[i].Value != bars[j].Value {
			return bars[i].Value > bars[j].Value
		}
		return bars[i].Label < bars[j].Label
	})
	return bars
}

// SyntheticLLM reports whether a model the picker names is tools/mkmodel's random decoder.
func SyntheticLLM(name string) bool { return strings.HasPrefix(name, "llama-tiny") }

// RateLine says how fast a generation ran: tokens, time spent decoding (page updates between
// tokens excluded) and tokens per second, and when the first token came.
func RateLine(tokens int, decode, first time.Duration, done bool) string {
	if tokens == 0 {
		return "Waiting for the first token…"
	}
	rate := 0.0
	if decode > 0 {
		rate = float64(tokens) / decode.Seconds()
	}
	state := "so far, "
	if done {
		state = "in "
	}
	return fmt.Sprintf("%d tokens %s%.0f ms: %.1f tokens/s (first token after %.0f ms, prompt included).",
		tokens, state, float64(decode)/float64(time.Millisecond), rate, float64(first)/float64(time.Millisecond))
}

// VisibleToken shows a token's control characters (a random decoder emits them) as their
// Unicode control pictures, keeping newlines and tabs.
func VisibleToken(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20:
			return 0x2400 + r
		case r == 0x7f:
			return 0x2421
		}
		return r
	}, s)
}

// errLineMax is how many characters of an error the page's one-line summary keeps.
const errLineMax = 140

// ErrorLine is the one readable line the page shows for an error: its first line, spaces
// collapsed, cut at errLineMax characters with an ellipsis. The full text goes in a
// <details> under it. It also reports whether the line left anything out.
func ErrorLine(msg string) (line string, cut bool) {
	msg = strings.TrimSpace(msg)
	first, rest, multi := strings.Cut(msg, "\n")
	line = strings.Join(strings.Fields(first), " ")
	cut = multi && strings.TrimSpace(rest) != ""
	if r := []rune(line); len(r) > errLineMax {
		line = strings.TrimRight(string(r[:errLineMax-1]), " :,;") + "…"
		cut = true
	}
	if line == "" {
		line = "unknown error"
	}
	return line, cut
}
