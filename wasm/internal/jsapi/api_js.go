//go:build js && wasm

package jsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/plan"
)

var (
	jsJSON        = js.Global().Get("JSON")
	jsF32         = js.Global().Get("Float32Array")
	jsArray       = js.Global().Get("Array")
	jsAbortSignal = js.Global().Get("AbortSignal")
)

// New returns the API object: what wasm/cmd/nibble sets as globalThis.nibble, and what the
// library bundle hands to the npm package's runtime. Call it once per bundle.
func New() js.Value {
	return js.ValueOf(map[string]any{
		"version":  version(),
		"backends": toJS(engine.Backends),
		"formats":  toJS(engine.Formats),
		"policies": toJS(plan.PolicyNames()),
		"devices": js.FuncOf(func(js.Value, []js.Value) any {
			return promise("devices()", "", func() (any, error) { return toJS(engine.Probe()), nil })
		}),
		"load": js.FuncOf(load),
	})
}

func version() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v + " (" + runtime.Version() + ")"
}

// load(url, {backend, format | policy, overrides, search, cache, memoryBudget, signal, onProgress}) →
// Promise<model>.
func load(_ js.Value, args []js.Value) any {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return reject("load(url, options)", "", fmt.Errorf("load(url, options): url must be a string: %w", errs.ErrBadArgument))
	}
	url := args[0].String()
	what := fmt.Sprintf("load(%q)", url)
	var o js.Value
	if len(args) > 1 {
		o = args[1]
	}
	opt, onProgress, signal, err := loadOptions(o)
	if err != nil {
		return reject(what, url, err)
	}
	ctx, stop := signalContext(signal)
	return promise(what, url, func() (any, error) {
		defer stop()
		s, err := acquire(ctx, url, opt, onProgress)
		if err != nil {
			return nil, err
		}
		return handle(s), nil
	})
}

func loadOptions(o js.Value) (opt engine.Options, onProgress, signal js.Value, err error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, errs.ErrBadArgument)...)
	}
	switch o.Type() {
	case js.TypeUndefined, js.TypeNull:
		return opt, js.Undefined(), js.Undefined(), nil
	case js.TypeObject:
	default:
		return opt, js.Undefined(), js.Undefined(), bad("options must be an object, not a %s", o.Type())
	}
	opt.Backend = optString(o, "backend")
	opt.Format = optString(o, "format")
	if p := optString(o, "policy"); p != "" {
		if _, err := plan.PolicyByName(p); err != nil {
			return opt, js.Undefined(), js.Undefined(), bad("policy %q: want one of %s", p, strings.Join(plan.PolicyNames(), ", "))
		}
		if opt.Format != "" {
			return opt, js.Undefined(), js.Undefined(), bad("give format or policy, not both")
		}
		opt.Policy = p
	}
	opt.Overrides = optString(o, "overrides")
	opt.Search = o.Get("search").Truthy()
	opt.Int8Activations = o.Get("int8Activations").Truthy()
	switch c := o.Get("cache"); c.Type() {
	case js.TypeUndefined, js.TypeNull:
	case js.TypeBoolean:
		b := c.Bool()
		opt.Cache = &b
	default:
		return opt, js.Undefined(), js.Undefined(), bad("cache must be true or false, not a %s", c.Type())
	}
	switch b := o.Get("memoryBudget"); b.Type() {
	case js.TypeUndefined, js.TypeNull:
	case js.TypeNumber:
		if b.Float() < 0 {
			return opt, js.Undefined(), js.Undefined(), bad("memoryBudget must be a number of bytes ≥ 0")
		}
		opt.MemoryBudget = int64(b.Float())
	default:
		return opt, js.Undefined(), js.Undefined(), bad("memoryBudget must be a number of bytes, not a %s", b.Type())
	}
	if f := o.Get("onProgress"); f.Type() == js.TypeFunction {
		onProgress = f
	}
	signal = o.Get("signal")
	if signal.Truthy() && !signal.InstanceOf(jsAbortSignal) {
		return opt, js.Undefined(), js.Undefined(), bad("signal must be an AbortSignal")
	}
	return opt, onProgress, signal, nil
}

// handle is the JS object of one load's result. Loads that shared a download get a handle each;
// the model is released with the last of them. Methods are js.Funcs released with the handle;
// afterwards each is replaced by one that rejects, so a late call fails with a message.
func handle(s *shared) js.Value {
	m := s.m
	mem, p := m.Memory(), m.Progress()
	h := js.ValueOf(map[string]any{
		"url": m.Spec.URL, "kind": string(m.Spec.Kind), "backend": m.Backend.Name(), "format": m.Format,
		"bytes": mem.ResidentBytes, "f32Bytes": mem.F32Bytes, "notes": toJS(m.Notes()),
		"loadMs": p.ElapsedMS, "cache": m.Cached, "arch": m.Arch(),
		"cacheHits": p.CacheHits, "cacheRead": p.CacheRead, "cacheWritten": p.CacheWritten,
	})
	methods := map[string]js.Func{}
	def := func(name string, f func(args []js.Value) any) {
		fn := js.FuncOf(func(_ js.Value, args []js.Value) any { return f(args) })
		methods[name] = fn
		h.Set(name, fn)
	}
	def("tensors", func([]js.Value) any { return toJS(m.Tensors()) })
	def("memory", func([]js.Value) any { return toJS(m.Memory()) })
	def("progress", func([]js.Value) any { return toJS(m.Progress()) })
	def("stats", func([]js.Value) any { return toJS(statsOf(s)) })
	def("plan", func([]js.Value) any { return toJS(planOf(m)) })
	def("matmul", func(args []js.Value) any {
		if len(args) < 3 || args[0].Type() != js.TypeString || !args[1].InstanceOf(jsF32) || args[2].Type() != js.TypeNumber {
			return reject("matmul(name, x, rows)", "", fmt.Errorf("matmul(name, x, rows): want a tensor name, a Float32Array and a row count: %w", errs.ErrBadArgument))
		}
		name, rows := args[0].String(), args[2].Int()
		x := make([]float32, args[1].Length())
		jsutil.CopyFloat32sToGo(x, args[1]) // copied now: the caller may reuse x once we return
		return promise(fmt.Sprintf("matmul(%q)", name), "", func() (any, error) {
			y, err := m.MatMul(name, x, rows)
			if err != nil {
				return nil, err
			}
			return jsutil.Float32sToJS(y), nil
		})
	})
	def("embed", func(args []js.Value) any {
		texts, err := textsArg(args)
		if err != nil {
			return reject("embed(texts)", "", err)
		}
		var signal js.Value
		if len(args) > 1 && args[1].Type() == js.TypeObject {
			if signal = args[1].Get("signal"); signal.Truthy() && !signal.InstanceOf(jsAbortSignal) {
				return reject("embed(texts, options)", "", fmt.Errorf("embed: signal must be an AbortSignal: %w", errs.ErrBadArgument))
			}
		}
		ctx, stop := signalContext(signal)
		return promise("embed(texts)", "", func() (any, error) {
			defer stop()
			out, err := m.Embed(ctx, texts)
			if err != nil {
				return nil, err
			}
			arr := jsArray.New(len(out))
			for i, e := range out {
				arr.SetIndex(i, jsutil.Float32sToJS(e))
			}
			return arr, nil
		})
	})
	def("generate", generateMethod(m))
	def("measure", func(args []js.Value) any {
		var opt engine.MeasureOptions
		if len(args) > 0 && args[0].Type() == js.TypeObject {
			o := args[0]
			opt.M, opt.Runs, opt.MaxLayers = optInt(o, "m"), optInt(o, "runs"), optInt(o, "maxLayers")
			opt.Seed = uint64(optInt(o, "seed"))
			if f := o.Get("onLayer"); f.Type() == js.TypeFunction {
				opt.OnLayer = func(r engine.LayerResult) { callSafe(f, toJS(r)) }
			}
		}
		return promise("measure()", "", func() (any, error) {
			res, err := m.Measure(context.Background(), opt)
			if err != nil {
				return nil, err
			}
			return toJS(res), nil
		})
	})
	release := func([]js.Value) any {
		err := s.release()
		for name, fn := range methods {
			h.Set(name, releasedMethod)
			fn.Release() // allowed while release itself is running
		}
		if err != nil {
			return reject("dispose()", "", err)
		}
		return jsutil.PromiseClass.Call("resolve")
	}
	def("release", release)
	def("dispose", release)
	return h
}

// Stats is a model's figures in one object: what it holds, how its load went, what it shares.
type Stats struct {
	URL     string `json:"url"`
	Kind    string `json:"kind"`
	Arch    string `json:"arch"`
	Backend string `json:"backend"`
	Format  string `json:"format"`
	engine.Memory
	LoadMS        float64  `json:"loadMs"`
	FirstOutputMS float64  `json:"firstOutputMs"`
	BytesReceived int64    `json:"bytesReceived"`
	Resumes       int      `json:"resumes"`
	Cache         bool     `json:"cache"`
	CacheHits     int      `json:"cacheHits"`
	CacheRead     int64    `json:"cacheRead"`
	CacheWritten  int64    `json:"cacheWritten"`
	Handles       int      `json:"handles"` // loads sharing this model (one download)
	Notes         []string `json:"notes"`
}

func statsOf(s *shared) Stats {
	m := s.m
	p := m.Progress()
	return Stats{
		URL: m.Spec.URL, Kind: string(m.Spec.Kind), Arch: m.Arch(), Backend: m.Backend.Name(), Format: m.Format,
		Memory: m.Memory(), LoadMS: p.ElapsedMS, FirstOutputMS: p.FirstOutputMS, BytesReceived: p.BytesReceived,
		Resumes: p.Resumes, Cache: m.Cached, CacheHits: p.CacheHits, CacheRead: p.CacheRead,
		CacheWritten: p.CacheWritten, Handles: s.handles(), Notes: m.Notes(),
	}
}

// Plan is what the load decided: the backend, the precision plan (each tensor's format and
// why, bytes, the predicted error: engine.Model.Plan) and each tensor as held.
type Plan struct {
	Backend   string               `json:"backend"`
	Format    string               `json:"format"`
	Precision *plan.Plan           `json:"precision"`
	Tensors   []engine.TensorFacts `json:"tensors"`
}

func planOf(m *engine.Model) Plan {
	return Plan{Backend: m.Backend.Name(), Format: m.Format, Precision: m.Plan(), Tensors: m.Tensors()}
}

// releasedMethod replaces a model's methods once it is released.
var releasedMethod = js.FuncOf(func(js.Value, []js.Value) any {
	return reject("model", "", fmt.Errorf("nibble: the model was released; load it again: %w", errs.ErrBadArgument))
})

// promise runs f on its own goroutine (never on the js.FuncOf callback's) and settles a Promise
// with its result; a rejection is an Error (see jsErr).
func promise(what, url string, f func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, rejectFn := args[0], args[1]
		executor.Release()
		go func() {
			v, err := func() (v any, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("nibble: internal error: %v", r)
					}
				}()
				return f()
			}()
			if err != nil {
				rejectFn.Invoke(jsErr(what, url, err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return jsutil.PromiseClass.New(executor)
}

func reject(what, url string, err error) js.Value {
	return jsutil.Reject(jsErr(what, url, err))
}

// jsErr is an Error whose message is the Go chain, with code (Failure.Code) and summary (its
// one-line Message): the npm package turns the three into a NibbleError.
func jsErr(what, url string, err error) js.Value {
	f := Describe(what, url, err)
	e := jsutil.NewError(f.Chain)
	e.Set("code", f.Code)
	e.Set("summary", f.Message)
	return e
}

// toJS converts a Go value through JSON: field names and omissions follow the struct tags.
func toJS(v any) js.Value {
	b, err := json.Marshal(v)
	if err != nil {
		return jsutil.NewError("nibble: cannot encode result: " + err.Error())
	}
	return jsJSON.Call("parse", string(b))
}

// callSafe calls a user callback; an exception it throws is logged, never fatal to the load.
func callSafe(f js.Value, arg js.Value) {
	if _, err := jsutil.Call(f, "call", js.Null(), arg); err != nil {
		js.Global().Get("console").Call("error", "nibble: callback threw: "+err.Error())
	}
}

func optString(o js.Value, key string) string {
	if v := o.Get(key); v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

func optInt(o js.Value, key string) int {
	if v := o.Get(key); v.Type() == js.TypeNumber {
		return v.Int()
	}
	return 0
}

// textsArg reads embed's argument: a string, or an array of strings (anything else is a
// BAD_ARGUMENT naming what was given, so a page passing numbers or a NodeList learns why).
func textsArg(args []js.Value) ([]string, error) {
	bad := func(why string) ([]string, error) {
		return nil, fmt.Errorf("%w: embed(texts): %s", engine.ErrBadArgument, why)
	}
	if len(args) == 0 {
		return bad("no texts given")
	}
	a := args[0]
	if a.Type() == js.TypeString {
		return []string{a.String()}, nil
	}
	if !jsArray.Call("isArray", a).Bool() {
		return bad("want a string or an array of strings, got a " + a.Type().String())
	}
	n := a.Length()
	if n == 0 {
		return bad("the list is empty")
	}
	out := make([]string, n)
	for i := range out {
		v := a.Index(i)
		if v.Type() != js.TypeString {
			return bad(fmt.Sprintf("texts[%d] is a %s, not a string", i, v.Type()))
		}
		out[i] = v.String()
	}
	return out, nil
}

// signalContext is a context cancelled when signal (an AbortSignal, or undefined) aborts. stop
// removes the listener; call it when the work ends.
func signalContext(signal js.Value) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	if !signal.Truthy() {
		return ctx, func() { cancel(nil) }
	}
	aborted := func() {
		cancel(fmt.Errorf("the AbortSignal fired: %w", errs.ErrAborted))
	}
	if signal.Get("aborted").Bool() {
		aborted()
		return ctx, func() {}
	}
	fn := js.FuncOf(func(js.Value, []js.Value) any { aborted(); return nil })
	signal.Call("addEventListener", "abort", fn, map[string]any{"once": true})
	return ctx, func() {
		signal.Call("removeEventListener", "abort", fn)
		fn.Release()
		cancel(nil)
	}
}
