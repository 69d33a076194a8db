//go:build js && wasm

// The JS glue, and nothing else: argument checks, Promises, and conversions. Results cross as
// JSON (one json.Marshal + JSON.parse per call) so every field name lives in one place, the
// engine's struct tags; only float32 vectors cross as typed arrays, in one bulk copy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"syscall/js"

	"github.com/nibble-ml/nibble/site"
	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/internal/jsutil"
)

var (
	jsPromise = js.Global().Get("Promise")
	jsError   = js.Global().Get("Error")
	jsJSON    = js.Global().Get("JSON")
	jsF32     = js.Global().Get("Float32Array")
)

func main() {
	api := map[string]any{
		"version":  version(),
		"backends": toJS(engine.Backends),
		"formats":  toJS(engine.Formats),
		"devices": js.FuncOf(func(js.Value, []js.Value) any {
			return promise(func() (any, error) { return toJS(engine.Probe()), nil })
		}),
		"load": js.FuncOf(load),
	}
	js.Global().Set("nibble", js.ValueOf(api))
	// Pages wait for this event instead of polling for globalThis.nibble.
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("nibble-ready"))
	site.Mount()
	select {}
}

func version() string {
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v + " (" + runtime.Version() + ")"
}

// load(url, {backend, format, search, cache, onProgress}) → Promise<model>.
func load(_ js.Value, args []js.Value) any {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return reject(errors.New("nibble.load(url, options): url must be a string"))
	}
	url := args[0].String()
	var opt engine.Options
	var onProgress js.Value
	if len(args) > 1 && args[1].Type() == js.TypeObject {
		o := args[1]
		opt.Backend = optString(o, "backend")
		opt.Format = optString(o, "format")
		opt.Search = o.Get("search").Truthy()
		switch c := o.Get("cache"); c.Type() {
		case js.TypeUndefined, js.TypeNull:
		case js.TypeBoolean:
			b := c.Bool()
			opt.Cache = &b
		default:
			return reject(fmt.Errorf("nibble.load: cache must be true or false, not a %s", c.Type()))
		}
		if f := o.Get("onProgress"); f.Type() == js.TypeFunction {
			onProgress = f
			opt.OnProgress = func(p engine.Progress) { callSafe(onProgress, toJS(p)) }
		}
	}
	return promise(func() (any, error) {
		ctx := context.Background()
		m, err := engine.Load(ctx, url, opt)
		if err != nil {
			return nil, err
		}
		if err := m.Wait(ctx); err != nil {
			m.Release()
			return nil, err
		}
		return handle(m), nil
	})
}

// handle is the JS object of a loaded model. Its methods are js.Funcs released with the model;
// afterwards each is replaced by one that rejects, so a late call fails with a message.
func handle(m *engine.Model) js.Value {
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
	def("matmul", func(args []js.Value) any {
		if len(args) < 3 || args[0].Type() != js.TypeString || !args[1].InstanceOf(jsF32) || args[2].Type() != js.TypeNumber {
			return reject(errors.New("matmul(name, x, m): want a tensor name, a Float32Array and a row count"))
		}
		name, rows := args[0].String(), args[2].Int()
		x := make([]float32, args[1].Length())
		jsutil.CopyFloat32sToGo(x, args[1]) // copied now: the caller may reuse x once we return
		return promise(func() (any, error) {
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
			return reject(err)
		}
		return promise(func() (any, error) {
			out, err := m.Embed(context.Background(), texts)
			if err != nil {
				return nil, err
			}
			arr := js.Global().Get("Array").New(len(out))
			for i, e := range out {
				arr.SetIndex(i, jsutil.Float32sToJS(e))
			}
			return arr, nil
		})
	})
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
		return promise(func() (any, error) {
			res, err := m.Measure(context.Background(), opt)
			if err != nil {
				return nil, err
			}
			return toJS(res), nil
		})
	})
	def("release", func([]js.Value) any {
		err := m.Release()
		for name, fn := range methods {
			h.Set(name, releasedMethod)
			fn.Release() // allowed while release itself is running
		}
		if err != nil {
			return reject(err)
		}
		return jsPromise.Call("resolve")
	})
	return h
}

// releasedMethod replaces a model's methods once it is released.
var releasedMethod = js.FuncOf(func(js.Value, []js.Value) any {
	return reject(errors.New("nibble: the model was released; load it again"))
})

// promise runs f on its own goroutine (never on the js.FuncOf callback's) and settles a Promise
// with its result.
func promise(f func() (any, error)) js.Value {
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
				rejectFn.Invoke(jsError.New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return jsPromise.New(executor)
}

func reject(err error) js.Value {
	return jsPromise.Call("reject", jsError.New(err.Error()))
}

// toJS converts a Go value through JSON: field names and omissions follow the struct tags.
func toJS(v any) js.Value {
	b, err := json.Marshal(v)
	if err != nil {
		return jsError.New("nibble: cannot encode result: " + err.Error())
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
	if !js.Global().Get("Array").Call("isArray", a).Bool() {
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
