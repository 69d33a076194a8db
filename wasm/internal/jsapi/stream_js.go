//go:build js && wasm

package jsapi

import (
	"sync"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

var jsSymbolAsyncIterator = js.Global().Get("Symbol").Get("asyncIterator")

// tokenStream makes generate's promise async-iterable over its tokens, so a page writes
// for await (const t of m.generate(prompt)) while await m.generate(prompt) keeps resolving to
// the whole Generation. Tokens are queued until next() asks for them; leaving the loop early
// (break, throw: the iterator's return()) stops the generation, as an AbortSignal does. The
// iterator is built in Go rather than as JS source because a page's CSP may forbid eval.
type tokenStream struct {
	mu      sync.Mutex
	queue   []js.Value // tokens not yet taken
	waiting [][2]js.Value
	done    bool
	fail    js.Value // the promise's rejection; undefined when it resolved
	stop    func()
}

func newTokenStream(stop func()) *tokenStream { return &tokenStream{stop: stop, fail: js.Undefined()} }

// push hands a token to the iterator (from the generating goroutine).
func (s *tokenStream) push(tok js.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	if len(s.waiting) > 0 {
		w := s.waiting[0]
		s.waiting = s.waiting[1:]
		w[0].Invoke(iterResult(tok, false))
		return
	}
	s.queue = append(s.queue, tok)
}

// finish ends the stream: waiting next() calls get done, or the rejection.
func (s *tokenStream) finish(fail js.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done, s.fail = true, fail
	}
	for _, w := range s.waiting {
		if s.fail.IsUndefined() {
			w[0].Invoke(iterResult(js.Undefined(), true))
		} else {
			w[1].Invoke(s.fail)
		}
	}
	s.waiting = nil
}

func iterResult(v js.Value, done bool) js.Value {
	o := jsutil.ObjectClass.New()
	o.Set("value", v)
	o.Set("done", done)
	return o
}

// attach adds [Symbol.asyncIterator] to p and returns it. The promise's own then marks a
// rejection handled, so a page that only iterates sees the error from next() and no
// unhandled-rejection report.
func (s *tokenStream) attach(p js.Value) js.Value {
	var ok, bad js.Func
	ok = js.FuncOf(func(js.Value, []js.Value) any {
		s.finish(js.Undefined())
		ok.Release()
		bad.Release()
		return nil
	})
	bad = js.FuncOf(func(_ js.Value, args []js.Value) any {
		s.finish(args[0])
		ok.Release()
		bad.Release()
		return nil
	})
	p.Call("then", ok, bad)
	// next, return and the iterator stay bound for the promise's lifetime (three js.Funcs per
	// generation): a page may call next() after the end, and must get done, not an exception.
	var next, ret, iter js.Func
	next = js.FuncOf(func(js.Value, []js.Value) any {
		var exec js.Func
		exec = js.FuncOf(func(_ js.Value, args []js.Value) any {
			exec.Release()
			s.mu.Lock()
			defer s.mu.Unlock()
			switch {
			case len(s.queue) > 0:
				tok := s.queue[0]
				s.queue = s.queue[1:]
				args[0].Invoke(iterResult(tok, false))
			case s.done && s.fail.IsUndefined():
				args[0].Invoke(iterResult(js.Undefined(), true))
			case s.done:
				args[1].Invoke(s.fail)
			default:
				s.waiting = append(s.waiting, [2]js.Value{args[0], args[1]})
			}
			return nil
		})
		return jsutil.PromiseClass.New(exec)
	})
	ret = js.FuncOf(func(js.Value, []js.Value) any {
		s.mu.Lock()
		wasDone := s.done
		s.queue = nil
		s.mu.Unlock()
		if !wasDone {
			s.stop()
		}
		s.finish(js.Undefined())
		return jsutil.PromiseClass.Call("resolve", iterResult(js.Undefined(), true))
	})
	it := jsutil.ObjectClass.New()
	it.Set("next", next)
	it.Set("return", ret)
	iter = js.FuncOf(func(js.Value, []js.Value) any { return it })
	js.Global().Get("Reflect").Call("set", p, jsSymbolAsyncIterator, iter)
	return p
}

var jsMessageChannel = js.Global().Get("MessageChannel")

// yieldToPage returns to the JS event loop once, between two tokens. Go's wasm runs the
// generation on the page's (or worker's) only thread and returns to JS only when every
// goroutine waits, so without this an AbortSignal's abort event, a worker's abort message and
// the page's own for-await body would all wait for the whole generation. scheduler.yield()
// (Chromium 129+) resumes ahead of other tasks; elsewhere a setTimeout(0) task, clamped to a
// few ms, which a token's compute dwarfs. In a worker, resuming ahead of other tasks is what
// must not happen: the page's abort is a message already queued there (with scheduler.yield a
// for-await break in the page stopped nothing: 251 tokens ran on). A MessageChannel message is
// a task of the same source, queued behind it.
func yieldToPage() {
	var p js.Value
	if !js.Global().Get("document").Truthy() {
		ch := jsMessageChannel.New()
		defer ch.Get("port1").Call("close")
		var exec js.Func
		exec = js.FuncOf(func(_ js.Value, args []js.Value) any {
			exec.Release()
			ch.Get("port1").Set("onmessage", args[0])
			ch.Get("port2").Call("postMessage", nil)
			return nil
		})
		p = jsutil.PromiseClass.New(exec)
	} else if s := js.Global().Get("scheduler"); s.Truthy() && s.Get("yield").Type() == js.TypeFunction {
		p = s.Call("yield")
	} else {
		var exec js.Func
		exec = js.FuncOf(func(_ js.Value, args []js.Value) any {
			exec.Release()
			js.Global().Call("setTimeout", args[0], 0)
			return nil
		})
		p = jsutil.PromiseClass.New(exec)
	}
	_, _ = jsutil.Await(p, time.Minute)
}
