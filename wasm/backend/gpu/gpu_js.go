//go:build js && wasm

package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"syscall/js"
	"time"
	"unsafe"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// F16Mode says whether kernels take their products in f16.
type F16Mode uint8

const (
	F16Auto F16Mode = iota // when the adapter has shader-f16
	F16Off                 // never: f32 products everywhere
	F16On                  // always: New fails without shader-f16
)

// Options configure New. The zero value is what production wants.
type Options struct {
	Label string // prefix of every GPU object's label; "nibble" if empty
	F16   F16Mode
	// NoSubgroups keeps the workgroup-memory reduction even where subgroups exist.
	NoSubgroups bool
	// MaxBindingSize caps the bytes one storage binding holds, below the device limit. Tests
	// set a few KiB so that the row-splitting path runs on small tensors.
	MaxBindingSize int64
	// Timing records GPU time of each MatMul with timestamp queries (when the device has them);
	// read it with LastGPUTime.
	Timing bool
	// Tuning overrides the launch shape New picks for the adapter (DefaultTuning on hardware,
	// SoftwareTuning on SwiftShader, lavapipe and other fallback adapters).
	Tuning *Tuning
	// Timeout bounds every await (default webgpu.DefaultTimeout).
	Timeout time.Duration
	// Int8Activations runs GEMV (m ≤ GEMVMaxM) with the activations rounded to int8 per block
	// of 16 or 32 (quant.QuantizeActivations) and packed integer dot products
	// (shaders/gemv_a8.wgsl), where the weights are codes whose groups are whole blocks
	// (quant.Int8ActivationsFit) and WGSL has packed_4x8_integer_dot_product. It adds the
	// activations' rounding to the error: |Δy| ≤ Σ|w|·d·(½ + 2⁻¹³), d = a block's max|x|/127.
	// Other formats, and GEMM, keep f32 activations; Caps.Notes says what applied.
	Int8Activations bool

	// poison fills the output buffer with NaN before each MatMul, so a kernel that skips an
	// output cannot pass on a previous call's values. The package's tests set it.
	poison bool
}

// Backend runs matmuls on one WebGPU device. MatMul calls are serialized: they share the
// activation, output and readback buffers.
type Backend struct {
	dev     *webgpu.Device
	info    webgpu.AdapterInfo
	caps    plan.Caps
	opt     Options
	label   string
	feat    features
	tune    Tuning
	maxBind int64
	maxRows int
	timing  bool

	mu        sync.Mutex
	pipelines map[shaders.Key]*webgpu.ComputePipeline
	ops       map[shaders.OpKey]*webgpu.ComputePipeline // graph programs' op kernels (graph_js.go)
	x, y, rd  *webgpu.Buffer
	xq        *webgpu.Buffer // x quantized by the int8-activation pre-pass (a8_js.go)
	part      *webgpu.Buffer // partial products of a GEMM split along K (Tile.S), grown on demand
	gen       int            // bumped when x or y is reallocated: bind groups made for older buffers are stale
	stage     js.Value
	xpad      []float32
	query     *webgpu.QuerySet
	qbuf, qrd *webgpu.Buffer
	gpuTime   time.Duration
	// passStamps, set by a benchmark, times the passes Queue records (run_js.go).
	passStamps *passStamps
	closed     bool
}

var _ backend.Backend = (*Backend)(nil)

// New requests an adapter and a device with the limits and features the kernels use.
func New(opt Options) (*Backend, error) {
	label := opt.Label
	if label == "" {
		label = "nibble"
	}
	ad, err := webgpu.RequestAdapter(webgpu.AdapterOptions{PowerPreference: "high-performance"})
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	info, af, al := ad.Info(), ad.Features(), ad.Limits()
	b := &Backend{info: info, opt: opt, label: label, tune: tuningFor(info), pipelines: map[shaders.Key]*webgpu.ComputePipeline{}}
	if opt.Tuning != nil {
		b.tune = *opt.Tuning
	}
	var feats []string
	switch {
	case opt.F16 == F16On && !af[webgpu.FeatureShaderF16]:
		return nil, fmt.Errorf("gpu: F16On but adapter (%v) has no shader-f16", info)
	case opt.F16 != F16Off && af[webgpu.FeatureShaderF16]:
		feats = append(feats, webgpu.FeatureShaderF16)
		b.feat.f16 = true
	}
	// The GEMV reduction needs the subgroup_id builtin too; without it, subgroups are no use.
	wgsl := webgpu.WGSLLanguageFeatures()
	b.feat.dot4 = wgsl["packed_4x8_integer_dot_product"]
	if !opt.NoSubgroups && af[webgpu.FeatureSubgroups] && wgsl["subgroup_id"] {
		feats = append(feats, webgpu.FeatureSubgroups)
		b.feat.subgroups = true
	}
	if af[webgpu.FeatureTimestampQuery] {
		feats = append(feats, webgpu.FeatureTimestampQuery)
		b.timing = opt.Timing
	}
	// Ask for everything the adapter offers: the defaults (128 MiB bindings, 16 KiB of workgroup
	// memory) are far below what most adapters give; bigger bindings mean fewer splits, more
	// workgroup memory larger GEMM tiles, more storage buffers a stage more weights in one GEMV
	// (matmul_bind_js.go's linearGroup: q, k and v with their scales and the norm's gain are 9).
	dev, err := ad.RequestDevice(webgpu.DeviceDescriptor{
		Label:            label + " device",
		RequiredFeatures: feats,
		RequiredLimits: map[string]int64{
			"maxBufferSize":                     al.MaxBufferSize,
			"maxStorageBufferBindingSize":       al.MaxStorageBufferBindingSize,
			"maxComputeWorkgroupStorageSize":    int64(al.MaxComputeWorkgroupStorageSize),
			"maxComputeInvocationsPerWorkgroup": int64(al.MaxComputeInvocationsPerWorkgroup),
			"maxComputeWorkgroupSizeX":          int64(al.MaxComputeWorkgroupSizeX),
			"maxStorageBuffersPerShaderStage":   int64(al.MaxStorageBuffersPerShaderStage),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	if opt.Timeout > 0 {
		dev.Timeout = opt.Timeout
	}
	b.dev = dev
	dl := dev.Limits()
	tileNote := ""
	b.tune, tileNote = b.tune.fit(dl)
	b.maxBind = min(dl.MaxStorageBufferBindingSize, dl.MaxBufferSize)
	if opt.MaxBindingSize > 0 {
		b.maxBind = min(b.maxBind, opt.MaxBindingSize)
	}
	b.maxRows = max(1, dl.MaxComputeWorkgroupsPerDimension) * b.tune.rowsPerWorkgroup()
	b.caps = plan.Caps{
		Backend: "webgpu", Adapter: info.String(), Software: softwareAdapter(info),
		F16: b.feat.f16, Subgroups: b.feat.subgroups, TimestampQuery: af[webgpu.FeatureTimestampQuery],
		MaxStorageBindingSize: dl.MaxStorageBufferBindingSize, MaxBufferSize: dl.MaxBufferSize,
		MaxWorkgroupInvocations: dl.MaxComputeInvocationsPerWorkgroup,
		WeightBits:              []int{2, 4, 8, 16, 32},
	}
	if b.feat.f16 {
		b.caps.Notes = append(b.caps.Notes, "products in f16 (shader-f16), sums in f32")
	}
	switch {
	case opt.Int8Activations && b.feat.dot4:
		b.tune.GEMVInt8 = true
		b.caps.Notes = append(b.caps.Notes, "GEMV with int8 activations (blocks of 16 for int8 weights, 32 for int4 and int2; groups that are whole blocks)")
	case opt.Int8Activations:
		b.caps.Notes = append(b.caps.Notes, "int8 activations asked for, but WGSL here has no packed_4x8_integer_dot_product: f32 activations")
	}
	if tileNote != "" {
		b.caps.Notes = append(b.caps.Notes, tileNote)
	}
	if opt.MaxBindingSize > 0 {
		b.caps.Notes = append(b.caps.Notes, fmt.Sprintf("bindings capped at %d bytes by option", b.maxBind))
	}
	return b, nil
}

func (b *Backend) Name() string           { return "webgpu" }
func (b *Backend) Caps() plan.Caps        { return b.caps }
func (b *Backend) Device() *webgpu.Device { return b.dev }

// AdapterInfo returns what the adapter says about itself (IsFallbackAdapter: software).
func (b *Backend) AdapterInfo() webgpu.AdapterInfo { return b.info }

// ComputeF16 reports whether kernels take products in f16 (tolerance 2⁻¹¹ per product).
func (b *Backend) ComputeF16() bool { return b.feat.f16 }

// LastGPUTime is the GPU time of the last MatMul's compute pass, from timestamp queries; 0
// without Options.Timing or the timestamp-query feature.
func (b *Backend) LastGPUTime() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gpuTime
}

// weight is a tensor resident in GPU buffers, split into row chunks.
type weight struct {
	b      *Backend
	name   string
	l      layout
	chunks []*wchunk
	bytes  int64
	// MatMul's dispatches per variant, bound to the backend's x, y and the chunks' params
	// buffers (layout "auto" makes bind groups pipeline-specific); stale once gen != b.gen.
	bound map[shaders.Key]*boundMatMul
	gen   int
	// The int8-activation pre-pass's bind groups (a8_js.go), stale once xqGen != b.gen.
	xqGroups map[shaders.Key]*webgpu.BindGroup
	xqGen    int
}

type wchunk struct {
	chunk
	data, scales, zeros, params *webgpu.Buffer
	pm                          int // the m its params buffer was last written for
}

func (w *weight) Name() string         { return w.name }
func (w *weight) Shape() (n, k int)    { return w.l.n, w.l.k }
func (w *weight) Format() quant.Format { return w.l.format }
func (w *weight) Bytes() int64         { return w.bytes }

// Release frees the weight's GPU memory now.
func (w *weight) Release() error {
	for _, c := range w.chunks {
		for _, buf := range []*webgpu.Buffer{c.data, c.scales, c.zeros, c.params} {
			buf.Destroy()
		}
	}
	w.chunks = nil
	return nil
}

// Upload copies t into storage buffers, rows padded to RowAlign, split into chunks that fit
// one binding each.
func (b *Backend) Upload(t *quant.Tensor) (backend.Weight, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("gpu upload: %w", err)
	}
	if err := b.dev.Err(); err != nil {
		return nil, fmt.Errorf("gpu upload %q: %w", t.Name, err)
	}
	l := newLayout(t)
	cs, err := planChunks(l, b.maxBind, b.maxRows)
	if err != nil {
		return nil, fmt.Errorf("gpu upload %q: %w", t.Name, err)
	}
	w := &weight{b: b, name: t.Name, l: l}
	fail := func(err error) (backend.Weight, error) {
		w.Release()
		return nil, fmt.Errorf("gpu upload %q: %w", t.Name, err)
	}
	q := b.dev.Queue()
	put := func(label string, usage webgpu.BufferUsage, data []byte) (*webgpu.Buffer, error) {
		data = pad4(data)
		buf, err := b.dev.CreateBuffer(label, int64(len(data)), usage|webgpu.BufferCopyDst)
		if err != nil {
			return nil, err
		}
		w.bytes += buf.Size()
		arr := jsutil.BytesToJS(data)
		return buf, q.WriteBuffer(buf, 0, arr, 0, int64(len(data)))
	}
	for _, c := range cs {
		wc := &wchunk{chunk: c}
		w.chunks = append(w.chunks, wc)
		name := fmt.Sprintf("%s %s rows %d-%d", b.label, t.Name, c.r0, c.r1)
		if len(cs) == 1 {
			name = fmt.Sprintf("%s %s", b.label, t.Name)
		}
		if wc.data, err = put(name+" codes", webgpu.BufferStorage, padRows(t.Data, c.r0, c.r1, l.rowStride, l.rowBytes)); err != nil {
			return fail(err)
		}
		if l.scaleBytes > 0 {
			if wc.scales, err = put(name+" scales", webgpu.BufferStorage, t.Scales[c.r0*l.scaleBytes:c.r1*l.scaleBytes]); err != nil {
				return fail(err)
			}
		}
		if l.zeroBytes > 0 {
			if wc.zeros, err = put(name+" zero points", webgpu.BufferStorage, t.Zeros[c.r0*l.zeroBytes:c.r1*l.zeroBytes]); err != nil {
				return fail(err)
			}
		}
		if wc.params, err = b.dev.CreateBuffer(name+" params", paramBytes, webgpu.BufferUniform|webgpu.BufferCopyDst); err != nil {
			return fail(err)
		}
	}
	// An out-of-memory or validation failure above is reported asynchronously; surface it here
	// rather than on the first MatMul.
	if err := b.dev.Err(); err != nil {
		return fail(err)
	}
	return w, nil
}

// pipeline returns the cached pipeline of key, building it on first use.
func (b *Backend) pipeline(k shaders.Key) (*webgpu.ComputePipeline, error) {
	if p := b.pipelines[k]; p != nil {
		return p, nil
	}
	src, err := k.Source()
	if err != nil {
		return nil, err
	}
	src.Variant = b.label + " " + src.Variant
	p, err := b.dev.CreateComputePipeline(src, "main", nil)
	if err != nil {
		return nil, err
	}
	b.pipelines[k] = p
	return p, nil
}

// ensure returns buf if it holds size bytes, else a new buffer (the old one destroyed).
func (b *Backend) ensure(buf *webgpu.Buffer, label string, size int64, usage webgpu.BufferUsage) (*webgpu.Buffer, error) {
	if buf != nil && buf.Size() >= size {
		return buf, nil
	}
	buf.Destroy()
	// Grow geometrically so a sequence of slightly larger calls does not reallocate each time.
	if buf != nil {
		size = max(size, buf.Size()*3/2)
	}
	b.gen++
	return b.dev.CreateBuffer(b.label+" "+label, size, usage)
}

// stageBytes copies p into the reused staging Uint8Array (grown as needed) and returns it.
func (b *Backend) stageBytes(p []byte) js.Value {
	if !b.stage.Truthy() || b.stage.Length() < len(p) {
		b.stage = js.Global().Get("Uint8Array").New(max(len(p), 1<<16))
	}
	js.CopyBytesToJS(b.stage, p)
	return b.stage
}

func f32bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// MatMul computes dst[m×N] = x[m×K] · dequant(w)ᵀ on the GPU.
func (b *Backend) MatMul(dst, x []float32, wt backend.Weight, m int) error {
	if err := backend.CheckMatMul(dst, x, wt, m); err != nil {
		return err
	}
	w, ok := wt.(*weight)
	if !ok || w.b != b {
		return fmt.Errorf("gpu matmul: weight %q was not uploaded to this backend", wt.Name())
	}
	if w.chunks == nil {
		return fmt.Errorf("gpu matmul: weight %q was released", w.name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("gpu matmul: backend closed")
	}
	if err := b.dev.Err(); err != nil {
		return fmt.Errorf("gpu matmul %q: %w", w.name, err)
	}
	if err := b.matmul(dst, x, w, m); err != nil {
		return fmt.Errorf("gpu matmul %q (%d×%d×%d %v): %w", w.name, m, w.l.n, w.l.k, w.l.format, err)
	}
	return nil
}

func (b *Backend) matmul(dst, x []float32, w *weight, m int) error {
	l := w.l
	key := b.matmulKey(w, m)
	var err error
	xBytes, yBytes := int64(m*l.kp*4), int64(m*l.n*4)
	if b.x, err = b.ensure(b.x, "activations", xBytes, webgpu.BufferStorage|webgpu.BufferCopyDst); err != nil {
		return err
	}
	if b.y, err = b.ensure(b.y, "outputs", yBytes, webgpu.BufferStorage|webgpu.BufferCopySrc|webgpu.BufferCopyDst); err != nil {
		return err
	}
	if b.rd, err = b.ensure(b.rd, "readback", yBytes, webgpu.BufferMapRead|webgpu.BufferCopyDst); err != nil {
		return err
	}
	if err := b.ensureXQ(w, key, m); err != nil {
		return err
	}
	partSize := partBytes(key, m, l.n)
	if partSize > 0 {
		if b.part, err = b.ensure(b.part, "partial products", partSize, webgpu.BufferStorage|webgpu.BufferCopyDst); err != nil {
			return err
		}
	}
	q := b.dev.Queue()
	if cap(b.xpad) < m*l.kp {
		b.xpad = make([]float32, m*l.kp)
	}
	xp := b.xpad[:m*l.kp]
	padX(xp, x, m, l.k, l.kp)
	if err := q.WriteBuffer(b.x, 0, b.stageBytes(f32bytes(xp)), 0, xBytes); err != nil {
		return err
	}
	if b.opt.poison {
		// The partial products too: a slice left unwritten must not pass on an older call's.
		if err := b.poisonBuffer(b.y, yBytes); err != nil {
			return err
		}
		if err := b.poisonBuffer(b.part, partSize); err != nil {
			return err
		}
	}
	if err := b.writeParams(w, m); err != nil {
		return err
	}
	if err := b.dev.PushErrorScope("validation"); err != nil {
		return err
	}
	submitErr := b.encode(key, w, m, yBytes)
	if err := b.dev.PopErrorScope("dispatch " + key.Name()); err != nil {
		return err
	}
	if submitErr != nil {
		return submitErr
	}
	if err := b.rd.MapAsync(webgpu.MapRead, 0, yBytes); err != nil {
		// A map that timed out may still be pending: every later copy into this buffer would
		// fail validation ("still mapped"). Drop it; the next call makes a new one.
		b.rd.Destroy()
		b.rd = nil
		return err
	}
	ab, err := b.rd.MappedRange(0, yBytes)
	if err != nil {
		b.rd.Unmap()
		return err
	}
	jsutil.CopyFloat32sToGo(dst, ab)
	b.rd.Unmap()
	if b.timing {
		return b.readTiming()
	}
	return nil
}

// poisonBuffer fills the first size bytes of buf with NaN (Options.poison).
func (b *Backend) poisonBuffer(buf *webgpu.Buffer, size int64) error {
	if size == 0 {
		return nil
	}
	nan := make([]float32, size/4)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	return b.dev.Queue().WriteBuffer(buf, 0, b.stageBytes(f32bytes(nan)), 0, size)
}

// writeParams writes the uniform block of each chunk of w for m activation rows.
func (b *Backend) writeParams(w *weight, m int) error {
	var pbytes [paramBytes]byte
	for _, c := range w.chunks {
		for i, v := range params(w.l, c.chunk, m) {
			binary.LittleEndian.PutUint32(pbytes[4*i:], v)
		}
		if err := b.dev.Queue().WriteBuffer(c.params, 0, jsutil.BytesToJS(pbytes[:]), 0, paramBytes); err != nil {
			return err
		}
		c.pm = m
	}
	return nil
}

// encode records the matmul's compute pass and the copy of y to the readback buffer, and
// submits them.
func (b *Backend) encode(key shaders.Key, w *weight, m int, yBytes int64) error {
	bm, err := b.boundFor(w, key, m)
	if err != nil {
		return err
	}
	pre, err := b.prepassFor(w, key, m)
	if err != nil {
		return err
	}
	cb, err := b.passCommands("matmul "+w.name, key.Name(), func(pass *webgpu.ComputePass) error {
		pre.record(pass)
		bm.record(pass)
		return nil
	}, func(enc *webgpu.CommandEncoder) error {
		return enc.CopyBufferToBuffer(b.y, 0, b.rd, 0, yBytes)
	})
	if err != nil {
		return err
	}
	return b.dev.Queue().Submit(cb)
}

// boundFor is w's matmul of variant key bound to the backend's x and y and the chunks' params
// buffers (and, split along K, the backend's scratch for partial products), for m activation
// rows: the bind groups are made once per variant (again when a buffer was reallocated), the
// grid is m's. The caller holds b.mu and has sized the buffers for m.
func (b *Backend) boundFor(w *weight, key shaders.Key, m int) (boundMatMul, error) {
	if w.gen != b.gen || w.bound == nil {
		w.bound = map[shaders.Key]*boundMatMul{}
		w.gen = b.gen
	}
	bm := w.bound[key]
	if bm == nil {
		pars := make([]webgpu.BufferBinding, len(w.chunks))
		for i, c := range w.chunks {
			pars[i] = webgpu.BufferBinding{Buffer: c.params}
		}
		x := b.x
		if key.XQ {
			x = b.xq // the pre-pass's blocks
		}
		var err error
		if bm, err = b.bindMatMul(b.label, w, key, m, webgpu.BufferBinding{Buffer: x}, webgpu.BufferBinding{Buffer: b.y}, b.part, pars); err != nil {
			return boundMatMul{}, err
		}
		w.bound[key] = bm
	}
	out := *bm
	out.m = m
	return out, nil
}

// passCommands is the one way the backend records a pass of its own: a command encoder, one
// compute pass (with timestamp writes when timing) that record fills, then what after adds (may
// be nil), then the timestamps resolved into their readback buffer. The caller submits.
func (b *Backend) passCommands(what, label string, record func(*webgpu.ComputePass) error, after func(*webgpu.CommandEncoder) error) (*webgpu.CommandBuffer, error) {
	enc, err := b.dev.CreateCommandEncoder(b.label + " " + what)
	if err != nil {
		return nil, err
	}
	var ts *webgpu.TimestampWrites
	if b.timing {
		if err := b.ensureQuery(); err != nil {
			return nil, err
		}
		ts = &webgpu.TimestampWrites{QuerySet: b.query, Beginning: 0, End: 1}
	}
	pass, err := enc.BeginComputePass(label, ts)
	if err != nil {
		return nil, err
	}
	if err := record(pass); err != nil {
		pass.End()
		return nil, err
	}
	if err := pass.End(); err != nil {
		return nil, err
	}
	if after != nil {
		if err := after(enc); err != nil {
			return nil, err
		}
	}
	if b.timing {
		if err := enc.ResolveQuerySet(b.query, 0, 2, b.qbuf, 0); err != nil {
			return nil, err
		}
		if err := enc.CopyBufferToBuffer(b.qbuf, 0, b.qrd, 0, timestampBytes); err != nil {
			return nil, err
		}
	}
	return enc.Finish()
}

// timestampBytes is what the two timestamps of a pass take: two u64.
const timestampBytes = 16

// ensureQuery creates the timestamp query set and its buffers on first use.
func (b *Backend) ensureQuery() error {
	if b.query != nil {
		return nil
	}
	var err error
	if b.query, err = b.dev.CreateQuerySet(b.label+" timestamps", 2); err != nil {
		return err
	}
	if b.qbuf, err = b.dev.CreateBuffer(b.label+" timestamps resolve", timestampBytes, webgpu.BufferQueryResolve|webgpu.BufferCopySrc); err != nil {
		return err
	}
	b.qrd, err = b.dev.CreateBuffer(b.label+" timestamps readback", timestampBytes, webgpu.BufferMapRead|webgpu.BufferCopyDst)
	return err
}

func (b *Backend) readTiming() error {
	var raw [timestampBytes]byte
	if err := mapCopy(b.qrd, timestampBytes, raw[:]); err != nil {
		return err
	}
	t0, t1 := binary.LittleEndian.Uint64(raw[:]), binary.LittleEndian.Uint64(raw[8:])
	b.gpuTime = 0
	if t1 > t0 {
		b.gpuTime = time.Duration(t1 - t0)
	}
	return nil
}

// mapCopy maps buf's first size bytes for reading (size a multiple of 4, after the copies into
// buf were submitted), copies them into dst (at most len(dst) bytes) and unmaps buf.
func mapCopy(buf *webgpu.Buffer, size int64, dst []byte) error {
	if err := buf.MapAsync(webgpu.MapRead, 0, size); err != nil {
		return err
	}
	ab, err := buf.MappedRange(0, size)
	if err == nil {
		jsutil.CopyBytesToGo(dst, ab)
	}
	buf.Unmap()
	return err
}

// Close destroys the device; every later call fails with webgpu.ErrDeviceLost.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.dev.Destroy()
	}
	return nil
}

// timeKernels measures the kernels alone, for the benchmarks: x is written once, then reps
// calls' dispatches are recorded in one compute pass and submitted together, so per-call
// overheads (the write of x, the readback, promise round trips) and timestamp quantization
// (Dawn rounds timestamps to tens of microseconds) are divided by reps. Call i reads
// ws[i%len(ws)], weights of one shape and format: weights that together exceed the GPU's
// last-level cache make each call read its weights from memory, as a model's layers do, rather
// than from the cache the previous call filled. It returns the GPU time per call from timestamp
// queries (0 without them) and the wall-clock time per call until the queue drained.
func (b *Backend) timeKernels(ws []backend.Weight, m, reps int) (gpu, wall time.Duration, err error) {
	if len(ws) == 0 || m <= 0 || reps <= 0 {
		return 0, 0, errors.New("gpu: timeKernels needs weights, m > 0 and reps > 0")
	}
	var w0 *weight
	for _, wt := range ws {
		w, ok := wt.(*weight)
		if !ok || w.b != b || w.chunks == nil {
			return 0, 0, errors.New("gpu: timeKernels needs live weights of this backend")
		}
		if w0 != nil && (w.l != w0.l || len(w.chunks) != len(w0.chunks)) {
			return 0, 0, fmt.Errorf("gpu: timeKernels: %q and %q differ in shape or format", w0.name, w.name)
		}
		w0 = w
	}
	// One MatMul first: it builds the pipeline, sizes the buffers for m and writes x. The other
	// weights need only their params for m (a MatMul each would leave the GPU idle between
	// timings, and let its clocks drop).
	n, k := w0.Shape()
	if err := b.MatMul(make([]float32, m*n), make([]float32, m*k), w0, m); err != nil {
		return 0, 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	key := b.matmulKey(w0, m)
	bms := make([]boundMatMul, len(ws))
	pres := make([]*a8Prepass, len(ws))
	for i, wt := range ws {
		w := wt.(*weight)
		if w.chunks[0].pm != m {
			if err := b.writeParams(w, m); err != nil {
				return 0, 0, err
			}
		}
		if bms[i], err = b.boundFor(w, key, m); err != nil {
			return 0, 0, err
		}
		if pres[i], err = b.prepassFor(w, key, m); err != nil {
			return 0, 0, err
		}
	}
	gpu, wall, err = b.timePass(fmt.Sprintf("%s x%d", key.Name(), reps), func(pass *webgpu.ComputePass) error {
		for r := range reps {
			pres[r%len(pres)].record(pass) // the int8-activation pre-pass, if any, is timed too
			bms[r%len(bms)].record(pass)
		}
		return nil
	})
	return gpu / time.Duration(reps), wall / time.Duration(reps), err
}

// timePass records one compute pass, submits it alone and waits for the queue: the GPU time of
// the pass from timestamp queries (0 without them) and the wall-clock time until the queue
// drained. The caller holds b.mu.
func (b *Backend) timePass(label string, record func(*webgpu.ComputePass) error) (gpu, wall time.Duration, err error) {
	// A dispatch that fails validation is skipped, and a pass of skipped dispatches is fast:
	// fail instead.
	if err := b.dev.PushErrorScope("validation"); err != nil {
		return 0, 0, err
	}
	gpu, wall, err = b.timePassIn(label, record)
	if perr := b.dev.PopErrorScope("timing " + label); err == nil {
		err = perr
	}
	return gpu, wall, err
}

func (b *Backend) timePassIn(label string, record func(*webgpu.ComputePass) error) (gpu, wall time.Duration, err error) {
	cb, err := b.passCommands("timing "+label, label, record, nil)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	if err := b.dev.Queue().Submit(cb); err != nil {
		return 0, 0, err
	}
	if err := b.dev.Queue().OnSubmittedWorkDone(); err != nil {
		return 0, 0, err
	}
	wall = time.Since(start)
	if b.timing {
		if err := b.readTiming(); err != nil {
			return 0, 0, err
		}
		gpu = b.gpuTime
	}
	return gpu, wall, b.dev.Err()
}
