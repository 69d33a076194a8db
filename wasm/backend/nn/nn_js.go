//go:build js && wasm

package nn

import (
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

// Options choose the context and the graph shape.
type Options struct {
	// Context, if set, is used instead of creating one (e.g. webnn.CreateContextFromGPU).
	// The backend does not destroy a context it was given.
	Context *webnn.Context
	// DeviceType is used when Context is nil; "" means cpu.
	DeviceType webnn.DeviceType
	// Graph picks among the graph shapes measured in bench_js_test.go; the zero value is the
	// default (and fastest measured) shape.
	Graph GraphShape
	// Lazy builds a weight's single-matmul graph on its first MatMul instead of at Upload. A
	// user of whole graphs only (Compile) never needs those graphs, and each holds another copy
	// of its weight in the WebNN service; without Lazy a bad weight fails at Upload.
	Lazy bool
	// F32Weights holds every quantized or float16 weight of at most 64M elements dequantized
	// as a float32 constant (4 bytes a weight, 8× a 4-bit one): TFLite's float32 gemm reads it
	// with no dequantize per dispatch, exactly. Larger weights keep their codes.
	F32Weights bool
}

// Backend runs matmuls as WebNN graphs. It is safe for concurrent use; calls on one weight are
// serialised because they share its input and output tensors.
type Backend struct {
	ctx    *webnn.Context
	own    bool
	limits *webnn.Limits
	graph  GraphShape
	device webnn.DeviceType
	pad    bool // pad op accepts float32 rank 2: pad x in the graph rather than in Go
	lazy   bool
	f32    bool

	mu    sync.Mutex
	notes []string

	// builds and dispatches count MLGraph builds and dispatches, so tests can hold the backend
	// to one build per compiled shape and one dispatch per run.
	builds, dispatches atomic.Int64
}

var _ backend.Backend = (*Backend)(nil)

func (b *Backend) build(bd *webnn.Builder, label string, outs map[string]*webnn.Operand) (*webnn.Graph, error) {
	b.builds.Add(1)
	return bd.Build(label, outs)
}

func (b *Backend) dispatch(g *webnn.Graph, in, out map[string]*webnn.Tensor) error {
	b.dispatches.Add(1)
	return b.ctx.Dispatch(g, in, out)
}

// New creates a context (or adopts opt.Context) and reads its opSupportLimits.
func New(opt Options) (*Backend, error) {
	b := &Backend{ctx: opt.Context, graph: opt.Graph, device: opt.DeviceType, lazy: opt.Lazy, f32: opt.F32Weights}
	if b.device == "" {
		b.device = webnn.CPU
	}
	if b.ctx == nil {
		c, err := webnn.CreateContext(webnn.ContextOptions{DeviceType: b.device})
		if err != nil {
			return nil, fmt.Errorf("webnn backend: %w", err)
		}
		b.ctx, b.own = c, true
	}
	l, err := b.ctx.OpSupportLimits()
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("webnn backend: %w", err)
	}
	b.limits = l
	for _, need := range []struct{ op, operand string }{{"gemm", "a"}, {"input", ""}, {"constant", ""}, {"reshape", "input"}} {
		if !l.Accepts(need.op, need.operand, webnn.Float32, 2) {
			b.Close()
			return nil, fmt.Errorf("webnn backend: %s %s does not accept float32 rank 2; no graph can be built", need.op, need.operand)
		}
	}
	b.pad = l.Accepts("pad", "input", webnn.Float32, 2)
	if !b.pad {
		b.note("pad rejects float32: x is zero-padded in Go before writeTensor")
	}
	return b, nil
}

func (b *Backend) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(b.notes, s) {
		b.notes = append(b.notes, s)
	}
}

// Context is the MLContext the backend runs on.
func (b *Backend) Context() *webnn.Context { return b.ctx }

// Limits is the context's parsed opSupportLimits.
func (b *Backend) Limits() *webnn.Limits { return b.limits }

func (b *Backend) Name() string { return "webnn" }

func (b *Backend) Caps() plan.Caps {
	b.mu.Lock()
	notes := slices.Clone(b.notes)
	b.mu.Unlock()
	c := plan.Caps{
		Backend: "webnn",
		Adapter: fmt.Sprintf("WebNN deviceType %s, graph %s", b.device, b.graph),
		// WebNN does not say what runs it; a cpu context is a CPU library (TFLite/XNNPACK here).
		Software: b.device == webnn.CPU,
		F16:      b.limits.Accepts("matmul", "a", webnn.Float16, 2),
		Notes:    append(b.limits.Summary("dequantizeLinear", "gemm"), notes...),
	}
	if dqAccepts(b.limits, webnn.Int4) {
		c.WeightBits = append(c.WeightBits, 2, 4)
	}
	if dqAccepts(b.limits, webnn.Int8) {
		c.WeightBits = append(c.WeightBits, 8)
	}
	return c
}

// Weight is a tensor held as graph constants. The packed constants stay in JS memory so that
// a graph for a new batch-size class can be built later without the caller's tensor.
type Weight struct {
	b      *Backend
	name   string
	format quant.Format
	layout Layout // descriptors only; bytes live in codes, scales, zeros
	codes  js.Value
	scales js.Value
	zeros  js.Value
	bytes  int // packed constant bytes, one copy

	mu         sync.Mutex
	graphs     map[int]*matmulGraph // by batch-size class
	inPrograms int64                // constant bytes compiled whole graphs hold of this weight
}

var _ backend.Weight = (*Weight)(nil)

func (w *Weight) Name() string         { return w.name }
func (w *Weight) Shape() (n, k int)    { return w.layout.N, w.layout.K }
func (w *Weight) Format() quant.Format { return w.format }

// Path is how the weight entered the graph; Note says why.
func (w *Weight) Path() Path   { return w.layout.Path }
func (w *Weight) Note() string { return w.layout.Note }

// Bytes counts the packed constants once for the JS-side copy kept for future builds, once per
// single-matmul graph, and what each compiled whole graph embeds of it (WebNN copies constants
// into each graph; Chromium 153 has no shared constant tensors: createConstantTensor says
// "Constant tensors are not supported"). A whole graph may hold another form than the upload's:
// int8 codes widened from int4 for gather or for QDQ.
func (w *Weight) Bytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(w.bytes)*int64(1+len(w.graphs)) + w.inPrograms
}

// Upload lays t out for the graph (see Plan) and keeps the bytes as JS typed arrays. Graphs are
// built on first use for each batch-size class.
func (b *Backend) Upload(t *quant.Tensor) (backend.Weight, error) {
	l, err := Plan(t, b.limits)
	if err != nil {
		return nil, fmt.Errorf("webnn upload: %w", err)
	}
	if b.f32 && t.Bits < 32 && t.N*t.K <= eagerBuildLimit {
		l = planDequantized(t, fmt.Sprintf("%v dequantized to float32 in Go (Options.F32Weights)", t.Format))
	}
	b.note(fmt.Sprintf("%v → %s", t.Format, l.Path))
	w := &Weight{b: b, name: t.Name, format: t.Format, graphs: map[int]*matmulGraph{}}
	w.codes = jsutil.BytesToJS(l.CodeBytes)
	if l.ScaleBytes != nil {
		w.scales = jsutil.BytesToJS(l.ScaleBytes)
		w.zeros = jsutil.BytesToJS(l.ZeroBytes)
	}
	w.layout, w.bytes = *l, l.Bytes()
	w.layout.CodeBytes, w.layout.ScaleBytes, w.layout.ZeroBytes = nil, nil, nil
	// Build the m=1 graph now so a bad weight fails at upload, not at first use; except for a
	// weight whose float32 form passes eagerBuildLimit (a vocabulary-sized table): its graph
	// would dequantize all of it, which a whole-graph user (the llama decoder reads such a table
	// on the host and runs its head in the QDQ form) never needs, and building it killed
	// Chromium's renderer for a 128256×2048 table.
	if b.lazy {
		return w, nil
	}
	if t.N*t.K > eagerBuildLimit {
		b.note(fmt.Sprintf("%s: %d×%d, its single-matmul graph is built on first MatMul, not at upload", t.Name, t.N, t.K))
		return w, nil
	}
	if _, err := w.graph(1); err != nil {
		return nil, err
	}
	return w, nil
}

// eagerBuildLimit is the most weights (64 Mi: 256 MiB as float32) whose single-matmul graph
// Upload builds at once.
const eagerBuildLimit = 64 << 20

// class rounds m up to a power of two: graphs are static-shaped, and one per power keeps the
// number of compiled copies of a weight logarithmic in the batch sizes seen.
func class(m int) int {
	if m <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(m-1))
}

func (b *Backend) MatMul(dst, x []float32, bw backend.Weight, m int) error {
	if err := backend.CheckMatMul(dst, x, bw, m); err != nil {
		return err
	}
	w, ok := bw.(*Weight)
	if !ok || w.b != b {
		return fmt.Errorf("webnn matmul: weight %q was not uploaded to this backend", bw.Name())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.graphs == nil {
		return fmt.Errorf("webnn matmul: weight %q was released", w.name)
	}
	g, err := w.graphLocked(class(m))
	if err != nil {
		return err
	}
	return g.run(b, dst, x, m)
}

func (w *Weight) graph(mc int) (*matmulGraph, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.graphLocked(mc)
}

func (w *Weight) graphLocked(mc int) (*matmulGraph, error) {
	if g := w.graphs[mc]; g != nil {
		return g, nil
	}
	g, err := w.build(mc)
	if err != nil {
		return nil, err
	}
	w.graphs[mc] = g
	return g, nil
}

func (w *Weight) Release() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.graphs {
		g.destroy()
	}
	w.graphs = nil
	w.codes, w.scales, w.zeros = js.Undefined(), js.Undefined(), js.Undefined()
	return nil
}

func (b *Backend) Close() error {
	if b.own && b.ctx != nil {
		b.ctx.Destroy()
	}
	b.ctx = nil
	return nil
}

// readRows copies the constant bytes of rows [n, n+count) out of the JS-held copy, with the
// byte offsets they start at (for Layout.rowInto).
func (w *Weight) readRows(n, count int) (codes, scales, zeros []byte, cs, ss, zs span) {
	cs, ss, zs = w.layout.rowSpans(n, count)
	part := func(v js.Value, s span) []byte {
		if s.Hi == s.Lo {
			return nil
		}
		b := make([]byte, s.Hi-s.Lo)
		jsutil.CopyBytesToGo(b, v.Call("subarray", s.Lo, s.Hi))
		return b
	}
	return part(w.codes, cs), part(w.scales, ss), part(w.zeros, zs), cs, ss, zs
}

// Rows dequantizes the rows ids of the weight ([len(ids)][K] row-major, the same values a
// gather in the graph computes) from the JS-held constants, copying only those rows' bytes out.
// The llama decoder looks its token embeddings up this way, so the table is not a constant of
// every graph (WebNN copies constants into each graph that reads them).
func (w *Weight) Rows(ids []int32) ([]float32, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.graphs == nil {
		return nil, fmt.Errorf("webnn rows: weight %q was released", w.name)
	}
	K := w.layout.K
	out := make([]float32, len(ids)*K)
	for i, id := range ids {
		if id < 0 || int(id) >= w.layout.N {
			return nil, fmt.Errorf("webnn rows: row %d of weight %q outside [0, %d)", id, w.name, w.layout.N)
		}
		c, s, z, cs, ss, zs := w.readRows(int(id), 1)
		w.layout.rowInto(out[i*K:(i+1)*K], int(id), c, cs.Lo, s, ss.Lo, z, zs.Lo)
	}
	return out, nil
}
