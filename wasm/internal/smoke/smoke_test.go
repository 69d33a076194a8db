//go:build js && wasm

package smoke

import (
	"math"
	"syscall/js"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

const (
	timeout = 20 * time.Second
	// What the launcher (tools/browser/bin/headless_shell) must provide.
	setupHint = "run the tests through tools/browser/test-js.sh, which puts the headless_shell launcher " +
		"(npm @sparticuz/chromium@153.0.0 with --enable-unsafe-webgpu and " +
		"--enable-features=WebMachineLearningNeuralNetwork) first on PATH"
)

func await(t *testing.T, what string, p js.Value) js.Value {
	t.Helper()
	v, err := jsutil.Await(p, timeout)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func call(t *testing.T, v js.Value, method string, args ...any) js.Value {
	t.Helper()
	r, err := jsutil.Call(v, method, args...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return r
}

// TestWebGPUCompute squares a vector in a compute shader and reads it back.
func TestWebGPUCompute(t *testing.T) {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		t.Fatalf("navigator.gpu is missing: WebGPU is off; %s", setupHint)
	}
	adapter := await(t, "requestAdapter", gpu.Call("requestAdapter"))
	if adapter.IsNull() {
		t.Fatalf("requestAdapter returned null: no WebGPU adapter (SwiftShader needs --enable-unsafe-webgpu and the libvk_swiftshader.so unpacked beside the browser); %s", setupHint)
	}
	info := adapter.Get("info")
	t.Logf("adapter: vendor %q architecture %q description %q fallback(software)=%v",
		info.Get("vendor").String(), info.Get("architecture").String(), info.Get("description").String(),
		adapter.Get("isFallbackAdapter").Truthy() || info.Get("isFallbackAdapter").Truthy())
	device := await(t, "requestDevice", adapter.Call("requestDevice"))
	defer device.Call("destroy")

	const n = 1000 // not a multiple of the workgroup size
	module := call(t, device, "createShaderModule", map[string]any{"label": "smoke-square", "code": `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * data[id.x]; }
}`})
	usage := js.Global().Get("GPUBufferUsage")
	buf := call(t, device, "createBuffer", map[string]any{"label": "smoke-data", "size": 4 * n,
		"usage": usage.Get("STORAGE").Int() | usage.Get("COPY_SRC").Int() | usage.Get("COPY_DST").Int()})
	read := call(t, device, "createBuffer", map[string]any{"label": "smoke-read", "size": 4 * n,
		"usage": usage.Get("MAP_READ").Int() | usage.Get("COPY_DST").Int()})
	in := make([]float32, n)
	for i := range in {
		in[i] = float32(i) - 500.5
	}
	call(t, device.Get("queue"), "writeBuffer", buf, 0, jsutil.Float32sToJS(in))
	pipeline := call(t, device, "createComputePipeline", map[string]any{"label": "smoke-square",
		"layout": "auto", "compute": map[string]any{"module": module, "entryPoint": "main"}})
	group := call(t, device, "createBindGroup", map[string]any{"label": "smoke-bind",
		"layout":  pipeline.Call("getBindGroupLayout", 0),
		"entries": []any{map[string]any{"binding": 0, "resource": map[string]any{"buffer": buf}}}})
	enc := call(t, device, "createCommandEncoder", map[string]any{"label": "smoke-enc"})
	pass := call(t, enc, "beginComputePass")
	pass.Call("setPipeline", pipeline)
	pass.Call("setBindGroup", 0, group)
	pass.Call("dispatchWorkgroups", (n+63)/64)
	pass.Call("end")
	enc.Call("copyBufferToBuffer", buf, 0, read, 0, 4*n)
	device.Get("queue").Call("submit", []any{enc.Call("finish")})
	await(t, "mapAsync", read.Call("mapAsync", js.Global().Get("GPUMapMode").Get("READ").Int()))
	out := make([]float32, n)
	jsutil.CopyFloat32sToGo(out, read.Call("getMappedRange"))
	read.Call("unmap")
	for i, v := range in {
		if out[i] != v*v {
			t.Fatalf("data[%d] = %v after squaring %v, want %v", i, out[i], v, v*v)
		}
	}
}

// TestWebNNGraph computes relu(a·b + c) on a tiny graph and reads it back.
func TestWebNNGraph(t *testing.T) {
	ml := js.Global().Get("navigator").Get("ml")
	if !ml.Truthy() {
		t.Fatalf("navigator.ml is missing: WebNN is off; %s", setupHint)
	}
	ctx := await(t, "createContext (Debian's chromium rejects it; the @sparticuz headless_shell works)",
		ml.Call("createContext", map[string]any{"deviceType": "cpu"}))
	defer ctx.Call("destroy")
	builder, err := jsutil.New(js.Global().Get("MLGraphBuilder"), ctx)
	if err != nil {
		t.Fatalf("new MLGraphBuilder: %v", err)
	}
	desc := func(shape ...int) map[string]any {
		s := make([]any, len(shape))
		for i, d := range shape {
			s[i] = d
		}
		return map[string]any{"dataType": "float32", "shape": s}
	}
	a := call(t, builder, "input", "a", desc(2, 3))
	b := call(t, builder, "constant", desc(3, 2), jsutil.Float32sToJS([]float32{1, 2, 3, 4, 5, 6}))
	c := call(t, builder, "constant", desc(2, 2), jsutil.Float32sToJS([]float32{-100, 0, 0.5, -0.5}))
	y := call(t, builder, "relu", call(t, builder, "add", call(t, builder, "matmul", a, b), c))
	graph := await(t, "build", builder.Call("build", map[string]any{"y": y}))
	readable := desc(2, 2)
	readable["readable"] = true
	writable := desc(2, 3)
	writable["writable"] = true
	ta := await(t, "createTensor a", ctx.Call("createTensor", writable))
	ty := await(t, "createTensor y", ctx.Call("createTensor", readable))
	ctx.Call("writeTensor", ta, jsutil.Float32sToJS([]float32{1, 0, -1, 2, 1, 0.5}))
	call(t, ctx, "dispatch", graph, map[string]any{"a": ta}, map[string]any{"y": ty})
	out := make([]float32, 4)
	jsutil.CopyFloat32sToGo(out, await(t, "readTensor", ctx.Call("readTensor", ty)))
	// a·b = [[1-5, 2-6], [2+3+2.5, 4+4+3]] = [[-4,-4],[7.5,11]]; + c; relu.
	want := []float32{0, 0, 8, 10.5}
	for i := range want {
		if math.Abs(float64(out[i]-want[i])) > 1e-5 {
			t.Fatalf("y = %v, want %v", out, want)
		}
	}
}
