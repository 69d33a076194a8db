//go:build js && wasm

package webnn

import (
	"errors"
	"math"
	"syscall/js"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

func cpuContext(t *testing.T) *Context {
	t.Helper()
	c, err := CreateContext(ContextOptions{DeviceType: CPU})
	if err != nil {
		t.Fatalf("WebNN context: %v", err)
	}
	t.Cleanup(c.Destroy)
	return c
}

func TestOpSupportLimitsDump(t *testing.T) {
	l, err := cpuContext(t).OpSupportLimits()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("opSupportLimits: %d ops, preferredInputLayout %s, maxTensorByteLength %d", len(l.Ops), l.PreferredInputLayout, l.MaxTensorByteLength)
	for _, s := range l.Summary("constant", "input", "dequantizeLinear", "matmul", "gemm", "cast", "pad", "reshape", "transpose", "mul", "sub") {
		t.Log(s)
	}
}

// TestMissingML removes navigator.ml and checks the error comes at once and names the flag.
func TestMissingML(t *testing.T) {
	nav := js.Global().Get("navigator")
	proto := jsutil.ObjectClass.Call("getPrototypeOf", nav)
	desc := jsutil.ObjectClass.Call("getOwnPropertyDescriptor", proto, "ml")
	if !desc.Truthy() {
		t.Skip("navigator.ml is not a prototype accessor here")
	}
	jsutil.ObjectClass.Call("defineProperty", nav, "ml", map[string]any{"value": js.Undefined(), "configurable": true})
	defer js.Global().Get("Reflect").Call("deleteProperty", nav, "ml")
	start := time.Now()
	_, err := CreateContext(ContextOptions{DeviceType: CPU})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	t.Logf("error: %v", err)
}

// TestBadContext makes createContext reject, then hang, and checks both become errors in time.
func TestBadContext(t *testing.T) {
	m := js.Global().Get("navigator").Get("ml")
	if !m.Truthy() {
		t.Skip("no navigator.ml")
	}
	orig := m.Get("createContext")
	defer m.Set("createContext", orig)
	reject := js.FuncOf(func(js.Value, []js.Value) any {
		return jsutil.PromiseClass.Call("reject", js.Global().Get("DOMException").New("WebNN is not supported on this platform.", "NotSupportedError"))
	})
	defer reject.Release()
	m.Set("createContext", reject)
	_, err := CreateContext(ContextOptions{DeviceType: GPU})
	var je *jsutil.Error
	if !errors.Is(err, ErrContext) || !errors.As(err, &je) || je.Name != "NotSupportedError" {
		t.Fatalf("rejecting createContext: got %v, want ErrContext wrapping NotSupportedError", err)
	}
	t.Logf("rejected: %v", err)

	hang := js.FuncOf(func(js.Value, []js.Value) any {
		return jsutil.PromiseClass.New(js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	})
	defer hang.Release()
	m.Set("createContext", hang)
	old := ContextTimeout
	ContextTimeout = 200 * time.Millisecond
	defer func() { ContextTimeout = old }()
	start := time.Now()
	_, err = CreateContext(ContextOptions{})
	if !errors.Is(err, ErrContext) || !errors.Is(err, jsutil.ErrTimeout) {
		t.Fatalf("hanging createContext: got %v, want ErrContext wrapping ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout of 200ms took %v", d)
	}
	t.Logf("hung: %v", err)
}

// TestInt4Graph builds dequantizeLinear(int4) → gemm and checks the packing convention: two
// codes a byte, low nibble first, densely across rows, zero point of the same type.
func TestInt4Graph(t *testing.T) {
	c := cpuContext(t)
	b := c.NewBuilder()
	x := b.Input("x", Descriptor{Float32, []int{1, 3}})
	xp := b.Pad("x-pad", x, []int{0, 0}, []int{0, 1})
	w := b.DequantizeLinear("w",
		b.ConstantBytes("w-codes", Descriptor{Int4, []int{2, 4}}, []byte{0x21, 0x43, 0xf8, 0x07}),
		b.Constant("w-scales", Descriptor{Float32, []int{2, 1}}, jsutil.Float32sToJS([]float32{1, 10})),
		b.ConstantBytes("w-zeros", Descriptor{Int4, []int{2, 1}}, []byte{0x10}))
	y := b.Gemm("y", xp, w, GemmOptions{BTranspose: true})
	g, err := b.Build("int4-test", map[string]*Operand{"y": y})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	xt, err := c.CreateTensor("x", Descriptor{Float32, []int{1, 3}}, TensorUsage{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	yt, err := c.CreateTensor("y", Descriptor{Float32, []int{1, 2}}, TensorUsage{Readable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	defer yt.Destroy()
	if err := c.WriteTensor(xt, jsutil.Float32sToJS([]float32{1, 1, 1})); err != nil {
		t.Fatal(err)
	}
	if err := c.Dispatch(g, map[string]*Tensor{"x": xt}, map[string]*Tensor{"y": yt}); err != nil {
		t.Fatal(err)
	}
	out := js.Global().Get("Float32Array").New(2)
	if err := c.ReadTensorInto(yt, out); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2)
	jsutil.CopyFloat32sToGo(got, out)
	// row 0: codes 1 2 3 (4 is padded away), z 0, s 1 → 6; row 1: -8 -1 7, z 1, s 10 → -50.
	if math.Abs(float64(got[0]-6)) > 0 || math.Abs(float64(got[1]+50)) > 0 {
		t.Fatalf("y = %v, want [6 -50]", got)
	}
}

// TestBuildErrorNamesNode checks that a bad op fails at Build with the node's label.
func TestBuildErrorNamesNode(t *testing.T) {
	c := cpuContext(t)
	b := c.NewBuilder()
	w := b.DequantizeLinear("bad-dq",
		b.ConstantBytes("codes", Descriptor{Int8, []int{2, 5}}, make([]byte, 10)),
		b.Constant("scales", Descriptor{Float32, []int{2, 2}}, jsutil.Float32sToJS(make([]float32, 4))),
		b.ConstantBytes("zeros", Descriptor{Int8, []int{2, 2}}, make([]byte, 4)))
	_, err := b.Build("bad", map[string]*Operand{"w": w})
	if err == nil {
		t.Fatal("block of 2.5 columns: want an error")
	}
	t.Logf("error: %v", err)
}

// TestContextFromGPU is hybrid readiness: a WebNN context on the WebGPU device.
func TestContextFromGPU(t *testing.T) {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		t.Skip("no navigator.gpu")
	}
	a, err := jsutil.Await(gpu.Call("requestAdapter"), 10*time.Second)
	if err != nil || !a.Truthy() {
		t.Skipf("no WebGPU adapter: %v", err)
	}
	dev, err := jsutil.Await(a.Call("requestDevice"), 10*time.Second)
	if err != nil {
		t.Skipf("no WebGPU device: %v", err)
	}
	defer dev.Call("destroy")
	c, err := CreateContextFromGPU(dev)
	if err != nil {
		t.Fatalf("createContext(GPUDevice): %v", err)
	}
	defer c.Destroy()
	l, err := c.OpSupportLimits()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("createContext(GPUDevice) works; dequantizeLinear input types %v", l.Ops["dequantizeLinear"]["input"].DataTypes)
}

func TestDestroyLoses(t *testing.T) {
	c, err := CreateContext(ContextOptions{DeviceType: CPU})
	if err != nil {
		t.Fatal(err)
	}
	c.Destroy()
	select {
	case <-c.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("lost did not settle within 5s of destroy")
	}
	if _, err := c.CreateTensor("after", Descriptor{Float32, []int{1}}, TensorUsage{}); !errors.Is(err, ErrLost) {
		t.Fatalf("createTensor after destroy: got %v, want ErrLost", err)
	}
	t.Logf("after destroy: %v", c.Err())
}
