package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// Options choose how a model is loaded. Field names are the JS API's.
type Options struct {
	// Backend is "auto" (default), "webgpu", "webnn", "cpu" or "hybrid": weights on every
	// backend the browser offers, each stage of the model placed on the one that ran it fastest
	// and matched the cpu in a probe at load (BackendHybrid; Model.Plan's Placement says where).
	Backend string `json:"backend"`
	Format  string `json:"format"` // "auto" (default) or a ParseFormat name, for weight matrices
	// Policy, when set, chooses precision per tensor instead of Format (plan.Policies: "auto",
	// "quality", "balanced", "mixed", "small", "int4", "tiny"); Model.Plan says what it chose.
	Policy string `json:"policy"`
	// Overrides pin tensors to formats whatever the policy says: "pattern=format[@backend],…",
	// the pattern a glob on the name or "role:<role>" (plan.Override).
	Overrides string `json:"overrides"`
	// Search picks each group's scale by error search (quant.Options.Search): slower loads,
	// lower error.
	Search bool `json:"search"`
	// Cache keeps the quantized tensors (stream.Options.Cache: the Cache API in the browser) so
	// the next load of the same file with the same format reads them back with no download and
	// no quantization. nil (the default) caches every file that has a sha256 or a version to
	// key it by; false neither reads nor writes the cache.
	Cache *bool `json:"cache"`
	// MemoryBudget, when positive, bounds the bytes the quantized model may hold: a model whose
	// headers declare more fails with ErrTooLarge (OUT_OF_MEMORY) before its weights are
	// allocated (stream.Options.MemoryBudget). With a Policy it is also the plan's budget: "auto"
	// and "mixed" choose the most accurate plan under it, and one that cannot fit fails before
	// anything but the model's JSON is fetched (with no budget, a policy takes half of
	// navigator.deviceMemory where the browser tells it).
	MemoryBudget int64 `json:"memoryBudget"`
	// Int8Activations rounds activations to int8 where the backend has fast int8 products,
	// adding that rounding to the error for speed. Per backend:
	//   - webgpu (and auto when it takes WebGPU): the model gets a backend of its own whose
	//     GEMVs (m ≤ gpu.GEMVMaxM rows: a decoder's token steps, an encoder's head for up to 4
	//     sentences) round their activations to int8 per block of 32 (16 for int8 weights) as
	//     they read them and sum with packed integer dot products (gpu.Options.Int8Activations,
	//     shaders/gemv_a8.wgsl), where the weights are codes whose groups are whole blocks
	//     (quant.Int8ActivationsFit) and the browser's WGSL has packed_4x8_integer_dot_product.
	//     Each output moves by at most Σ|w|·d·(½ + 2⁻¹³), d a block's max|x|/127
	//     (quant.ActivationError). GEMM (prefill, an encoder's layers) and other formats keep
	//     f32 activations; Model.Notes says whether it applied. An H200's 7B decode step is
	//     18–27 % faster.
	//   - webnn: an encoder's Linears run with int8 activations calibrated once on built-in
	//     sentences (static W8A8): TFLite's fused int8 kernels, several times faster than its
	//     dequantize-every-dispatch path for quantized weights. Generate ignores it.
	//   - cpu and hybrid ignore it (a hybrid load places its stages by the cpu's exact numbers).
	Int8Activations bool `json:"int8Activations"`
	// OnProgress, if set, is called from a goroutine at most every ProgressEvery while the load
	// runs, and once more when it ends.
	OnProgress    func(Progress) `json:"-"`
	ProgressEvery time.Duration  `json:"-"`
}

// Progress is stream.Progress in the JS API's units (milliseconds, bytes) plus the wasm memory.
type Progress struct {
	Source         string  `json:"source"`
	BytesReceived  int64   `json:"bytesReceived"`
	BytesTotal     int64   `json:"bytesTotal"`
	TensorsReady   int     `json:"tensorsReady"`
	TensorsTotal   int     `json:"tensorsTotal"`
	HeldBytes      int64   `json:"heldBytes"`
	PeakHeldBytes  int64   `json:"peakHeldBytes"`
	ResidentBytes  int64   `json:"residentBytes"`
	QuantizedTotal int64   `json:"quantizedTotal"`
	Resumes        int     `json:"resumes"`
	ElapsedMS      float64 `json:"elapsedMs"`
	FirstReadyMS   float64 `json:"firstReadyMs"`
	// FirstOutputMS is when the first model output (an Embed stage) was computed, since Load; 0
	// until one has been. With an Embed called during the load it shows the overlap of
	// inference and download.
	FirstOutputMS   float64 `json:"firstOutputMs"`
	WasmMemoryBytes int64   `json:"wasmMemoryBytes"` // 0 natively
	// CacheHits counts the files read from the cache (their bytes are not in BytesReceived);
	// CacheRead and CacheWritten count cache entry bytes.
	CacheHits    int    `json:"cacheHits"`
	CacheRead    int64  `json:"cacheRead"`
	CacheWritten int64  `json:"cacheWritten"`
	Done         bool   `json:"done"`
	Error        string `json:"error,omitempty"`
}

func progressOf(p stream.Progress) Progress {
	return Progress{
		Source: p.Source, BytesReceived: p.BytesReceived, BytesTotal: p.BytesTotal,
		TensorsReady: p.TensorsReady, TensorsTotal: p.TensorsTotal,
		HeldBytes: p.HeldBytes, PeakHeldBytes: p.PeakHeldBytes,
		ResidentBytes: p.ResidentBytes, QuantizedTotal: p.QuantizedTotal, Resumes: p.Resumes,
		ElapsedMS: ms(p.Elapsed), FirstReadyMS: ms(p.FirstReady), WasmMemoryBytes: wasmMemory(),
		CacheHits: p.CacheHits, CacheRead: p.CacheRead, CacheWritten: p.CacheWritten,
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Model is a model streaming, or streamed, into a backend.
type Model struct {
	Spec    *Spec
	Backend backend.Backend
	Format  string
	// Cached says whether the load used the cache (read it, or wrote what it quantized).
	Cached bool

	notes   []string // what the load decided beyond Spec.Notes (the cache)
	load    *stream.Load
	cancel  context.CancelFunc
	opt     Options
	plan    stream.Plan
	planned *planned       // the precision plan (Plan)
	guard   *guardUploader // probes each kernel variant at load

	progDone chan struct{}
	mu       sync.Mutex
	closed   bool

	arch        *useLite      // the architecture the engine recognised (nil: weights only)
	llama       *llamaArch    // a Llama GGUF decoder (generate.go), nil otherwise
	started     time.Time     // when Load was called
	firstOutput time.Duration // since started, when the first output was computed
}

// Load resolves url, creates the backend and starts streaming; it returns once the load has
// started (use Wait for the end). The model owns the backend: Release closes both.
func Load(ctx context.Context, url string, opt Options) (*Model, error) {
	if opt.Format == "" {
		opt.Format = FormatAuto
	}
	if opt.Backend == "" {
		opt.Backend = "auto"
	}
	if opt.Policy != "" && opt.Format != FormatAuto {
		return nil, fmt.Errorf("%w: give a policy (%q) or a format (%q), not both", ErrBadArgument, opt.Policy, opt.Format)
	}
	plan, err := PlanFor(opt.Format)
	if err != nil {
		return nil, err
	}
	if opt.Cache != nil && !*opt.Cache {
		ctx = withoutFileCache(ctx)
	}
	spec, err := Resolve(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", url, err)
	}
	la, err := detectLlama(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", url, err)
	}
	// The backend is the model's own (Release closes it), so int8 activations change this
	// model's numbers only.
	b, err := newBackend(opt.Backend, opt.Int8Activations)
	if err != nil {
		return nil, err
	}
	pl, err := makePlan(ctx, spec, opt, b, plan)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("load %s: %w", url, err), b.Close())
	}
	tag, streamBudget := "engine plan "+opt.Format, opt.MemoryBudget
	if opt.Policy != "" {
		plan, tag = pl.streamPlan, pl.cacheTag()
		if pl.req.Tensors != nil {
			// Make checked the budget against every tensor as held; the loader would count
			// tensors an architecture quantizes on upload (USE-lite's kernels) as float32.
			streamBudget = 0
		}
	}
	lctx, cancel := context.WithCancel(context.Background())
	m := &Model{Spec: spec, Backend: b, Format: opt.Format, cancel: cancel, opt: opt, plan: plan, planned: pl, progDone: make(chan struct{}), started: time.Now()}
	sopt := stream.Options{Plan: plan, Quant: quant.Options{Search: opt.Search}, Reader: spec.Reader,
		// The plan is not in stream's key (a stale format only shows when the entry is read, and
		// the load then overwrites it): keying by the format gives each its own entry, so
		// switching formats back and forth does not rewrite the cache every time.
		CacheTag: tag, MemoryBudget: streamBudget}
	sopt.Cache, m.notes = cacheFor(spec, opt.Cache)
	m.Cached = sopt.Cache != nil
	m.guard = newGuard(b, b, opt.Backend != "auto", pl)
	m.guard.int8Activations = opt.Int8Activations && b.Name() == "webgpu"
	var up stream.Uploader = m.guard
	if m.arch = detectArch(spec); m.arch != nil {
		sopt.Plan, up = m.arch.wrap(sopt.Plan, up)
		// The cache holds what the loader produced, which the architecture's plan changes
		// (float32 kernels, transposed on upload): entries of a weights-only load must not match.
		sopt.CacheTag += " arch " + ArchUSELite
	}
	if pl.fixed != nil {
		sopt.Plan = pl.streamPlan // the same formats, recorded for Plan
		if m.arch != nil {
			sopt.Plan, _ = m.arch.wrap(pl.streamPlan, b)
		}
	}
	if m.llama = la; la != nil {
		up = la.wrap(up)
	}
	m.load = stream.Start(lctx, up, sopt, spec.Sources...)
	go m.reportProgress()
	return m, nil
}

func (m *Model) reportProgress() {
	defer close(m.progDone)
	if m.opt.OnProgress == nil {
		return
	}
	every := m.opt.ProgressEvery
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.load.Done():
			m.opt.OnProgress(m.Progress())
			return
		case <-t.C:
			m.opt.OnProgress(m.Progress())
		}
	}
}

// Progress is a snapshot of the load.
func (m *Model) Progress() Progress {
	p := progressOf(m.load.Progress())
	p.FirstOutputMS = ms(m.FirstOutput())
	select {
	case <-m.load.Done():
		p.Done = true
		if err := m.load.Err(); err != nil {
			p.Error = err.Error()
		}
	default:
	}
	return p
}

// Wait blocks until the whole model is resident (nil) or the load failed, and until the last
// progress report has been delivered.
func (m *Model) Wait(ctx context.Context) error {
	_, err := m.load.Result(ctx)
	if err == nil {
		select {
		case <-m.progDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("load %s on %s: %w", m.Spec.URL, m.Backend.Name(), err)
	}
	if _, hybrid := m.Backend.(*backend.Hybrid); hybrid && m.arch != nil {
		// The probe belongs to the load: Plan shows each stage's backend once Wait returns.
		if _, err := m.arch.ready(ctx, m); err != nil {
			return fmt.Errorf("load %s on %s: %w", m.Spec.URL, m.Backend.Name(), err)
		}
	}
	return nil
}

// TensorFacts describe one tensor of the model. Field names are the JS API's.
type TensorFacts struct {
	Name     string `json:"name"`
	Shape    []int  `json:"shape"`
	DType    string `json:"dtype"`  // as stored in the file
	Format   string `json:"format"` // as held by the backend
	Bytes    int64  `json:"bytes"`  // held by the backend (0 until resident)
	F32Bytes int64  `json:"f32Bytes"`
	Resident bool   `json:"resident"`
	Layer    bool   `json:"layer"` // a weight matrix: what Measure times
}

// Tensors lists every tensor the headers declared so far, in file order.
func (m *Model) Tensors() []TensorFacts {
	infos := m.load.Tensors()
	out := make([]TensorFacts, 0, len(infos))
	for i := range infos {
		t := &infos[i]
		f := TensorFacts{Name: t.Name, Shape: t.Shape, DType: t.DType.String(), Format: m.plan(t).String(),
			F32Bytes: 4 * t.NumElements(), Layer: isLayer(t)}
		if w, ok := m.load.Weight(t.Name); ok {
			// As held: an architecture may rearrange a tensor on upload (USE-lite's kernels).
			f.Bytes, f.Resident, f.Format = w.Bytes(), true, w.Format().String()
		}
		out = append(out, f)
	}
	return out
}

// Memory compares what the model holds with what float32 would.
type Memory struct {
	F32Bytes       int64   `json:"f32Bytes"`        // every tensor as float32
	ResidentBytes  int64   `json:"residentBytes"`   // what the backend holds (Weight.Bytes)
	ReductionPct   float64 `json:"reductionPct"`    // 100·(1 − resident/f32)
	LayerF32Bytes  int64   `json:"layerF32Bytes"`   // weight matrices only
	LayerBytes     int64   `json:"layerBytes"`      // weight matrices only, as held
	PeakHeldBytes  int64   `json:"peakHeldBytes"`   // the loader's in-flight peak
	WasmMemory     int64   `json:"wasmMemoryBytes"` // linear memory now (0 natively)
	TensorsPending int     `json:"tensorsPending"`
}

// Memory is measured from the resident weights, not computed from formats: the GPU pads rows,
// WebNN keeps copies per graph, and those bytes count.
func (m *Model) Memory() Memory {
	var r Memory
	for _, t := range m.Tensors() {
		r.F32Bytes += t.F32Bytes
		r.ResidentBytes += t.Bytes
		if t.Layer {
			r.LayerF32Bytes += t.F32Bytes
			r.LayerBytes += t.Bytes
		}
		if !t.Resident {
			r.TensorsPending++
		}
	}
	if r.F32Bytes > 0 {
		r.ReductionPct = 100 * (1 - float64(r.ResidentBytes)/float64(r.F32Bytes))
	}
	r.PeakHeldBytes = m.load.Progress().PeakHeldBytes
	r.WasmMemory = wasmMemory()
	return r
}

// MatMul computes x[m×K] · dequant(W)ᵀ for the resident weight name.
func (m *Model) MatMul(name string, x []float32, rows int) ([]float32, error) {
	w, ok := m.load.Weight(name)
	if !ok {
		if err := m.load.Err(); err != nil {
			return nil, fmt.Errorf("matmul %q: %w", name, err)
		}
		for _, t := range m.load.Tensors() {
			if t.Name == name {
				return nil, fmt.Errorf("matmul %q: not resident yet (wait for the load)", name)
			}
		}
		return nil, fmt.Errorf("matmul %q: no such tensor", name)
	}
	n, k := w.Shape()
	if rows <= 0 || len(x) != rows*k {
		return nil, fmt.Errorf("matmul %q: x has %d values for m=%d rows of K=%d (want %d): %w", name, len(x), rows, k, rows*k, backend.ErrShape)
	}
	dst := make([]float32, rows*n)
	if err := m.Backend.MatMul(dst, x, w, rows); err != nil {
		return nil, fmt.Errorf("matmul %q on %s: %w", name, m.Backend.Name(), err)
	}
	return dst, nil
}

// Shape returns the resident weight's [N, K].
func (m *Model) Shape(name string) (n, k int, ok bool) {
	w, ok := m.load.Weight(name)
	if !ok {
		return 0, 0, false
	}
	n, k = w.Shape()
	return n, k, true
}

// Notes say what the load assumed and why the backend is the one it is.
func (m *Model) Notes() []string {
	notes := append(append([]string(nil), m.Spec.Notes...), m.notes...)
	if err := m.load.CacheErr(); err != nil {
		notes = append(notes, "cache: "+err.Error()+" (the load went on without it)")
	}
	if why := FallbackReason(m.Backend); why != nil {
		notes = append(notes, "auto chose the CPU: "+why.Error())
	}
	if h, ok := m.Backend.(*backend.Hybrid); ok {
		for _, b := range h.Members() {
			if why := FallbackReason(b); why != nil {
				notes = append(notes, "hybrid without WebGPU or WebNN: "+why.Error())
			}
		}
	}
	if m.arch != nil {
		notes = append(notes, m.arch.placementNotes()...)
	}
	notes = append(notes, m.Backend.Caps().Notes...)
	notes = append(notes, m.guard.Notes()...)
	return notes
}

// Release stops the load, releases every weight and closes the backend. It is idempotent.
func (m *Model) Release() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	if m.llama != nil {
		m.llama.release()
	}
	err := m.load.Release()
	return errors.Join(err, m.Backend.Close())
}

// layerInfos lists the declared weight matrices.
func (m *Model) layerInfos() []format.TensorInfo {
	var out []format.TensorInfo
	for _, t := range m.load.Tensors() {
		if isLayer(&t) {
			out = append(out, t)
		}
	}
	return out
}
