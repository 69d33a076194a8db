//go:build js && wasm

package tfjsref

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"
	"time"
	"unsafe"

	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// bundles are evaluated in this order: the backends' UMD wrappers attach to the tf that
// tf.min.js (core, converter, cpu and webgl backends) made global.
var bundles = []string{
	"tfjs/tf.min.js",
	"tfjs-backend-wasm/tf-backend-wasm.min.js",
	"tfjs-backend-webgpu/tf-backend-webgpu.min.js",
}

// state is the page's TF.js: one per page, as globalThis.tf is.
var state struct {
	mu     sync.Mutex
	tf     js.Value            // globalThis.tf once Load succeeded
	base   string              // the vendor base URL it came from
	models map[string]js.Value // GraphModel by backend and URL (see model)
}

// await waits for p under ctx's deadline. jsutil.Await cannot be woken by a cancel without a
// deadline; callers that need one give ctx a deadline.
func await(ctx context.Context, p js.Value, what string) (js.Value, error) {
	if err := ctx.Err(); err != nil {
		return js.Undefined(), fmt.Errorf("tfjsref: %s: %w", what, err)
	}
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		if timeout = time.Until(d); timeout <= 0 {
			return js.Undefined(), fmt.Errorf("tfjsref: %s: %w", what, context.DeadlineExceeded)
		}
	}
	v, err := jsutil.Await(p, timeout)
	if err != nil {
		return js.Undefined(), fmt.Errorf("tfjsref: %s: %w", what, err)
	}
	return v, nil
}

func call(v js.Value, method, what string, args ...any) (js.Value, error) {
	r, err := jsutil.Call(v, method, args...)
	if err != nil {
		return js.Undefined(), fmt.Errorf("tfjsref: %s: %w", what, err)
	}
	return r, nil
}

// Load fetches TF.js's UMD bundles (core with the cpu backend, then the wasm and webgpu
// backends) from vendorBaseURL, laid out as tools/streamserve serves node_modules/@tensorflow
// under /vendor/tfjs, evaluates them in the page so that globalThis.tf exists, and points the
// wasm backend's .wasm files at the same server. It checks the page got the pinned Version.
//
// The page is not ours (wasmbrowsertest's, or an app's), so the bundles come in as fetched
// text run through new Function rather than script tags in a document we do not control. A
// second Load is a no-op, whatever its URL: the page has one tf.
func Load(ctx context.Context, vendorBaseURL string) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.tf.Truthy() {
		return nil
	}
	if vendorBaseURL == "" {
		return errors.New("tfjsref: Load: empty vendor base URL (tools/streamserve sets NIBBLE_TFJS_URL)")
	}
	base := strings.TrimRight(vendorBaseURL, "/")
	function := js.Global().Get("Function")
	for _, b := range bundles {
		url := base + "/" + b
		resp, err := await(ctx, js.Global().Call("fetch", url), "fetch "+url)
		if err != nil {
			return err
		}
		if !resp.Get("ok").Bool() {
			return fmt.Errorf("tfjsref: fetch %s: HTTP %d (is the npm package installed? make deps)", url, resp.Get("status").Int())
		}
		// The source stays a JS string: a megabyte round trip through Go would buy nothing.
		src, err := await(ctx, resp.Call("text"), "read "+url)
		if err != nil {
			return err
		}
		fn, err := jsutil.New(function, src)
		if err != nil {
			return fmt.Errorf("tfjsref: parse %s: %w", url, err)
		}
		if _, err := call(fn, "call", "evaluate "+url, js.Global()); err != nil {
			return err
		}
	}
	tf := js.Global().Get("tf")
	if !tf.Truthy() || !tf.Get("wasm").Truthy() {
		return fmt.Errorf("tfjsref: the bundles from %s left no globalThis.tf with tf.wasm", base)
	}
	if v := tf.Get("version").Get("tfjs"); v.Type() != js.TypeString || v.String() != Version {
		return fmt.Errorf("tfjsref: the page got TF.js %v, want the pinned %s (package.json)", v, Version)
	}
	// Before any backend starts: the wasm backend reads the paths once, when it initializes,
	// and by default fetches its .wasm from a CDN.
	if _, err := call(tf.Get("wasm"), "setWasmPaths", "setWasmPaths", base+"/tfjs-backend-wasm/"); err != nil {
		return err
	}
	state.tf, state.base, state.models = tf, base, map[string]js.Value{}
	return nil
}

func loaded() (js.Value, error) {
	if !state.tf.Truthy() {
		return js.Undefined(), errors.New("tfjsref: TF.js is not loaded: call Load first")
	}
	return state.tf, nil
}

// SetBackend makes name ("cpu", "wasm" or "webgpu": Backends) TF.js's backend and waits until
// it is ready. TF.js reports a backend that fails to start with false and a console warning;
// the error here says which and what to check.
func SetBackend(ctx context.Context, name string) error {
	state.mu.Lock()
	defer state.mu.Unlock()
	tf, err := loaded()
	if err != nil {
		return err
	}
	if !slices.Contains(Backends, name) {
		return fmt.Errorf("tfjsref: backend %q: want one of %v", name, Backends)
	}
	if name == "webgpu" && !js.Global().Get("navigator").Get("gpu").Truthy() {
		return errors.New("tfjsref: backend webgpu: navigator.gpu is missing (Chromium needs --enable-unsafe-webgpu)")
	}
	ok, err := await(ctx, tf.Call("setBackend", name), "setBackend "+name)
	if err != nil {
		return err
	}
	if !ok.Bool() {
		return fmt.Errorf("tfjsref: backend %s failed to initialize (its reason is in the browser console; wasm: are the .wasm files served as application/wasm under %s/tfjs-backend-wasm/?)", name, state.base)
	}
	if _, err := await(ctx, tf.Call("ready"), "ready "+name); err != nil {
		return err
	}
	if got := tf.Call("getBackend").String(); got != name {
		return fmt.Errorf("tfjsref: asked for backend %s, TF.js runs %s", name, got)
	}
	return nil
}

// Describe reports what the current backend really is: the TF.js version, the wasm backend's
// thread count and SIMD, the WebGPU adapter.
func Describe(ctx context.Context) (Facts, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	tf, err := loaded()
	if err != nil {
		return Facts{}, err
	}
	f := Facts{
		Version:             tf.Get("version").Get("tfjs").String(),
		Backend:             tf.Call("getBackend").String(),
		CrossOriginIsolated: js.Global().Get("crossOriginIsolated").Truthy(),
	}
	switch f.Backend {
	case "wasm":
		f.WasmThreads = tf.Get("wasm").Call("getThreadsCount").Int()
		simd, err := await(ctx, tf.Call("env").Call("getAsync", "WASM_HAS_SIMD_SUPPORT"), "WASM_HAS_SIMD_SUPPORT")
		if err != nil {
			return f, err
		}
		f.WasmSIMD = simd.Truthy()
	case "webgpu":
		// GPUDevice.adapterInfo has every field; TF.js's own backend.adapterInfo keeps two.
		f.Adapter = readAdapterInfo(tf.Call("backend").Get("device").Get("adapterInfo"))
	}
	return f, nil
}

func readAdapterInfo(i js.Value) webgpu.AdapterInfo {
	if !i.Truthy() {
		return webgpu.AdapterInfo{}
	}
	str := func(k string) string {
		if x := i.Get(k); x.Type() == js.TypeString {
			return x.String()
		}
		return ""
	}
	return webgpu.AdapterInfo{
		Vendor: str("vendor"), Architecture: str("architecture"), Device: str("device"),
		Description: str("description"), IsFallbackAdapter: i.Get("isFallbackAdapter").Truthy(),
	}
}

// model returns the GraphModel at url for the current backend, loading it on first use. One
// per backend: weights live in the backend that was current when they were loaded, and TF.js
// would otherwise move them between backends on every switch (a webgpu → cpu move needs a
// synchronous GPU read, which the webgpu backend cannot do quickly).
func model(ctx context.Context, tf js.Value, backend, url string) (js.Value, error) {
	key := backend + " " + url
	if m, ok := state.models[key]; ok {
		return m, nil
	}
	m, err := await(ctx, tf.Call("loadGraphModel", url), "loadGraphModel "+url)
	if err != nil {
		return js.Undefined(), err
	}
	state.models[key] = m
	return m, nil
}

// embeddingTable is USE-lite's token table: ids index its rows. Past its end TF.js's backends
// disagree (cpu and wasm throw, webgpu quietly returns a row: 8002 and 9000 give the same one),
// and -1 is the model's own padding value, so Embed refuses both.
const embeddingTable = "module/Embeddings_en"

// tableRows returns the row count of the model's token table, or 0 if the model has none.
func tableRows(m js.Value) int {
	w := m.Get("weights")
	if !w.Truthy() {
		return 0
	}
	t := w.Get(embeddingTable)
	if !t.Truthy() || t.Length() == 0 {
		return 0
	}
	return t.Index(0).Get("shape").Index(0).Int()
}

// Embed runs the TF.js graph model at modelURL on the current backend with the inputs TF.js's
// universal-sentence-encoder package builds from token ids (see the package doc): ids[s] are
// sentence s's token ids. It returns one embedding per sentence, as TF.js computed it.
//
// The model makes one row per sentence up to the last sentence that has an id: trailing
// sentences with no ids get no row, and Embed says so with an error instead of returning fewer
// rows than sentences. Negative ids, and ids past the token table, are refused.
func Embed(ctx context.Context, modelURL string, ids [][]int32) ([][]float32, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	tf, err := loaded()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("tfjsref: Embed: no sentences")
	}
	m, err := model(ctx, tf, tf.Call("getBackend").String(), modelURL)
	if err != nil {
		return nil, err
	}
	rows := tableRows(m)
	var indices, values []int32
	for s, sent := range ids {
		for p, id := range sent {
			if id < 0 || (rows > 0 && int(id) >= rows) {
				return nil, fmt.Errorf("tfjsref: Embed: sentence %d position %d: id %d outside the token table [0, %d)", s, p, id, rows)
			}
			indices = append(indices, int32(s), int32(p))
			values = append(values, id)
		}
	}
	last := len(ids) - 1
	for last >= 0 && len(ids[last]) == 0 {
		last--
	}
	if last < 0 {
		return nil, errors.New("tfjsref: Embed: no sentence has an id, and TF.js's backends disagree on such input (cpu and webgpu each make one different row, wasm throws)")
	}
	if last < len(ids)-1 {
		return nil, fmt.Errorf("tfjsref: Embed: sentences %d..%d have no ids, and the model makes no row after the last sentence with one (put an empty sentence before a non-empty one to get TF.js's embedding of it)", last+1, len(ids)-1)
	}

	nnz := len(values)
	in := jsutil.ObjectClass.New()
	// The dtype is explicit: without it TF.js would make float32 tensors from the typed
	// arrays' numbers, and the model's placeholders are int32.
	it, err := call(tf, "tensor2d", "indices", int32sToJS(indices), []any{nnz, 2}, "int32")
	if err != nil {
		return nil, err
	}
	defer it.Call("dispose")
	vt, err := call(tf, "tensor1d", "values", int32sToJS(values), "int32")
	if err != nil {
		return nil, err
	}
	defer vt.Call("dispose")
	in.Set("indices", it)
	in.Set("values", vt)
	out, err := await(ctx, m.Call("executeAsync", in), "executeAsync "+modelURL)
	if err != nil {
		return nil, err
	}
	defer tf.Call("dispose", out)
	if js.Global().Get("Array").Call("isArray", out).Bool() {
		return nil, fmt.Errorf("tfjsref: %s has %d outputs, want one [sentences, dim] tensor", modelURL, out.Length())
	}
	shape := out.Get("shape")
	if shape.Length() != 2 || shape.Index(0).Int() != len(ids) {
		return nil, fmt.Errorf("tfjsref: %s gave shape %v for %d sentences, want [%d, dim]", modelURL, js.Global().Get("JSON").Call("stringify", shape), len(ids), len(ids))
	}
	if dt := out.Get("dtype").String(); dt != "float32" {
		return nil, fmt.Errorf("tfjsref: %s gave %s, want float32", modelURL, dt)
	}
	data, err := await(ctx, out.Call("data"), "read the embeddings")
	if err != nil {
		return nil, err
	}
	dim := shape.Index(1).Int()
	flat := make([]float32, len(ids)*dim)
	jsutil.CopyFloat32sToGo(flat, data)
	res := make([][]float32, len(ids))
	for i := range res {
		res[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return res, nil
}

var int32Array = js.Global().Get("Int32Array")

// int32sToJS copies v into a new Int32Array in one bulk copy (wasm and typed arrays are both
// little-endian).
func int32sToJS(v []int32) js.Value {
	a := int32Array.New(len(v))
	if len(v) > 0 {
		jsutil.CopyBytesToJS(a, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v)))
	}
	return a
}
