//go:build js && wasm

package jsutil

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
	"time"
	"unsafe"
)

// The constructors every package needs, looked up once here: each js.Global().Get is a round
// trip into JavaScript.
var (
	PromiseClass = js.Global().Get("Promise")
	ErrorClass   = js.Global().Get("Error")
	ObjectClass  = js.Global().Get("Object")
	uint8Array   = js.Global().Get("Uint8Array")
	float32Array = js.Global().Get("Float32Array")
)

// NewError returns a new JS Error with the message msg.
func NewError(msg string) js.Value { return ErrorClass.New(msg) }

// Reject returns Promise.reject(reason).
func Reject(reason js.Value) js.Value { return PromiseClass.Call("reject", reason) }

// ErrTimeout is wrapped by Await when the promise did not settle in time.
var ErrTimeout = errors.New("jsutil: promise did not settle in time")

// Error is a JavaScript exception or rejection reason seen from Go.
type Error struct {
	Name    string // e.g. "TypeError", "NotSupportedError", "OperationError"
	Message string
	Value   js.Value // the original value, for callers that need more fields
}

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Message
	}
	return e.Name + ": " + e.Message
}

// ToError turns a thrown or rejected JS value into a Go error.
func ToError(v js.Value) error {
	if v.Type() == js.TypeObject {
		name, msg := v.Get("name"), v.Get("message")
		if msg.Type() == js.TypeString {
			e := &Error{Message: msg.String(), Value: v}
			if name.Type() == js.TypeString {
				e.Name = name.String()
			}
			return e
		}
	}
	return &Error{Message: js.Global().Call("String", v).String(), Value: v}
}

// Await waits for the promise p to settle and returns its value, or its rejection as an error
// (see ToError), or an error wrapping ErrTimeout after timeout (0 means no timeout: use it
// only for promises that must settle, WebNN ones can hang forever when the feature is off).
//
// Await blocks the calling goroutine, so it must never run on the goroutine that is serving a
// js.FuncOf callback: start a goroutine there. Non-promise values are wrapped with
// Promise.resolve, so thenables and plain values work too.
func Await(p js.Value, timeout time.Duration) (js.Value, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w (%v)", ErrTimeout, timeout))
		defer cancel()
	}
	return AwaitContext(ctx, p)
}

// AwaitContext is Await bounded by ctx instead of a timeout: when ctx ends first it returns
// context.Cause(ctx).
func AwaitContext(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	// Buffered: a settle that arrives after ctx ended must not block the JS event loop.
	ch := make(chan result, 1)
	onOK := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: Arg0(args)}
		return nil
	})
	onErr := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: ToError(Arg0(args))}
		return nil
	})
	if _, err := Call(PromiseClass.Call("resolve", p), "then", onOK, onErr); err != nil {
		onOK.Release()
		onErr.Release()
		return js.Undefined(), err
	}
	select {
	case r := <-ch:
		onOK.Release()
		onErr.Release()
		return r.v, r.err
	case <-ctx.Done():
		// The callbacks stay alive: the promise may still settle, and calling a released
		// function would crash the whole program. Two small closures leak instead.
		return js.Undefined(), context.Cause(ctx)
	}
}

// Arg0 is a callback's first argument, or undefined when JS passed none.
func Arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// Call calls v[method](args...) and returns a thrown exception as an error instead of letting
// syscall/js panic.
func Call(v js.Value, method string, args ...any) (res js.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p, method)
		}
	}()
	return v.Call(method, args...), nil
}

// New calls new ctor(args...) with exceptions returned as errors.
func New(ctor js.Value, args ...any) (res js.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = recovered(p, "new")
		}
	}()
	return ctor.New(args...), nil
}

func recovered(p any, what string) error {
	if je, ok := p.(js.Error); ok {
		return fmt.Errorf("%s: %w", what, ToError(je.Value))
	}
	if e, ok := p.(error); ok {
		return fmt.Errorf("%s: %w", what, e)
	}
	return fmt.Errorf("%s: %v", what, p)
}

// Uint8View returns a Uint8Array over the bytes of an ArrayBuffer, typed array or DataView.
func Uint8View(v js.Value) js.Value {
	if v.InstanceOf(uint8Array) {
		return v
	}
	if buf := v.Get("buffer"); buf.Truthy() {
		return uint8Array.New(buf, v.Get("byteOffset"), v.Get("byteLength"))
	}
	return uint8Array.New(v)
}

// BytesToJS returns a new Uint8Array holding a copy of b.
func BytesToJS(b []byte) js.Value {
	a := uint8Array.New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// CopyBytesToGo copies min(len(dst), byteLength) bytes of any buffer view src into dst.
func CopyBytesToGo(dst []byte, src js.Value) int {
	return js.CopyBytesToGo(dst, Uint8View(src))
}

// CopyBytesToJS copies b into any buffer view dst.
func CopyBytesToJS(dst js.Value, b []byte) int {
	return js.CopyBytesToJS(Uint8View(dst), b)
}

// float32Bytes views f as bytes. wasm is little-endian, as are typed arrays on every browser.
func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// Float32sToJS returns a new Float32Array holding a copy of f, in one bulk copy.
func Float32sToJS(f []float32) js.Value {
	a := float32Array.New(len(f))
	CopyBytesToJS(a, float32Bytes(f))
	return a
}

// CopyFloat32sToGo copies a Float32Array (or any view of float32 bytes) into dst in one bulk
// copy and returns how many floats were copied.
func CopyFloat32sToGo(dst []float32, src js.Value) int {
	return CopyBytesToGo(float32Bytes(dst), src) / 4
}

// CopyFloat32sToJS copies f into a Float32Array (or any buffer view) in one bulk copy.
func CopyFloat32sToJS(dst js.Value, f []float32) int {
	return CopyBytesToJS(dst, float32Bytes(f)) / 4
}
