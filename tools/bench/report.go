//go:build !(js && wasm)

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// peers pairs each nibble runtime with the ORT runtime on the same browser API: the speed ratio
// and the output cross-check are taken between these.
var peers = map[string]string{
	"nibble-webgpu": "ort-webgpu",
	"nibble-webnn":  "ort-webnn",
}

// Line is one JSON line of the report, in the field names wasm/backend/nn's benchmarks use where
// they overlap (backend, kernel, m, n, k, bits, format, ms, gbps, build_ms, device).
type Line struct {
	Backend  string  `json:"backend"` // runtime: nibble-webgpu, nibble-webnn, ort-webgpu, ort-webnn, ort-wasm
	Kernel   string  `json:"kernel"`  // the path the runtime took
	M        int     `json:"m"`
	N        int     `json:"n"`
	K        int     `json:"k"`
	Bits     int     `json:"bits"`
	Format   string  `json:"format"`
	MS       float64 `json:"ms"`       // median of the timed runs
	MinMS    float64 `json:"min_ms"`   // fastest timed run
	FirstMS  float64 `json:"first_ms"` // first run, compilation included
	BuildMS  float64 `json:"build_ms"`
	Runs     int     `json:"runs"`
	GBps     float64 `json:"gbps"` // weight bytes (codes+scales+zeros) per median run
	Bytes    int     `json:"weight_bytes"`
	RelRMS   float64 `json:"rel_rms"` // against quant.MatMul (float64 accumulation)
	MaxAbs   float64 `json:"max_abs"`
	Peer     string  `json:"peer,omitempty"`
	PeerRMS  float64 `json:"peer_rel_rms,omitempty"` // this output against the peer's
	PeerMax  float64 `json:"peer_max_abs,omitempty"`
	Speedup  float64 `json:"speedup_vs_peer,omitempty"` // peer ms ÷ this ms: >1 means nibble is faster
	Device   string  `json:"device"`
	Software bool    `json:"software_adapter"`
	Error    string  `json:"error,omitempty"`
	Notes    string  `json:"notes,omitempty"`
	Rev      string  `json:"nibble_rev"` // commit of the nibble code measured, +dirty for local edits
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// device names what a runtime ran on, from the probe: WebGPU runtimes on the adapter, WebNN on
// the context's device type, the wasm EP on the CPU.
func device(runtime string, p *Probe) (string, bool) {
	switch {
	case strings.HasSuffix(runtime, "webgpu"):
		if p == nil || len(p.Adapter) == 0 {
			return "webgpu (adapter unknown)", false
		}
		var a struct {
			Vendor, Architecture, Device, Description string
			IsFallbackAdapter                         bool `json:"isFallbackAdapter"`
		}
		json.Unmarshal(p.Adapter, &a)
		// SwiftShader is a CPU implementation of Vulkan: name it so nobody reads these figures
		// as a GPU's.
		sw := a.IsFallbackAdapter || strings.Contains(strings.ToLower(a.Vendor+a.Architecture+a.Description), "swiftshader")
		d := fmt.Sprintf("webgpu %s/%s", a.Vendor, a.Architecture)
		if sw {
			d += " (software adapter)"
		}
		return d, sw
	case strings.HasSuffix(runtime, "webnn"):
		return "webnn deviceType cpu (software)", true
	default:
		return "wasm cpu", true
	}
}

// Lines turns the collected results into report lines, comparing every output with the
// reference and with its peer's.
func Lines(cases []*Case, runtimes []string, results map[string]*Result, p *Probe) []Line {
	var lines []Line
	for _, c := range cases {
		for _, rt := range runtimes {
			res := results[key(rt, c.Name)]
			dev, sw := device(rt, p)
			l := Line{Backend: rt, M: c.Shape.M, N: c.Shape.N, K: c.Shape.K, Bits: c.T.Bits, Format: c.T.Format.String(),
				Bytes: c.WeightBytes(), Device: dev, Software: sw, RelRMS: math.NaN(), MaxAbs: math.NaN()}
			switch {
			case res == nil:
				l.Error = "no result"
			case res.Error != "":
				l.Error = res.Error
			}
			if res != nil {
				l.Kernel, l.BuildMS, l.FirstMS, l.Runs, l.Notes = res.Path, res.BuildMS, res.FirstMS, len(res.MS), strings.Join(res.Notes, "; ")
				if len(res.MS) > 0 {
					l.MS, l.MinMS = median(res.MS), slices.Min(res.MS)
					l.GBps = float64(l.Bytes) / (l.MS / 1e3) / 1e9
				}
				if res.Output != nil {
					if e, err := quant.Compare(c.Ref, res.Output); err == nil {
						l.RelRMS, l.MaxAbs = e.RelRMS, e.MaxAbs
					}
				} else if l.Error == "" {
					l.Error = "no output posted"
				}
			}
			if peer, ok := peers[rt]; ok && res != nil && l.Error == "" {
				if pr := results[key(peer, c.Name)]; pr != nil && pr.Error == "" && len(pr.MS) > 0 {
					l.Peer = peer
					l.Speedup = median(pr.MS) / l.MS
					if pr.Output != nil && res.Output != nil {
						if e, err := quant.Compare(pr.Output, res.Output); err == nil {
							l.PeerRMS, l.PeerMax = e.RelRMS, e.MaxAbs
						}
					}
				}
			}
			lines = append(lines, l)
		}
	}
	return lines
}

func fmtF(v float64, format string) string {
	if math.IsNaN(v) || v == 0 {
		return "–"
	}
	return fmt.Sprintf(format, v)
}

// WriteTable prints the markdown table: one row per shape × runtime.
func WriteTable(w io.Writer, lines []Line, p *Probe) {
	if p != nil {
		fmt.Fprintf(w, "Browser: %s; %d logical CPUs; crossOriginIsolated=%v; WebNN=%v\n", p.UserAgent, p.HardwareConcurrency, p.CrossOriginIsolated, p.WebNN)
		if p.AdapterError != "" {
			fmt.Fprintf(w, "WebGPU adapter: none (%s)\n", p.AdapterError)
		} else {
			fmt.Fprintf(w, "WebGPU adapter: %s\n", p.Adapter)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "| shape M×N×K | runtime | path | device | ms (median) | min ms | first ms | GB/s | rel RMS vs ref | max abs vs ref | vs peer rel RMS | ORT ms ÷ nibble ms |")
	fmt.Fprintln(w, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range lines {
		shape := fmt.Sprintf("%s %d×%d×%d", map[bool]string{true: "GEMV", false: "GEMM"}[l.M == 1], l.M, l.N, l.K)
		if l.Error != "" {
			fmt.Fprintf(w, "| %s | %s | %s | %s | error: %s | | | | | | | |\n", shape, l.Backend, l.Kernel, l.Device, oneLine(l.Error))
			continue
		}
		ratio := "–"
		if l.Speedup != 0 {
			ratio = fmt.Sprintf("%.2f×", l.Speedup)
		}
		peerRMS := "–"
		if l.Peer != "" {
			peerRMS = fmt.Sprintf("%.1e", l.PeerRMS)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", shape, l.Backend, l.Kernel, l.Device,
			fmtF(l.MS, "%.2f"), fmtF(l.MinMS, "%.2f"), fmtF(l.FirstMS, "%.1f"), fmtF(l.GBps, "%.2f"),
			fmtF(l.RelRMS, "%.1e"), fmtF(l.MaxAbs, "%.1e"), peerRMS, ratio)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// WriteJSON prints one JSON object per line.
func WriteJSON(w io.Writer, lines []Line) error {
	enc := json.NewEncoder(w)
	for _, l := range lines {
		// NaN has no JSON form: a missing comparison is written as -1.
		if math.IsNaN(l.RelRMS) {
			l.RelRMS, l.MaxAbs = -1, -1
		}
		if math.IsNaN(l.MS) {
			l.MS = 0
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return nil
}
