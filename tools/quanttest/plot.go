//go:build !(js && wasm)

package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"

	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// writePlot draws the trade-off as an SVG with two panels sharing the x axis (weight bytes
// held, MiB): error against fp32 (1 − mean cosine, log scale) and latency of one text (ms). One
// colour per platform; every point is labelled with its format.
func writePlot(path string, rs []quanteval.Result) error {
	var pts []quanteval.Result
	for _, r := range rs {
		if r.Error == "" && r.Runtime == "nibble" && r.WeightBytes > 0 {
			pts = append(pts, r)
		}
	}
	if len(pts) == 0 {
		return fmt.Errorf("nothing to plot: no configuration succeeded")
	}
	return os.WriteFile(path, []byte(svg(pts)), 0o644)
}

const (
	panelW, panelH   = 420.0, 300.0
	marginL, marginT = 70.0, 40.0
	gap              = 90.0
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

func svg(pts []quanteval.Result) string {
	xmax := 0.0
	for _, r := range pts {
		xmax = math.Max(xmax, mib(r))
	}
	xmax *= 1.1
	// The error panel: 1−cos spans decades; the fp32 reference (0) sits on the floor.
	emin, emax := 1e-7, 1e-1
	for _, r := range pts {
		if e := 1 - cosineOf(r); e > 0 {
			emin, emax = math.Min(emin, e), math.Max(emax, e)
		}
	}
	emin, emax = math.Pow(10, math.Floor(math.Log10(emin))), math.Pow(10, math.Ceil(math.Log10(emax)))
	lmax := 0.0
	for _, r := range pts {
		lmax = math.Max(lmax, r.LatencyMedianMS)
	}
	lmax = math.Max(lmax*1.1, 1)

	var b strings.Builder
	width, height := marginL+2*panelW+gap+30, marginT+panelH+70
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="18" font-size="14">%s in %s: accuracy, memory and latency per format</text>`+"\n", marginL, html.EscapeString(pts[0].Model), html.EscapeString(pts[0].Browser))
	colour := map[string]string{}
	for _, r := range pts {
		if _, ok := colour[r.Platform]; !ok {
			colour[r.Platform] = palette[len(colour)%len(palette)]
		}
	}
	panel := func(x0 float64, title string, y func(quanteval.Result) float64, ticks []float64, tick func(float64) string) {
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#444"/>`+"\n", x0, marginT, panelW, panelH)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, marginT-8, html.EscapeString(title))
		for _, t := range ticks {
			yy := marginT + panelH*(1-t)
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0, x0+panelW, yy, yy, x0-4, yy+4, tick(t))
		}
		for i := 0; i <= 4; i++ {
			xv := xmax * float64(i) / 4
			xx := x0 + panelW*float64(i)/4
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%.1f</text>`+"\n", xx, marginT+panelH+16, xv)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">weight bytes held (MiB)</text>`+"\n", x0+panelW/2, marginT+panelH+34)
		for _, r := range pts {
			xx := x0 + panelW*mib(r)/xmax
			yy := marginT + panelH*(1-y(r))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/><text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n",
				xx, yy, colour[r.Platform], xx+6, yy-4, colour[r.Platform], html.EscapeString(r.Format))
		}
	}
	logE := func(e float64) float64 {
		e = math.Max(e, emin)
		return (math.Log10(e) - math.Log10(emin)) / (math.Log10(emax) - math.Log10(emin))
	}
	var eticks []float64
	for e := emin; e <= emax*1.001; e *= 10 {
		eticks = append(eticks, logE(e))
	}
	panel(marginL, "error: 1 − mean cosine to fp32 (log; fp32 on the floor)", func(r quanteval.Result) float64 { return logE(1 - cosineOf(r)) },
		eticks, func(t float64) string {
			return fmt.Sprintf("1e%.0f", math.Log10(emin)+t*(math.Log10(emax)-math.Log10(emin)))
		})
	panel(marginL+panelW+gap, "latency, one text (ms, median)", func(r quanteval.Result) float64 { return r.LatencyMedianMS / lmax },
		[]float64{0, 0.25, 0.5, 0.75, 1}, func(t float64) string { return fmt.Sprintf("%.0f", t*lmax) })
	i := 0
	for _, r := range pts {
		c, ok := colour[r.Platform]
		if !ok {
			continue
		}
		delete(colour, r.Platform)
		x := marginL + float64(i)*110
		fmt.Fprintf(&b, `<circle cx="%.0f" cy="%.0f" r="5" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n", x, height-12, c, x+8, height-8, html.EscapeString(r.Platform))
		i++
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func mib(r quanteval.Result) float64 { return float64(r.WeightBytes) / (1 << 20) }
