//go:build js && wasm

package site

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"honnef.co/go/js/dom/v2"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/plan"
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

	caps, devices, status, notes      dom.Element
	model, backend, format            dom.Element
	cache                             *dom.HTMLInputElement
	load, release, measure, embed     *dom.HTMLButtonElement
	bar                               *dom.HTMLProgressElement
	progressText, memory, layers, hdr dom.Element
	loadLine, planPic, try, sentences dom.Element
	sim, agreement, errPic, layerPic  dom.Element
	// The text-generation panel (a Llama decoder) and the latency picture.
	gen, genNote, genOut, genRate  dom.Element
	prompt, maxTokens, temperature dom.Element
	generate, stop                 *dom.HTMLButtonElement
	latPic                         dom.Element

	mu          sync.Mutex
	m           *engine.Model
	ref         *engine.Model // USE-lite as float32 on the cpu reference, for the similarity panel
	name        string        // the loaded model's name
	prec        string        // the loaded model's precision, as the picker named it
	busy        bool
	softwareGPU bool // the WebGPU adapter is a software one (SwiftShader, lavapipe)
	// What this page measured per precision of the loaded model, for the pictures: resident
	// bytes, and 1 − mean cosine to float32 embeddings. Keyed by model then precision.
	memBy, errBy map[string]map[string]float64
	// Each Compare's embedding time, keyed by model then backend × precision.
	latBy     map[string]map[string]Latency
	genCancel context.CancelFunc // stops the running generation; nil when none runs
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

func (u *ui) button(id, class, text string, do func()) *dom.HTMLButtonElement {
	b := u.withID(u.el("button", class, text), id).(*dom.HTMLButtonElement)
	b.SetAttribute("type", "button")
	b.AddEventListener("click", false, func(dom.Event) { go do() })
	return b
}

// defaultSentences show both near-paraphrases and unrelated pairs, so the heatmap has contrast.
const defaultSentences = "The cat sat on the mat.\nA kitten is resting on a rug.\nStock markets fell sharply today.\nShares dropped at the opening bell."

func (u *ui) build(root dom.Element) {
	root.SetInnerHTML("")
	u.memBy, u.errBy = map[string]map[string]float64{}, map[string]map[string]float64{}
	u.latBy = map[string]map[string]Latency{}
	u.hdr = u.el("header", "", "",
		u.el("h1", "", "nibble"),
		u.el("p", "tagline", "Quantized neural networks in your browser: a Go WebAssembly bundle streams a model, quantizes it as it arrives, and runs it on WebGPU, WebNN or the CPU. Every figure below is measured in this page."))
	root.AppendChild(u.hdr)

	u.model = u.withID(u.el("select", "", ""), "model")
	u.backend = u.withID(u.el("select", "", ""), "backend")
	u.format = u.withID(u.el("select", "", ""), "format")
	for _, b := range engine.Backends {
		u.backend.AppendChild(u.option(b, b))
	}
	formats := u.el("optgroup", "", "")
	formats.SetAttribute("label", "one format for every weight matrix")
	for _, f := range engine.Formats {
		formats.AppendChild(u.option(f, f))
	}
	policies := u.el("optgroup", "", "")
	policies.SetAttribute("label", "a policy: the planner picks per tensor")
	for _, p := range plan.PolicyNames() {
		policies.AppendChild(u.option("policy:"+p, "policy "+p))
	}
	u.format.AppendChild(formats)
	u.format.AppendChild(policies)
	u.cache = u.withID(u.el("input", "", ""), "cache").(*dom.HTMLInputElement)
	u.cache.SetAttribute("type", "checkbox")
	u.cache.SetChecked(true)
	u.load = u.button("load", "primary", "Load", u.run)
	u.release = u.button("release", "", "Release", func() { u.drop("released") })
	u.release.SetDisabled(true)
	u.caps = u.withID(u.el("p", "caps", "Measuring this browser…"), "caps")
	u.devices = u.withID(u.el("div", "facts", ""), "devices")
	root.AppendChild(u.el("section", "card", "",
		u.el("div", "controls", "",
			u.label("model", u.model), u.label("precision", u.format), u.label("backend", u.backend),
			u.label("cache quantized", u.cache), u.load, u.release),
		u.caps,
		u.el("details", "", "", u.el("summary", "", "This browser in detail"), u.devices)))

	u.bar = u.withID(u.el("progress", "", ""), "bytes-bar").(*dom.HTMLProgressElement)
	u.bar.SetMax(1)
	u.bar.SetValue(0)
	u.progressText = u.withID(u.el("p", "progress-text", "Nothing loaded yet."), "progress-text")
	u.loadLine = u.withID(u.el("p", "load-line", ""), "load-line")
	u.status = u.withID(u.el("div", "status", ""), "status")
	u.status.SetAttribute("role", "status")
	u.notes = u.withID(u.el("ul", "notes", ""), "notes")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Loading"), u.bar, u.progressText, u.loadLine, u.status,
		u.el("details", "", "", u.el("summary", "", "What the load decided"), u.notes)))

	u.sentences = u.withID(u.el("textarea", "", ""), "sentences")
	u.sentences.SetAttribute("rows", "5")
	u.sentences.SetAttribute("aria-label", "sentences, one per line")
	u.sentences.Underlying().Set("value", defaultSentences)
	u.embed = u.button("embed", "primary", "Compare sentences", u.compare)
	u.sim = u.withID(u.el("div", "pics", ""), "sim")
	u.agreement = u.withID(u.el("p", "", ""), "agreement")
	u.try = u.withID(u.el("section", "card", "",
		u.el("h2", "", "Try it: sentence similarity"),
		u.el("p", "small", "One sentence a line (up to 8). The loaded model embeds them; so does USE-lite in float32 on the CPU reference. Each heatmap is the cosine between every pair; the line below says how far the chosen precision moved the embeddings."),
		u.sentences, u.el("div", "controls", "", u.embed), u.sim, u.agreement), "try")
	u.try.SetAttribute("hidden", "")
	root.AppendChild(u.try)

	u.prompt = u.withID(u.el("textarea", "", ""), "prompt")
	u.prompt.SetAttribute("rows", "3")
	u.prompt.SetAttribute("aria-label", "prompt")
	u.prompt.Underlying().Set("value", "Once upon a time")
	u.maxTokens = u.number("max-tokens", "32", "1", "512", "1")
	u.temperature = u.number("temperature", "0.8", "0", "2", "0.1")
	u.generate = u.button("generate", "primary", "Generate", u.runGenerate)
	u.stop = u.button("stop", "", "Stop", u.stopGenerate)
	u.stop.SetDisabled(true)
	u.genNote = u.withID(u.el("p", "synthetic", "random weights: for speed, not meaning"), "gen-note")
	u.genOut = u.withID(u.el("div", "gen-out", ""), "gen-out")
	u.genRate = u.withID(u.el("p", "small", ""), "gen-rate")
	u.gen = u.withID(u.el("section", "card", "",
		u.el("h2", "", "Try it: text generation"),
		u.genNote,
		u.el("p", "small", "The loaded decoder continues the prompt one token at a time; each token is shown as it comes."),
		u.prompt,
		u.el("div", "controls", "", u.label("max tokens", u.maxTokens), u.label("temperature", u.temperature), u.generate, u.stop),
		u.genOut, u.genRate), "gen")
	u.gen.SetAttribute("hidden", "")
	root.AppendChild(u.gen)

	u.memory = u.withID(u.el("div", "pics", ""), "memory")
	u.errPic = u.withID(u.el("div", "pics", ""), "error-pic")
	u.latPic = u.withID(u.el("div", "pics", ""), "latency-pic")
	u.planPic = u.withID(u.el("div", "", ""), "plan")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Trade-offs"), u.memory, u.errPic, u.latPic, u.planPic))

	u.measure = u.button("measure", "", "Measure every weight matrix", u.measureLayers)
	u.measure.SetDisabled(true)
	u.layerPic = u.withID(u.el("div", "", ""), "layer-pic")
	u.layers = u.withID(u.el("div", "scroll", ""), "layers")
	root.AppendChild(u.el("section", "card", "", u.el("h2", "", "Per-layer matmul"),
		u.el("div", "controls", "", u.measure), u.layerPic, u.layers))
}

// number is a numeric input with a default, bounds and a step.
func (u *ui) number(id, def, lo, hi, step string) dom.Element {
	e := u.withID(u.el("input", "", ""), id)
	e.SetAttribute("type", "number")
	e.SetAttribute("min", lo)
	e.SetAttribute("max", hi)
	e.SetAttribute("step", step)
	e.Underlying().Set("value", def)
	return e
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
	u.caps.SetTextContent(CapsLine(d))
	if d.WebGPU.Software || !d.WebGPU.Available {
		u.caps.SetAttribute("class", "caps software")
	}
	u.devices.SetInnerHTML("")
	u.devices.AppendChild(u.el("h3", "", "WebGPU"))
	u.devices.AppendChild(u.el("p", "verdict", WebGPULine(d.WebGPU)))
	u.devices.AppendChild(u.scroll(u.table([]string{"feature or limit", "value"}, factRows(WebGPUFacts(d.WebGPU)))))
	u.devices.AppendChild(u.el("h3", "", "WebNN"))
	u.devices.AppendChild(u.el("p", "verdict", WebNNLine(d.WebNN)))
	if d.WebNN.Available {
		u.devices.AppendChild(u.scroll(u.table([]string{"op", "accepts"}, summaryRows(d.WebNN.Summary))))
	}
	u.devices.AppendChild(u.el("h3", "", "CPU"))
	u.devices.AppendChild(u.el("p", "verdict", fmt.Sprintf("Go %s, GOMAXPROCS %d (the wasm module runs on one thread)", d.CPU.GoVersion, d.CPU.GOMAXPROCS)))
	u.mu.Lock()
	u.softwareGPU = d.WebGPU.Software
	u.mu.Unlock()
}

// scroll wraps a wide table so that it scrolls inside its card instead of widening the page.
func (u *ui) scroll(e dom.Element) dom.Element { return u.el("div", "scroll", "", e) }

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
		o := u.option(n, n)
		if n == "use-lite" { // the real model is the first thing to try
			o.SetAttribute("selected", "")
		}
		u.model.AppendChild(o)
	}
}

// pageURL resolves a path against the page's address.
func pageURL(rel string) string {
	return js.Global().Get("URL").New(rel, js.Global().Get("location").Get("href")).Call("toString").String()
}

func (u *ui) drop(why string) {
	u.mu.Lock()
	m, ref, stop := u.m, u.ref, u.genCancel
	u.m, u.ref = nil, nil
	u.mu.Unlock()
	if stop != nil {
		stop()
	}
	if ref != nil {
		ref.Release()
	}
	if m != nil {
		m.Release()
		u.status.SetTextContent("Model " + why + ": its weights and backend are freed.")
	}
	u.release.SetDisabled(true)
	u.measure.SetDisabled(true)
	u.try.SetAttribute("hidden", "")
	u.gen.SetAttribute("hidden", "")
}

// lock runs f unless another button's work is running; the buttons stay disabled meanwhile.
func (u *ui) lock(f func()) {
	u.mu.Lock()
	if u.busy {
		u.mu.Unlock()
		return
	}
	u.busy = true
	u.mu.Unlock()
	u.load.SetDisabled(true)
	u.embed.SetDisabled(true)
	u.generate.SetDisabled(true)
	defer func() {
		u.mu.Lock()
		u.busy = false
		u.mu.Unlock()
		u.load.SetDisabled(false)
		u.embed.SetDisabled(false)
		u.generate.SetDisabled(false)
	}()
	f()
}

// run loads the chosen model; it runs on its own goroutine.
func (u *ui) run() { u.lock(u.loadModel) }

func (u *ui) loadModel() {
	u.drop("replaced")
	for _, e := range []dom.Element{u.memory, u.errPic, u.planPic, u.layers, u.layerPic, u.notes, u.sim} {
		e.SetInnerHTML("")
	}
	u.loadLine.SetTextContent("")
	u.agreement.SetTextContent("")
	u.genOut.SetTextContent("")
	u.genRate.SetTextContent("")
	u.status.SetAttribute("class", "status")
	name, backend, prec := value(u.model), value(u.backend), value(u.format)
	useCache := u.cache.Checked()
	if name == "" {
		u.fail("no model to load: the server lists none")
		return
	}
	opt := engine.Options{Backend: backend, Format: prec, Cache: &useCache, OnProgress: u.progress}
	if p, ok := strings.CutPrefix(prec, "policy:"); ok {
		opt.Format, opt.Policy = "", p
	}
	// A reload from the cache receives no bytes: start from an empty bar, not the last load's.
	u.bar.SetValue(0)
	u.status.SetTextContent(fmt.Sprintf("Loading %s on %s as %s…", name, backend, prec))
	ctx := context.Background()
	m, err := engine.Load(ctx, pageURL("models/"+name+"/"), opt)
	if err != nil {
		u.fail(err.Error())
		return
	}
	if err := m.Wait(ctx); err != nil {
		m.Release()
		u.fail(err.Error())
		return
	}
	u.bar.SetValue(1)
	u.mu.Lock()
	u.m, u.name, u.prec = m, name, prec
	soft := u.softwareGPU
	u.mu.Unlock()
	u.release.SetDisabled(false)
	u.measure.SetDisabled(false)
	u.loadLine.SetTextContent(LoadLine(m.Progress(), m.Cached))
	for _, n := range m.Notes() {
		u.notes.AppendChild(u.el("li", "", n))
	}
	if m.Backend.Name() == "webgpu" && soft {
		u.notes.AppendChild(u.el("li", "software", "WebGPU runs on a software adapter here: latencies are a CPU emulation of a GPU."))
	}
	mem := m.Memory()
	record(u.memBy, name, prec, float64(mem.ResidentBytes))
	u.showMemory(name, mem)
	if p := m.Plan(); p != nil && len(p.Tensors) > 0 {
		u.planPic.SetInnerHTML(PlanSVG("plan-svg", p) + `<p class="small">One cell per tensor in file order; hover a cell for its name, format and the planner's reason.</p>`)
	}
	u.status.SetTextContent(fmt.Sprintf("Loaded %s on %s (%s).", name, m.Backend.Name(), m.Arch()))
	if m.Arch() == engine.ArchUSELite {
		u.try.RemoveAttribute("hidden")
		u.showErrors(name)
		return
	}
	if m.Arch() == engine.ArchLlama {
		if SyntheticLLM(name) {
			u.genNote.RemoveAttribute("hidden")
		} else {
			u.genNote.SetAttribute("hidden", "")
		}
		u.gen.RemoveAttribute("hidden")
		return
	}
	if m.Arch() == "" { // weights only: the per-layer matmul is all there is to see
		u.measureModel(m)
	}
}

// progress draws a load's progress. The bar follows bytes on a download and tensors on a read
// from the cache (which receives no bytes), and ends full.
func (u *ui) progress(p engine.Progress) {
	switch {
	case p.Done && p.Error == "":
		u.bar.SetValue(1)
	case p.CacheHits == 0 && p.BytesTotal > 0:
		u.bar.SetValue(float64(p.BytesReceived) / float64(p.BytesTotal))
	case p.TensorsTotal > 0:
		u.bar.SetValue(float64(p.TensorsReady) / float64(p.TensorsTotal))
	}
	u.progressText.SetTextContent(ProgressLine(p))
}

func record(by map[string]map[string]float64, model, prec string, v float64) {
	if by[model] == nil {
		by[model] = map[string]float64{}
	}
	by[model][prec] = v
}

func (u *ui) measureLayers() {
	u.lock(func() {
		u.mu.Lock()
		m := u.m
		u.mu.Unlock()
		if m != nil {
			u.measureModel(m)
		}
	})
}

func (u *ui) measureModel(m *engine.Model) {
	u.layers.SetInnerHTML("")
	u.layerPic.SetInnerHTML("")
	u.status.SetTextContent(fmt.Sprintf("Measuring every weight matrix on %s against a float32 reference streamed from the same file…", m.Backend.Name()))
	tbody := u.layerTable()
	ctx := context.Background()
	res, err := m.Measure(ctx, engine.MeasureOptions{M: 1, Runs: 5, OnLayer: func(r engine.LayerResult) {
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
	u.layerPic.SetInnerHTML(BarsSVG("layer-error", "relative RMS error per weight matrix (vs float32)", LayerErrorBars(res)))
	u.status.SetTextContent(fmt.Sprintf("Measured %d layers on %s: %.2f ms for one pass over all of them (sum of medians).", len(res), m.Backend.Name(), total))
}

// compare embeds the sentences with the loaded model and with the float32 reference, and
// draws both similarity matrices.
func (u *ui) compare() {
	u.lock(func() {
		u.mu.Lock()
		m, ref, name, prec := u.m, u.ref, u.name, u.prec
		u.mu.Unlock()
		if m == nil || m.Arch() != engine.ArchUSELite {
			u.fail("load USE-lite first")
			return
		}
		texts := Sentences(value(u.sentences), 8)
		if len(texts) < 2 {
			u.fail("type at least two sentences, one a line")
			return
		}
		u.status.SetAttribute("class", "status")
		ctx := context.Background()
		if ref == nil {
			u.status.SetTextContent("Loading USE-lite in float32 on the CPU reference, to compare against…")
			no := false
			r, err := engine.Load(ctx, pageURL("models/"+name+"/"), engine.Options{Backend: "cpu", Format: "f32", Cache: &no})
			if err == nil {
				err = r.Wait(ctx)
			}
			if err != nil {
				u.fail("the float32 reference: " + err.Error())
				return
			}
			ref = r
			u.mu.Lock()
			u.ref = r
			u.mu.Unlock()
		}
		u.status.SetTextContent(fmt.Sprintf("Embedding %d sentences…", len(texts)))
		t0 := time.Now()
		got, err := m.Embed(ctx, texts)
		took := time.Since(t0)
		if err != nil {
			u.fail(err.Error())
			return
		}
		want, err := ref.Embed(ctx, texts)
		if err != nil {
			u.fail("the float32 reference: " + err.Error())
			return
		}
		mean, worst, diff := Agreement(want, got)
		record(u.errBy, name, prec, 1-mean)
		if u.latBy[name] == nil {
			u.latBy[name] = map[string]Latency{}
		}
		u.latBy[name][LatencyKey(m.Backend.Name(), prec)] = Latency{MS: float64(took) / float64(time.Millisecond), Texts: len(texts)}
		list := u.el("ol", "sentences", "")
		for _, t := range texts {
			list.AppendChild(u.el("li", "", t))
		}
		u.sim.SetInnerHTML(HeatmapSVG("sim-f32", "float32 (cpu)", Similarity(want)) +
			HeatmapSVG("sim-chosen", prec+" ("+m.Backend.Name()+")", Similarity(got)))
		u.sim.AppendChild(list)
		u.agreement.SetTextContent(fmt.Sprintf("Cosine between the float32 and %s embeddings: mean %.6f, worst %.6f; similarities differ by at most %.4f. Embedding took %.0f ms on %s.",
			prec, mean, worst, diff, float64(took)/float64(time.Millisecond), m.Backend.Name()))
		u.status.SetTextContent(fmt.Sprintf("Compared %d sentences.", len(texts)))
		u.showErrors(name)
		u.showLatency(name)
	})
}

// showLatency draws the embedding time of every backend × precision of this model compared in
// this page so far (the last Compare of each).
func (u *ui) showLatency(name string) {
	bars := LatencyBars(u.latBy[name])
	if len(bars) == 0 {
		u.latPic.SetInnerHTML("")
		return
	}
	u.latPic.SetInnerHTML(LatencySVG("latency-svg", bars) +
		`<p class="small">The loaded model's Embed call for the sentences above, timed with the page clock; the float32 reference is not included. Each backend and precision you load and compare adds a bar; the first call on a backend includes its warm-up.</p>`)
}

// runGenerate streams the loaded decoder's continuation of the prompt into the page.
func (u *ui) runGenerate() {
	u.lock(func() {
		u.mu.Lock()
		m := u.m
		u.mu.Unlock()
		if m == nil || m.Arch() != engine.ArchLlama {
			u.fail("load a Llama GGUF model first")
			return
		}
		opt := engine.GenerateOptions{MaxTokens: 32, Temperature: 0.8, Seed: uint64(time.Now().UnixNano())}
		if _, err := fmt.Sscan(value(u.maxTokens), &opt.MaxTokens); err != nil || opt.MaxTokens < 1 {
			u.fail("max tokens must be a whole number of at least 1")
			return
		}
		if _, err := fmt.Sscan(value(u.temperature), &opt.Temperature); err != nil || opt.Temperature < 0 {
			u.fail("temperature must be a number of at least 0")
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		u.mu.Lock()
		u.genCancel = cancel
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			u.genCancel = nil
			u.mu.Unlock()
			u.stop.SetDisabled(true)
		}()
		u.stop.SetDisabled(false)
		u.status.SetAttribute("class", "status")
		u.status.SetTextContent(fmt.Sprintf("Generating up to %d tokens on %s…", opt.MaxTokens, m.Backend.Name()))
		prompt := value(u.prompt)
		u.genOut.SetInnerHTML("")
		u.genOut.AppendChild(u.el("span", "prompt", prompt))
		u.genRate.SetTextContent(RateLine(0, 0, 0, false))
		var n int
		var paused, first time.Duration
		t0 := time.Now()
		err := m.Generate(ctx, prompt, opt, func(tk engine.Token) error {
			n++
			if n == 1 {
				first = time.Since(t0)
			}
			u.genOut.AppendChild(u.el("span", "tok", VisibleToken(tk.Text)))
			u.genOut.SetAttribute("data-tokens", fmt.Sprint(n))
			u.genRate.SetTextContent(RateLine(n, time.Since(t0)-paused, first, false))
			// Let the browser draw this token before the next one is computed; the pause is
			// not decoding time.
			p0 := time.Now()
			time.Sleep(time.Millisecond)
			paused += time.Since(p0)
			return nil
		})
		u.genRate.SetTextContent(RateLine(n, time.Since(t0)-paused, first, true))
		switch {
		case err != nil && ctx.Err() != nil:
			u.status.SetTextContent(fmt.Sprintf("Stopped after %d tokens.", n))
		case err != nil:
			u.fail(err.Error())
		default:
			u.status.SetTextContent(fmt.Sprintf("Generated %d tokens on %s.", n, m.Backend.Name()))
		}
	})
}

func (u *ui) stopGenerate() {
	u.mu.Lock()
	stop := u.genCancel
	u.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// showErrors draws the error of every precision of this model compared in this page so far.
func (u *ui) showErrors(name string) {
	bars := PrecisionBars(u.errBy[name], func(v float64) string { return fmt.Sprintf("%.2e", v) })
	if len(bars) == 0 {
		u.errPic.SetInnerHTML(`<p class="small">Compare sentences to add this precision's error to the picture.</p>`)
		return
	}
	u.errPic.SetInnerHTML(BarsSVG("error-svg", "1 − cosine to float32 embeddings, by precision", bars) +
		`<p class="small">Each precision you load and compare adds a bar (same sentences: fair only if you keep them).</p>`)
}

func (u *ui) fail(msg string) {
	// One readable line; the whole message, however long, in a <details> a keyboard can open.
	line, _ := ErrorLine(msg)
	u.status.SetTextContent("")
	u.status.AppendChild(u.el("span", "error-line", "Error: "+line))
	full := u.el("pre", "error-full", strings.TrimSpace(msg))
	u.status.AppendChild(u.el("details", "error-details", "", u.el("summary", "", "Details"), full))
	u.status.SetAttribute("class", "status error")
}

func (u *ui) showMemory(name string, mem engine.Memory) {
	bars := append([]Bar{{Label: "float32", Value: float64(mem.F32Bytes), Text: Bytes(mem.F32Bytes), Class: "ref"}},
		PrecisionBars(u.memBy[name], func(v float64) string { return Bytes(int64(v)) })...)
	extra := fmt.Sprintf("Now held: %s of %s at float32 (%.1f %% less); weight matrices %s of %s. Peak in-flight while loading: %s.",
		Bytes(mem.ResidentBytes), Bytes(mem.F32Bytes), mem.ReductionPct, Bytes(mem.LayerBytes), Bytes(mem.LayerF32Bytes), Bytes(mem.PeakHeldBytes))
	if mem.WasmMemory > 0 {
		extra += fmt.Sprintf(" WebAssembly linear memory now: %s.", Bytes(mem.WasmMemory))
	}
	u.memory.SetInnerHTML(BarsSVG("memory-svg", "memory held, by precision loaded in this page", bars))
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
	t.SetAttribute("class", "layers")
	u.layers.AppendChild(t)
	u.layers.AppendChild(u.el("p", "small", "Latency: nibble's MatMul end to end (activations in, dispatch, result read back), one warm-up then 5 runs, timed with the page clock (performance.now: coarse, often 0.1 ms). MB/s: weight bytes held ÷ median. Error: the backend's product against x·Wᵀ with the file's float32 weights, accumulated in float64."))
	return t.QuerySelector("tbody")
}

func layerCells(r engine.LayerResult) []string {
	if r.Error != "" {
		return []string{r.Name, fmt.Sprintf("%d×%d", r.N, r.K), r.Format, Bytes(r.Bytes), "", "", "", "error", r.Error}
	}
	mbPerS := 0.0
	if r.MedianMS > 0 {
		mbPerS = float64(r.Bytes) / (r.MedianMS * 1e3) // bytes per ms ÷ 1000 = MB/s
	}
	return []string{r.Name, fmt.Sprintf("%d×%d", r.N, r.K), r.Format, Bytes(r.Bytes),
		fmt.Sprintf("%.3f", r.MedianMS), fmt.Sprintf("%.3f", r.MinMS), fmt.Sprintf("%.1f", mbPerS),
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
