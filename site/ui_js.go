//go:build js && wasm

package site

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"honnef.co/go/js/dom/v2"

	"github.com/nibble-ml/nibble/wasm/engine"
)

// RootID is the element the demo mounts into.
const RootID = "nibble-demo"

// defaultModels is offered when the server has no models.json (written by `make serve`).
var defaultModels = []string{"use-lite"}

// Mount builds the demo UI inside #nibble-demo, if the page has one. It returns at once; the
// device probe and the model list load in the background.
func Mount() {
	doc := dom.GetWindow().Document()
	root := doc.GetElementByID(RootID)
	if root == nil {
		return
	}
	u := &ui{doc: doc}
	u.build(root)
	go u.probe()
	go u.listModels()
}

type ui struct {
	doc dom.Document

	devices, status, notes            dom.Element
	model, backend, format, rows      dom.Element
	cache                             *dom.HTMLInputElement
	load, release                     *dom.HTMLButtonElement
	bar                               *dom.HTMLProgressElement
	progressText, memory, layers, hdr dom.Element
	loadLine                          dom.Element

	mu    sync.Mutex
	m     *engine.Model
	busy  bool
	softw bool
}

// el creates an element with a class and text (either may be empty) and appends children.
func (u *ui) el(tag, class, text string, children ...dom.Node) dom.Element {
	e := u.doc.CreateElement(tag)
	if class != "" {
		e.SetAttribute("class", class)
	}
	if text != "" {
		e.SetTextContent(text)
	}
	for _, c := range children {
		e.AppendChild(c)
	}
	return e
}

func (u *ui) withID(e dom.Element, id string) dom.Element { e.SetID(id); return e }

func (u *ui) build(root dom.Element) {
	root.SetInnerHTML("")
	u.hdr = u.el("header", "", "",
		u.el("h1", "", "nibble"),
		u.el("p", "tagline", "Quantized neural networks in the browser: one Go WebAssembly bundle, WebGPU kernels, WebNN graphs, a pure-Go fallback. Every figure below is measured in this page."))
	root.AppendChild(u.hdr)

	u.devices = u.withID(u.el("div", "facts", "Measuring this browser…"), "devices")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "This browser"), u.devices))

	u.model = u.withID(u.el("select", "", ""), "model")
	u.backend = u.withID(u.el("select", "", ""), "backend")
	u.format = u.withID(u.el("select", "", ""), "format")
	for _, b := range engine.Backends {
		u.backend.AppendChild(u.option(b, b))
	}
	for _, f := range engine.Formats {
		u.format.AppendChild(u.option(f, f))
	}
	u.rows = u.withID(u.el("input", "", ""), "rows")
	u.rows.SetAttribute("type", "number")
	u.rows.SetAttribute("min", "1")
	u.rows.SetAttribute("max", "64")
	u.rows.SetAttribute("value", "1")
	u.cache = u.withID(u.el("input", "", ""), "cache").(*dom.HTMLInputElement)
	u.cache.SetAttribute("type", "checkbox")
	u.cache.SetChecked(true)
	u.load = u.withID(u.el("button", "primary", "Load and measure"), "load").(*dom.HTMLButtonElement)
	u.release = u.withID(u.el("button", "", "Release"), "release").(*dom.HTMLButtonElement)
	u.release.SetDisabled(true)
	u.load.AddEventListener("click", false, func(dom.Event) { go u.run() })
	u.release.AddEventListener("click", false, func(dom.Event) { go u.drop("released") })
	root.AppendChild(u.el("section", "card", "",
		u.el("h2", "", "Model"),
		u.el("div", "controls", "",
			u.label("model", u.model), u.label("backend", u.backend), u.label("format", u.format),
			u.label("activation rows (m)", u.rows), u.label("cache quantized", u.cache), u.load, u.release)))

	u.bar = u.withID(u.el("progress", "", ""), "bytes-bar").(*dom.HTMLProgressElement)
	u.bar.SetMax(1)
	u.bar.SetValue(0)
	u.progressText = u.withID(u.el("p", "progress-text", "Nothing loaded yet."), "progress-text")
	u.loadLine = u.withID(u.el("p", "load-line", ""), "load-line")
	u.status = u.withID(u.el("p", "status", ""), "status")
	u.notes = u.withID(u.el("ul", "notes", ""), "notes")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Streaming"), u.bar, u.progressText, u.loadLine, u.status, u.notes))

	u.memory = u.withID(u.el("div", "", ""), "memory")
	u.layers = u.withID(u.el("div", "", ""), "layers")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Memory"), u.memory))
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Per-layer matmul"), u.layers))
}

func (u *ui) option(value, text string) dom.Element {
	o := u.el("option", "", text)
	o.SetAttribute("value", value)
	return o
}

func (u *ui) label(text string, control dom.Element) dom.Element {
	return u.el("label", "", "", u.el("span", "", text), control)
}

func value(e dom.Element) string { return e.Underlying().Get("value").String() }

func (u *ui) probe() {
	d := engine.Probe()
	u.devices.SetInnerHTML("")
	gpu := u.el("p", "verdict", WebGPULine(d.WebGPU))
	if d.WebGPU.Software {
		gpu.SetAttribute("class", "verdict software")
	}
	u.devices.AppendChild(u.el("h3", "", "WebGPU"))
	u.devices.AppendChild(gpu)
	u.devices.AppendChild(u.table([]string{"feature or limit", "value"}, factRows(WebGPUFacts(d.WebGPU))))
	u.devices.AppendChild(u.el("h3", "", "WebNN"))
	u.devices.AppendChild(u.el("p", "verdict", WebNNLine(d.WebNN)))
	if d.WebNN.Available {
		u.devices.AppendChild(u.table([]string{"op", "accepts"}, summaryRows(d.WebNN.Summary)))
	}
	u.devices.AppendChild(u.el("h3", "", "CPU"))
	u.devices.AppendChild(u.el("p", "verdict", fmt.Sprintf("Go %s, GOMAXPROCS %d (the wasm module runs on one thread)", d.CPU.GoVersion, d.CPU.GOMAXPROCS)))
	u.mu.Lock()
	u.softw = d.WebGPU.Software
	u.mu.Unlock()
}

func factRows(fs []Fact) [][]string {
	rows := make([][]string, len(fs))
	for i, f := range fs {
		rows[i] = []string{f.Key, f.Value}
	}
	return rows
}

func summaryRows(lines []string) [][]string {
	rows := make([][]string, len(lines))
	for i, l := range lines {
		rows[i] = []string{l, ""}
		for j := 0; j < len(l); j++ {
			if l[j] == ':' {
				rows[i] = []string{l[:j], l[j+1:]}
				break
			}
		}
	}
	return rows
}

// listModels offers what the server has: models.json beside the page (written by make serve),
// else the USE-lite default.
func (u *ui) listModels() {
	names := defaultModels
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b, err := engine.Get(ctx, pageURL("models.json")); err == nil {
		var list []string
		if json.Unmarshal(b, &list) == nil && len(list) > 0 {
			names = list
		}
	}
	for _, n := range names {
		u.model.AppendChild(u.option(n, n))
	}
}

// pageURL resolves a path against the page's address.
func pageURL(rel string) string {
	return js.Global().Get("URL").New(rel, js.Global().Get("location").Get("href")).Call("toString").String()
}

func (u *ui) drop(why string) {
	u.mu.Lock()
	m := u.m
	u.m = nil
	u.mu.Unlock()
	if m != nil {
		m.Release()
		u.status.SetTextContent("Model " + why + ": its weights and backend are freed.")
	}
	u.release.SetDisabled(true)
}

// run loads the chosen model and measures it; it runs on its own goroutine.
func (u *ui) run() {
	u.mu.Lock()
	if u.busy {
		u.mu.Unlock()
		return
	}
	u.busy = true
	u.mu.Unlock()
	u.load.SetDisabled(true)
	defer func() {
		u.mu.Lock()
		u.busy = false
		u.mu.Unlock()
		u.load.SetDisabled(false)
	}()
	u.drop("replaced")
	u.memory.SetInnerHTML("")
	u.layers.SetInnerHTML("")
	u.notes.SetInnerHTML("")
	u.loadLine.SetTextContent("")
	name, backend, format := value(u.model), value(u.backend), value(u.format)
	useCache := u.cache.Checked()
	rows := 1
	fmt.Sscan(value(u.rows), &rows)
	rows = max(1, min(rows, 64))
	if name == "" {
		u.fail("no model to load: the server lists none")
		return
	}
	u.status.SetTextContent(fmt.Sprintf("Loading %s on %s as %s…", name, backend, format))
	ctx := context.Background()
	m, err := engine.Load(ctx, pageURL("models/"+name+"/"), engine.Options{
		Backend: backend, Format: format, Cache: &useCache,
		OnProgress: func(p engine.Progress) {
			if p.BytesTotal > 0 {
				u.bar.SetValue(float64(p.BytesReceived) / float64(p.BytesTotal))
			}
			u.progressText.SetTextContent(ProgressLine(p))
		},
	})
	if err != nil {
		u.fail(err.Error())
		return
	}
	if err := m.Wait(ctx); err != nil {
		m.Release()
		u.fail(err.Error())
		return
	}
	u.mu.Lock()
	u.m = m
	soft := u.softw
	u.mu.Unlock()
	u.release.SetDisabled(false)
	u.loadLine.SetTextContent(LoadLine(m.Progress(), m.Cached))
	for _, n := range m.Notes() {
		u.notes.AppendChild(u.el("li", "", n))
	}
	u.showMemory(m.Memory())
	u.status.SetTextContent(fmt.Sprintf("Loaded on %s. Measuring every weight matrix (m = %d) against a float32 reference streamed from the same file…", m.Backend.Name(), rows))
	if m.Backend.Name() == "webgpu" && soft {
		u.notes.AppendChild(u.el("li", "software", "WebGPU runs on a software adapter here: the latencies below are a CPU emulation of a GPU."))
	}
	tbody := u.layerTable()
	res, err := m.Measure(ctx, engine.MeasureOptions{M: rows, Runs: 5, OnLayer: func(r engine.LayerResult) {
		tbody.AppendChild(u.row(layerCells(r), r.Error != ""))
	}})
	if err != nil {
		u.fail("measuring: " + err.Error())
		return
	}
	var total float64
	for _, r := range res {
		total += r.MedianMS
	}
	u.status.SetTextContent(fmt.Sprintf("Measured %d layers on %s: %.2f ms for one pass over all of them (sum of medians).", len(res), m.Backend.Name(), total))
}

func (u *ui) fail(msg string) {
	u.status.SetTextContent("Error: " + msg)
	u.status.SetAttribute("class", "status error")
}

func (u *ui) showMemory(mem engine.Memory) {
	u.status.SetAttribute("class", "status")
	u.memory.SetInnerHTML("")
	u.memory.AppendChild(u.table([]string{"", "float32", "held", "reduction"}, [][]string{
		{"all tensors", Bytes(mem.F32Bytes), Bytes(mem.ResidentBytes), fmt.Sprintf("%.1f %%", mem.ReductionPct)},
		{"weight matrices", Bytes(mem.LayerF32Bytes), Bytes(mem.LayerBytes), fmt.Sprintf("%.1f %%", pct(mem.LayerBytes, mem.LayerF32Bytes))},
	}))
	extra := fmt.Sprintf("Peak in-flight while loading: %s.", Bytes(mem.PeakHeldBytes))
	if mem.WasmMemory > 0 {
		extra += fmt.Sprintf(" WebAssembly linear memory now: %s.", Bytes(mem.WasmMemory))
	}
	u.memory.AppendChild(u.el("p", "small", extra+" “Held” is what the backend reports for its weights: GPU rows padded to 16 bytes, WebNN constants counted once per copy."))
}

func pct(part, whole int64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * (1 - float64(part)/float64(whole))
}

func (u *ui) layerTable() dom.Element {
	t := u.table([]string{"layer", "N×K", "format", "held", "median ms", "min ms", "MB/s", "rel RMS", "cosine"}, nil)
	u.layers.AppendChild(t)
	u.layers.AppendChild(u.el("p", "small", "Latency: nibble's MatMul end to end (activations in, dispatch, result read back), one warm-up then 5 runs, timed with the page clock (performance.now: coarse, often 0.1 ms). MB/s: weight bytes held ÷ median. Error: the backend's product against x·Wᵀ with the file's float32 weights, accumulated in float64."))
	return t.QuerySelector("tbody")
}

func layerCells(r engine.LayerResult) []string {
	if r.Error != "" {
		return []string{ShortName(r.Name, 64), fmt.Sprintf("%d×%d", r.N, r.K), r.Format, Bytes(r.Bytes), "", "", "", "error", r.Error}
	}
	gbs := 0.0
	if r.MedianMS > 0 {
		gbs = float64(r.Bytes) / (r.MedianMS * 1e3)
	}
	return []string{ShortName(r.Name, 64), fmt.Sprintf("%d×%d", r.N, r.K), r.Format, Bytes(r.Bytes),
		fmt.Sprintf("%.3f", r.MedianMS), fmt.Sprintf("%.3f", r.MinMS), fmt.Sprintf("%.1f", gbs),
		fmt.Sprintf("%.2e", r.RelRMS), fmt.Sprintf("%.6f", r.Cosine)}
}

func (u *ui) table(head []string, rows [][]string) dom.Element {
	thead := u.el("thead", "", "")
	tr := u.el("tr", "", "")
	for _, h := range head {
		tr.AppendChild(u.el("th", "", h))
	}
	thead.AppendChild(tr)
	tbody := u.el("tbody", "", "")
	for _, r := range rows {
		tbody.AppendChild(u.row(r, false))
	}
	return u.el("table", "", "", thead, tbody)
}

func (u *ui) row(cells []string, bad bool) dom.Element {
	tr := u.el("tr", "", "")
	if bad {
		tr.SetAttribute("class", "error")
	}
	for _, c := range cells {
		tr.AppendChild(u.el("td", "", c))
	}
	return tr
}
