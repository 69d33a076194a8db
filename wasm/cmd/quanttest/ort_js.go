//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"slices"
	"syscall/js"
	"time"
	"unsafe"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// ortPath is one way ONNX Runtime Web runs a model: a bundle of onnxruntime-web's dist/ and an
// execution provider.
type ortPath struct {
	name, module, ep, what string
}

// ortPaths beside a nibble platform: both WebGPU paths on the same adapter beside webgpu (the
// native WebGPU EP of onnxruntime-web/webgpu, C++ kernels in the asyncify wasm; and JSEP, the
// default bundle's TypeScript WebGPU kernels), the wasm CPU EP beside the others.
func ortPaths(platform string) []ortPath {
	if platform == "webgpu" {
		return []ortPath{
			{"webgpu", "ort.webgpu.min.mjs", "webgpu", "native WebGPU EP (onnxruntime-web/webgpu, asyncify wasm)"},
			{"jsep-webgpu", "ort.min.mjs", "webgpu", "JSEP WebGPU EP (onnxruntime-web default bundle)"},
		}
	}
	return []ortPath{{"wasm", "ort.wasm.min.mjs", "wasm", "wasm CPU EP (MLAS)"}}
}

// ortModules are the bundles imported so far, by file: one import per bundle per page.
var ortModules = map[string]js.Value{}

// ortStarted holds, per path, how long ORT's start took: ORT instantiates a bundle's wasm and
// sets its EP up (the WebGPU device) on the first session, which would otherwise count in the
// load of whichever model came first.
var ortStarted = map[string]float64{}

func ortStart(ctx context.Context, ort js.Value, p ortPath) (float64, error) {
	if ms, ok := ortStarted[p.name]; ok {
		return ms, nil
	}
	tiny := onnx.Model{IRVersion: onnx.IRVersion, Producer: "nibble quanttest", GraphName: "start", Opsets: map[string]int64{"": onnx.Opset},
		Nodes:   []onnx.Node{{Op: "Relu", Name: "relu", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Dims: []onnx.Dim{{Value: 1}}}},
		Outputs: []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float, Dims: []onnx.Dim{{Value: 1}}}}}
	t0 := time.Now()
	opts := js.ValueOf(map[string]any{"executionProviders": []any{p.ep}})
	session, err := jsutil.AwaitContext(ctx, ort.Get("InferenceSession").Call("create", jsutil.BytesToJS(tiny.Encode()), opts))
	if err != nil {
		return 0, fmt.Errorf("starting ORT (%s, a one-node session): %w", p.name, err)
	}
	ms := msSince(t0)
	jsutil.AwaitContext(ctx, session.Call("release"))
	ortStarted[p.name] = ms
	return ms, nil
}

var importModule = js.Global().Get("Function").New("u", "return import(u)")

func ortModule(ctx context.Context, job *quanteval.Job, file string) (js.Value, error) {
	if m, ok := ortModules[file]; ok {
		return m, nil
	}
	m, err := jsutil.AwaitContext(ctx, importModule.Invoke(job.ORTVendor+file))
	if err != nil {
		return js.Undefined(), fmt.Errorf("importing %s: %w", file, err)
	}
	env := m.Get("env")
	env.Get("wasm").Set("wasmPaths", job.ORTVendor)
	// The runner's page is not cross-origin isolated: no SharedArrayBuffer, one thread.
	env.Get("wasm").Set("numThreads", 1)
	env.Set("logLevel", "error")
	ortModules[file] = m
	return m, nil
}

// ort runs every ORT model of the job on each path beside platform, once per path (the wasm
// path serves webnn and cpu alike), and emits a row per path × format compared with nibble's
// f32 on this platform and with nibble's row of the same format (the same weights).
func (s *peerSet) ort(ctx context.Context, job *quanteval.Job, dev *engine.Devices, platform string, ref *reference, nibble map[string][][]float32) {
	if len(job.ORT) == 0 {
		emit("result", quanteval.Result{Model: job.ModelName, Runtime: "onnxruntime-web", Platform: platform, NotRun: ortWhy})
		return
	}
	if s.runs == nil {
		s.runs = map[string]*peerRun{}
	}
	for _, p := range ortPaths(platform) {
		for _, om := range job.ORT {
			key := "ort " + p.name + " " + om.Format
			pr := s.runs[key]
			if pr == nil {
				pr = &peerRun{}
				pr.res, pr.out = runORT(ctx, job, dev, p, om)
				s.runs[key] = pr
			}
			r := pr.res
			r.Platform = platform
			r.Notes = slices.Clone(r.Notes)
			if r.Error == "" {
				if ref != nil {
					r.F32Bytes = ref.f32Bytes
					if r.F32Bytes > 0 {
						r.ReductionPct = 100 * (1 - float64(r.WeightBytes)/float64(r.F32Bytes))
					}
				}
				compare(&r, ref, pr.out)
				if same := nibble[om.Format]; same != nil && om.Format != "f32" {
					if a, err := quanteval.Compare(same, pr.out); err == nil {
						r.SameWeights = "nibble " + om.Format + " on " + platform
						r.SameWeightsCosineMean, r.SameWeightsCosineMin = a.CosineMean, a.CosineMin
					}
				}
			}
			emit("result", r)
		}
	}
}

func runORT(ctx context.Context, job *quanteval.Job, dev *engine.Devices, p ortPath, om quanteval.ORTModel) (quanteval.Result, [][]float32) {
	r := quanteval.Result{Model: job.ModelName, Runtime: "onnxruntime-web", PeerBackend: p.name, Format: om.Format, WeightBytes: om.WeightBytes}
	setORTFormat(&r, om.Format)
	fail := func(err error) (quanteval.Result, [][]float32) {
		r.Error = oneLine(err.Error())
		return r, nil
	}
	progress("onnxruntime-web %s %s: loading", p.name, om.Format)
	ort, err := ortModule(ctx, job, p.module)
	if err != nil {
		return fail(err)
	}
	if v := ort.Get("env").Get("versions").Get("web"); v.Type() == js.TypeString {
		r.Runtime += " " + v.String()
	}
	base := job.Model[:len(job.Model)-len("model.json")]
	tok, err := tokenizer(ctx, base+"vocab.json")
	if err != nil {
		return fail(err)
	}
	enc := &uselite.Encoder{Config: &uselite.Config{MaxLength: job.MaxLength}, Tokenizer: tok}

	start, err := ortStart(ctx, ort, p)
	if err != nil {
		return fail(err)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("ORT's start on this path (wasm instantiation, EP setup: a one-node session, once per page) took %.0f ms, not counted in load", start))

	t0 := time.Now()
	session, err := ortSession(ctx, ort, p, om, &r, &t0)
	if err != nil {
		return fail(err)
	}
	defer func() { jsutil.AwaitContext(ctx, session.Call("release")) }()
	r.LoadMS = msSince(t0)
	output := session.Get("outputNames").Index(0).String()
	run := func(b uselite.Batch) ([]float32, error) {
		feeds := map[string]any{
			uselite.InputIDs:  jsTensor(ort, "int32", int32Bytes(b.IDs), b.B, b.T),
			uselite.InputMask: jsTensor(ort, "float32", float32Bytes(b.Mask), b.B, b.T),
		}
		res, err := jsutil.AwaitContext(ctx, session.Call("run", js.ValueOf(feeds)))
		if err != nil {
			return nil, err
		}
		data := res.Get(output).Get("data")
		out := make([]float32, data.Get("length").Int())
		jsutil.CopyFloat32sToGo(out, data)
		return out, nil
	}
	one := enc.Tokenize(job.Texts[:1])
	if _, err := run(one); err != nil {
		return fail(err)
	}
	r.FirstOutputMS = msSince(t0)
	ms, err := timeRuns(job.Runs, func() error { _, err := run(one); return err })
	if err != nil {
		return fail(err)
	}
	r.Runs, r.LatencyMedianMS, r.LatencyP90MS = len(ms), quanteval.Percentile(ms, 50), quanteval.Percentile(ms, 90)
	// The accuracy set in the passes the engine makes (one length bucket each, padded alike),
	// once for the embeddings and once timed.
	embed := func() ([][]float32, error) {
		out := make([][]float32, len(job.Texts))
		for _, idx := range passes(enc, job.Texts) {
			texts := make([]string, len(idx))
			for j, i := range idx {
				texts[j] = job.Texts[i]
			}
			y, err := run(enc.Tokenize(texts))
			if err != nil {
				return nil, err
			}
			width := len(y) / bucketB(len(texts))
			for j, i := range idx {
				out[i] = y[j*width : (j+1)*width]
			}
		}
		return out, nil
	}
	out, err := embed()
	if err != nil {
		return fail(err)
	}
	t1 := time.Now()
	if _, err := embed(); err != nil {
		return fail(err)
	}
	r.BatchMS, r.BatchTexts = msSince(t1), len(job.Texts)
	describeORT(&r, p, dev, om)
	return r, out
}

// setORTFormat fills the row's bits, group size and scheme from the format's name.
func setORTFormat(r *quanteval.Result, format string) {
	q, err := engine.ParseFormat(format)
	if err != nil {
		return
	}
	r.Bits, r.GroupSize = q.Bits, q.GroupSize
	if q.Bits < 16 {
		r.Scheme = "sym"
		if q.Scheme == quant.Asymmetric {
			r.Scheme = "asym"
		}
	}
}

// ortSession fetches the model and creates its InferenceSession on p's EP. It asks first with
// ORT's CPU fallback off, so that a session proves every node runs on the EP asked for; if ORT
// refuses, again with fallback (t0 restarts), and the row says so.
func ortSession(ctx context.Context, ort js.Value, p ortPath, om quanteval.ORTModel, r *quanteval.Result, t0 *time.Time) (js.Value, error) {
	model, err := get(ctx, om.URL)
	if err != nil {
		return js.Undefined(), err
	}
	opts := js.ValueOf(map[string]any{"executionProviders": []any{p.ep}, "graphOptimizationLevel": "all"})
	if p.ep != "wasm" {
		opts.Set("extra", map[string]any{"session": map[string]any{"disable_cpu_ep_fallback": "1"}})
	}
	session, err := jsutil.AwaitContext(ctx, ort.Get("InferenceSession").Call("create", jsutil.BytesToJS(model), opts))
	if err != nil && p.ep != "wasm" {
		r.Notes = append(r.Notes, "with CPU fallback off ORT refused the session ("+oneLine(err.Error())+"): some nodes run on ORT's CPU EP")
		r.Features = append(r.Features, om.Format+": some nodes on ORT's CPU EP")
		opts.Delete("extra")
		*t0 = time.Now()
		if model, err = get(ctx, om.URL); err == nil {
			session, err = jsutil.AwaitContext(ctx, ort.Get("InferenceSession").Call("create", jsutil.BytesToJS(model), opts))
		}
	} else if err == nil && p.ep != "wasm" {
		r.Notes = append(r.Notes, "every node on the "+p.ep+" EP (session created with CPU fallback off)")
		r.Features = append(r.Features, om.Format+": every node on the "+p.ep+" EP")
	}
	if err != nil {
		return js.Undefined(), fmt.Errorf("InferenceSession.create: %w", err)
	}
	return session, nil
}

// describeORT fills the row's adapter, verdict, features and notes for path p.
func describeORT(r *quanteval.Result, p ortPath, dev *engine.Devices, om quanteval.ORTModel) {
	if p.ep == "wasm" {
		r.Adapter = "ORT wasm EP, 1 thread (the page is not cross-origin isolated)"
		r.Verdict = "software: ORT wasm on the CPU, 1 thread"
	} else {
		r.Adapter = gpuName(dev)
		r.Hardware = !dev.WebGPU.Software
		r.Verdict = "real hardware GPU"
		if dev.WebGPU.Software {
			r.Verdict = "software adapter (a CPU emulating the GPU): not a hardware figure"
		}
	}
	r.Features = append([]string{p.what}, r.Features...)
	r.Notes = append(r.Notes, p.what, "held: the bytes of the ONNX model's initializers ("+om.Ops+")",
		"load: fetching the .onnx and InferenceSession.create; first output adds one 1-text run")
}

// passes groups texts as uselite.Encoder does: by length bucket, at most MaxBatch a pass.
func passes(enc *uselite.Encoder, texts []string) [][]int {
	lb := make([]int, len(texts))
	order := make([]int, len(texts))
	for i, s := range texts {
		lb[i], order[i] = enc.Tokenize([]string{s}).T, i
	}
	slices.SortStableFunc(order, func(a, b int) int { return lb[a] - lb[b] })
	var out [][]int
	for lo := 0; lo < len(order); {
		hi := lo + 1
		for hi < len(order) && hi-lo < uselite.MaxBatch && lb[order[hi]] == lb[order[lo]] {
			hi++
		}
		out = append(out, order[lo:hi])
		lo = hi
	}
	return out
}

// bucketB is the batch bucket n texts are padded to.
func bucketB(n int) int {
	for _, b := range uselite.BatchBuckets {
		if b >= n {
			return b
		}
	}
	return n
}

func gpuName(dev *engine.Devices) string {
	g := dev.WebGPU
	return fmt.Sprintf("%s %s %s", g.Vendor, g.Architecture, g.Description)
}

func jsTensor(ort js.Value, typ string, raw []byte, dims ...int) js.Value {
	ctor := map[string]string{"int32": "Int32Array", "float32": "Float32Array"}[typ]
	arr := js.Global().Get(ctor).New(len(raw) / 4)
	jsutil.CopyBytesToJS(arr, raw)
	d := make([]any, len(dims))
	for i, x := range dims {
		d[i] = x
	}
	return ort.Get("Tensor").New(typ, arr, d)
}

// int32Bytes and float32Bytes view values as bytes: wasm and typed arrays are little-endian.
func int32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}
