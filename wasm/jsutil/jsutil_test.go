//go:build js && wasm

package jsutil

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"syscall/js"
	"testing"
	"time"
)

func TestAwait(t *testing.T) {
	promise := PromiseClass
	v, err := Await(promise.Call("resolve", 42), time.Second)
	if err != nil || v.Int() != 42 {
		t.Fatalf("resolved promise: got %v, %v; want 42, nil", v, err)
	}
	rejected := promise.Call("reject", js.Global().Get("RangeError").New("too big"))
	_, err = Await(rejected, time.Second)
	var je *Error
	if !errors.As(err, &je) || je.Name != "RangeError" || je.Message != "too big" {
		t.Fatalf("rejected promise: got %v, want RangeError: too big", err)
	}
	never := promise.New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	start := time.Now()
	_, err = Await(never, 50*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("pending promise: got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout of 50ms took %v", d)
	}
	if v, err := Await(js.ValueOf("plain"), time.Second); err != nil || v.String() != "plain" {
		t.Fatalf("plain value: got %v, %v", v, err)
	}
}

func TestAwaitContext(t *testing.T) {
	never := PromiseClass.New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := AwaitContext(ctx, never); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: got %v, want context.Canceled", err)
	}
	v, err := AwaitContext(context.Background(), PromiseClass.Call("resolve", "ok"))
	if err != nil || v.String() != "ok" {
		t.Fatalf("resolved promise: got %v, %v; want ok, nil", v, err)
	}
	_, err = AwaitContext(context.Background(), Reject(NewError("boom")))
	var je *Error
	if !errors.As(err, &je) || je.Name != "Error" || je.Message != "boom" {
		t.Fatalf("Reject(NewError): got %v, want Error: boom", err)
	}
	if got := Arg0(nil); !got.IsUndefined() {
		t.Fatalf("Arg0(nil) = %v, want undefined", got)
	}
}

func TestCallTurnsExceptionsIntoErrors(t *testing.T) {
	_, err := Call(js.Global().Get("JSON"), "parse", "{not json")
	var je *Error
	if !errors.As(err, &je) || je.Name != "SyntaxError" {
		t.Fatalf("JSON.parse of bad input: got %v, want a SyntaxError", err)
	}
	if _, err := New(js.Global().Get("Uint8Array"), -1); err == nil {
		t.Fatal("new Uint8Array(-1): want a RangeError, got nil")
	}
}

func TestTypedArrayCopies(t *testing.T) {
	f := make([]float32, 1001)
	for i := range f {
		f[i] = rand.Float32()*2 - 1
	}
	a := Float32sToJS(f)
	if a.Get("length").Int() != len(f) || float32(a.Index(1000).Float()) != f[1000] {
		t.Fatalf("Float32sToJS: length %d, [1000] = %v, want %d, %v", a.Get("length").Int(), a.Index(1000), len(f), f[1000])
	}
	back := make([]float32, len(f))
	if n := CopyFloat32sToGo(back, a); n != len(f) || !slices.Equal(back, f) {
		t.Fatalf("CopyFloat32sToGo copied %d, equal=%v", n, slices.Equal(back, f))
	}
	// A view into the middle of a larger buffer must copy only that window.
	buf := js.Global().Get("ArrayBuffer").New(64)
	view := js.Global().Get("Float32Array").New(buf, 8, 4)
	CopyFloat32sToJS(view, []float32{1, 2, 3, 4})
	got := make([]byte, 64)
	CopyBytesToGo(got, buf)
	if got[7] != 0 || got[24] != 0 || got[8+3] != 0x3f {
		t.Fatalf("CopyFloat32sToJS wrote outside its view or the wrong bytes: %v", got)
	}
	b := []byte{1, 2, 3}
	if v := BytesToJS(b); v.Get("length").Int() != 3 || v.Index(2).Int() != 3 {
		t.Fatal("BytesToJS did not copy")
	}
}
