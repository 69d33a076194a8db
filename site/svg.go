package site

import (
	"fmt"
	"html"
	"math"
	"strings"

	"github.com/nibble-ml/nibble/wasm/plan"
)

// The page's pictures are SVG written here as strings, not drawn by a chart library: the
// bundle is already Go, the pictures are three kinds (bars, a heatmap, a strip), and strings
// test natively like the rest of the page's words. A JS chart library would add a second
// runtime and a second download for a few dozen rectangles.
//
// Every picture has a viewBox and no fixed width, so it shrinks with the page (390 px phones).

// Similarity is the matrix of cosines between every pair of embeddings.
func Similarity(emb [][]float32) [][]float64 {
	out := make([][]float64, len(emb))
	for i := range emb {
		out[i] = make([]float64, len(emb))
		for j := range emb {
			out[i][j] = Cosine(emb[i], emb[j])
		}
	}
	return out
}

// Cosine of two vectors, accumulated in float64; 0 when either is zero.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range min(len(a), len(b)) {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// Agreement compares embeddings of the same texts by two models: the mean and worst cosine
// between each text's two vectors, and the largest difference between their similarity
// matrices (what a user of the similarities would see change).
func Agreement(ref, got [][]float32) (mean, worst, maxSimDiff float64) {
	worst = 1
	for i := range min(len(ref), len(got)) {
		c := Cosine(ref[i], got[i])
		mean += c
		worst = min(worst, c)
	}
	if len(ref) > 0 {
		mean /= float64(len(ref))
	}
	sr, sg := Similarity(ref), Similarity(got)
	for i := range sr {
		for j := range sr[i] {
			if j < len(sg[i]) {
				maxSimDiff = max(maxSimDiff, math.Abs(sr[i][j]-sg[i][j]))
			}
		}
	}
	return mean, worst, maxSimDiff
}

// HeatmapSVG draws a similarity matrix with its values written in the cells (3 decimals; the
// exact value in data-v, which the browser test reads). Rows are labelled 1…n: the sentences
// themselves are listed beside the picture, where they can wrap.
func HeatmapSVG(id, title string, m [][]float64) string {
	const cell, pad, top = 44, 22, 24
	n := len(m)
	w, h := pad+n*cell+2, top+pad+n*cell+2
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="heatmap" viewBox="0 0 %d %d" role="img" aria-label="%s">`, id, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="0" y="14" class="t">%s</text>`, html.EscapeString(title))
	for i := range n {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="l" text-anchor="middle">%d</text>`, pad+i*cell+cell/2, top+14, i+1)
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="l" text-anchor="middle">%d</text>`, pad/2, top+pad+i*cell+cell/2+4, i+1)
		for j := range n {
			v := m[i][j]
			x, y := pad+j*cell, top+pad+i*cell
			ink := "#1b1f24"
			if v > 0.6 {
				ink = "#fff"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%d·%d: %.6f</title></rect>`, x, y, cell-1, cell-1, blue(v), i+1, j+1, v)
			fmt.Fprintf(&b, `<text x="%d" y="%d" class="v" text-anchor="middle" fill="%s" data-v="%.9g">%.3f</text>`, x+cell/2, y+cell/2+4, ink, v, v)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// blue maps a similarity in [-1, 1] to white…dark blue; negative values stay white.
func blue(v float64) string {
	t := math.Max(0, math.Min(1, v))
	r := int(255 - t*(255-31))
	g := int(255 - t*(255-64))
	bl := int(255 - t*(255-160))
	return fmt.Sprintf("#%02x%02x%02x", r, g, bl)
}

// Bar is one bar of a BarsSVG.
type Bar struct {
	Label string
	Value float64
	Text  string // the value as the page writes it
	Class string // "ref" for a reference bar, drawn grey
}

// BarsSVG draws horizontal bars scaled to the largest value, labels left, values right.
func BarsSVG(id, title string, bars []Bar) string { return barsSVG(id, title, bars, 120) }

// LatencySVG draws embedding latency per backend × precision (see LatencyBars); its labels are
// longer than a precision's, so its label column is wider.
func LatencySVG(id string, bars []Bar) string {
	return barsSVG(id, "embedding latency, by backend × precision (ms, this page)", bars, 170)
}

func barsSVG(id, title string, bars []Bar, labelW int) string {
	const row, barW, valueW = 22, 180, 110
	w, h := labelW+barW+valueW, 22+row*len(bars)
	top := 0.0
	for _, b := range bars {
		top = math.Max(top, b.Value)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg id="%s" class="bars" viewBox="0 0 %d %d" role="img" aria-label="%s">`, id, w, h, html.EscapeString(title))
	fmt.Fprintf(&s, `<text x="0" y="14" class="t">%s</text>`, html.EscapeString(title))
	for i, b := range bars {
		y := 22 + i*row
		bw := 0.0
		if top > 0 {
			bw = math.Max(1, b.Value/top*barW)
		}
		fill := "#2f5bd3"
		if b.Class == "ref" {
			fill = "#9aa4ae"
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="l" text-anchor="end">%s</text>`, labelW-6, y+14, html.EscapeString(b.Label))
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y+3, bw, row-6, fill)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" class="l">%s</text>`, float64(labelW)+bw+4, y+14, html.EscapeString(b.Text))
	}
	s.WriteString(`</svg>`)
	return s.String()
}

// bitsColour gives each storage width its own colour: fewer bits, warmer.
var bitsColour = map[int]string{2: "#c0392b", 4: "#e67e22", 8: "#27ae60", 16: "#2f5bd3", 32: "#7f8c8d"}

// PlanSVG draws the precision plan, one cell per tensor in file order, coloured by bits, each
// cell's title naming the tensor in full, format and reason; a legend counts tensors per width.
func PlanSVG(id string, p *plan.Plan) string {
	const cell, perRow = 14, 24
	n := len(p.Tensors)
	rows := (n + perRow - 1) / perRow
	w, h := perRow*cell, 20+rows*cell+24
	count := map[int]int{}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg id="%s" class="plan" viewBox="0 0 %d %d" role="img" aria-label="precision plan, one cell per tensor, colour = bits">`, id, w, h)
	// Short enough for the picture's width; the float32 size is in the memory picture.
	fmt.Fprintf(&s, `<text x="0" y="14" class="t">plan %q: %d tensors, %s</text>`, p.Policy, n, Bytes(p.Bytes))
	for i, c := range p.Tensors {
		bits := c.Format.Bits
		count[bits]++
		fill, ok := bitsColour[bits]
		if !ok {
			fill = "#000"
		}
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s" data-bits="%d"><title>%s: %s, %s (%s)</title></rect>`,
			i%perRow*cell, 20+i/perRow*cell, cell-2, cell-2, fill, bits, html.EscapeString(c.Name), c.Format, Bytes(c.Bytes), html.EscapeString(c.Reason))
	}
	x := 0
	for _, bits := range []int{2, 4, 8, 16, 32} {
		if count[bits] == 0 {
			continue
		}
		y := 20 + rows*cell + 6
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" class="l">%d-bit ×%d</text>`, x, y, bitsColour[bits], x+13, y+9, bits, count[bits])
		x += 80
	}
	s.WriteString(`</svg>`)
	return s.String()
}
