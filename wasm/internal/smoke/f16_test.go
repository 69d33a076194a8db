//go:build js && wasm

package smoke

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"syscall/js"
	"testing"

	"github.com/x448/float16"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// requireF16Env, set to 1, makes a missing shader-f16 a failure instead of a skip.
//
// shader-f16 is an optional WebGPU feature: nibble must run without it (f32 kernel variants), so
// a browser that lacks it is not broken and the test skips there: Chromium's SwiftShader under
// tools/browser/test-js.sh is such a browser. Only the runner that promises f16 says so:
// tools/browser/test-firefox.sh sets it for Firefox ESR on lavapipe, where f16 is the reason the
// run exists and a silent skip would hide a lost prefs or driver set-up. An environment variable
// rather than a test flag because the runners pass it to every package, and a flag defined in
// this package alone would be "provided but not defined" in all the others.
const requireF16Env = "NIBBLE_REQUIRE_SHADER_F16"

// f16Shader computes y = x·w + 0.5 in f16 and stores it twice: as f16 (16-bit storage, which
// the f16 weight kernels need) and widened to f32 (to read the exact f16 value back).
const f16Shader = `enable f16;
@group(0) @binding(0) var<storage, read> x: array<f16>;
@group(0) @binding(1) var<storage, read> w: array<f16>;
@group(0) @binding(2) var<storage, read_write> y: array<f16>;
@group(0) @binding(3) var<storage, read_write> y32: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  if (i < arrayLength(&y32)) {
    let p: f16 = x[i] * w[i] + 0.5h;
    y[i] = p;
    y32[i] = f32(p);
  }
}`

// TestWebGPUShaderF16 checks the adapter offers shader-f16 and that a WGSL shader computes in
// f16 for real: results within f16 rounding of float64 math, and f16 rounding where f32 would
// keep more bits.
func TestWebGPUShaderF16(t *testing.T) {
	device := f16Device(t)
	defer device.Call("destroy")
	xs, ws := f16Inputs()
	yBytes, y32 := runF16Shader(t, device, xs, ws)

	// y = x·w + 0.5 rounds at most twice (or once, fused) to f16, whose unit roundoff is 2⁻¹¹.
	const u = 1.0 / 2048
	for i := range xs {
		x, w := float64(xs[i].Float32()), float64(ws[i].Float32())
		want := x*w + 0.5
		got16 := float16.Frombits(binary.LittleEndian.Uint16(yBytes[2*i:])).Float32()
		if got16 != y32[i] {
			t.Fatalf("element %d: y (f16) = %v but y32 = f32(y) = %v", i, got16, y32[i])
		}
		if tol := 2 * u * (math.Abs(x*w) + math.Abs(want)); math.Abs(float64(got16)-want) > tol {
			t.Fatalf("element %d: %v·%v + 0.5 = %v in f16, want %v ± %.3g (f16 rounding)", i, x, w, got16, want, tol)
		}
	}
	// f16 spacing at 1.5 and 0.5 is 2⁻¹⁰ and 2⁻¹¹: the 2⁻²⁰ of (1+2⁻¹⁰)² must be gone.
	if want := float32(1.5 + 1.0/512); y32[0] != want {
		t.Errorf("(1+2⁻¹⁰)² + 0.5 = %v (0x%x), want %v: not computed in f16", y32[0], math.Float32bits(y32[0]), want)
	}
	if want := float32(-(0.5 + 1.0/512)); y32[1] != want {
		t.Errorf("-(1+2⁻¹⁰)² + 0.5 = %v (0x%x), want %v: not computed in f16", y32[1], math.Float32bits(y32[1]), want)
	}
}

// f16Device returns a device with shader-f16, or skips when the adapter lacks it (fails when
// requireF16Env says it must have it).
func f16Device(t *testing.T) js.Value {
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		t.Fatalf("navigator.gpu is missing: WebGPU is off (Firefox needs dom.webgpu.enabled; Chromium --enable-unsafe-webgpu)")
	}
	adapter := await(t, "requestAdapter", gpu.Call("requestAdapter"))
	if adapter.IsNull() {
		t.Fatalf("requestAdapter returned null: no WebGPU adapter (Firefox: gfx.webgpu.ignore-blocklist and Mesa's lavapipe from mesa-vulkan-drivers)")
	}
	logAdapter(t, adapter)
	if !adapter.Get("features").Call("has", "shader-f16").Bool() {
		if os.Getenv(requireF16Env) == "1" {
			t.Fatalf("the adapter lacks shader-f16 and %s=1 says this browser has it", requireF16Env)
		}
		t.Skipf("the adapter lacks shader-f16 (optional; run tools/browser/test-firefox.sh for a browser that has it)")
	}
	device := await(t, "requestDevice", adapter.Call("requestDevice",
		map[string]any{"label": "smoke-f16", "requiredFeatures": []any{"shader-f16"}}))
	if !device.Get("features").Call("has", "shader-f16").Bool() {
		device.Call("destroy")
		t.Fatalf("requestDevice with requiredFeatures [shader-f16] gave a device without it")
	}
	return device
}

// f16Inputs are 1000 random f16 pairs (not a multiple of the workgroup size), then two cases
// where f16 and f32 differ: (1+2⁻¹⁰)² = 1+2⁻⁹+2⁻²⁰ keeps its 2⁻²⁰ in f32 but not in f16, whose
// spacing at 1.5 is 2⁻¹⁰.
func f16Inputs() (xs, ws []float16.Float16) {
	const n = 1000
	xs, ws = make([]float16.Float16, n), make([]float16.Float16, n)
	rng := rand.New(rand.NewPCG(16, 16))
	for i := range xs {
		xs[i] = float16.Fromfloat32(float32(rng.Float64()*8 - 4))
		ws[i] = float16.Fromfloat32(float32(rng.Float64()*8 - 4))
	}
	onePlus := float16.Fromfloat32(1 + 1.0/1024)
	xs[0], ws[0] = onePlus, onePlus
	xs[1], ws[1] = onePlus, float16.Fromfloat32(-(1 + 1.0/1024))
	return xs, ws
}

// runF16Shader runs f16Shader over xs and ws on device and reads back y (f16 bytes) and y32.
// Outputs start as 0xff… (NaN in f16 and f32), so an unwritten element shows.
func runF16Shader(t *testing.T, device js.Value, xs, ws []float16.Float16) (yBytes []byte, y32 []float32) {
	n := len(xs)
	usage := js.Global().Get("GPUBufferUsage")
	storage := usage.Get("STORAGE").Int() | usage.Get("COPY_SRC").Int() | usage.Get("COPY_DST").Int()
	buffer := func(label string, size int, data []byte) js.Value {
		b := call(t, device, "createBuffer", map[string]any{"label": label, "size": size, "usage": storage})
		call(t, device.Get("queue"), "writeBuffer", b, 0, jsutil.BytesToJS(data))
		return b
	}
	poison := make([]byte, 4*n)
	for i := range poison {
		poison[i] = 0xff
	}
	xb, wb := buffer("smoke-f16-x", 2*n, f16Bytes(xs)), buffer("smoke-f16-w", 2*n, f16Bytes(ws))
	yb, y32b := buffer("smoke-f16-y", 2*n, poison[:2*n]), buffer("smoke-f16-y32", 4*n, poison)
	pipeline, group := f16Pipeline(t, device, xb, wb, yb, y32b)

	readY := call(t, device, "createBuffer", map[string]any{"label": "smoke-f16-read-y", "size": 2 * n,
		"usage": usage.Get("MAP_READ").Int() | usage.Get("COPY_DST").Int()})
	readY32 := call(t, device, "createBuffer", map[string]any{"label": "smoke-f16-read-y32", "size": 4 * n,
		"usage": usage.Get("MAP_READ").Int() | usage.Get("COPY_DST").Int()})
	enc := call(t, device, "createCommandEncoder", map[string]any{"label": "smoke-f16"})
	pass := call(t, enc, "beginComputePass", map[string]any{"label": "smoke-f16"})
	pass.Call("setPipeline", pipeline)
	pass.Call("setBindGroup", 0, group)
	pass.Call("dispatchWorkgroups", (n+63)/64)
	pass.Call("end")
	enc.Call("copyBufferToBuffer", yb, 0, readY, 0, 2*n)
	enc.Call("copyBufferToBuffer", y32b, 0, readY32, 0, 4*n)
	device.Get("queue").Call("submit", []any{enc.Call("finish")})
	mapRead := js.Global().Get("GPUMapMode").Get("READ").Int()
	await(t, "mapAsync y", readY.Call("mapAsync", mapRead))
	await(t, "mapAsync y32", readY32.Call("mapAsync", mapRead))
	yBytes = make([]byte, 2*n)
	jsutil.CopyBytesToGo(yBytes, readY.Call("getMappedRange"))
	y32 = make([]float32, n)
	jsutil.CopyFloat32sToGo(y32, readY32.Call("getMappedRange"))
	readY.Call("unmap")
	readY32.Call("unmap")
	return yBytes, y32
}

// f16Pipeline compiles f16Shader (its compile errors by line) and binds the four buffers.
func f16Pipeline(t *testing.T, device js.Value, buffers ...js.Value) (pipeline, group js.Value) {
	device.Call("pushErrorScope", "validation")
	module := call(t, device, "createShaderModule", map[string]any{"label": "smoke-f16", "code": f16Shader})
	info := await(t, "getCompilationInfo", module.Call("getCompilationInfo"))
	for _, m := range jsArray(info.Get("messages")) {
		if m.Get("type").String() == "error" {
			t.Errorf("smoke-f16 shader line %d: %s", m.Get("lineNum").Int(), m.Get("message").String())
		}
	}
	pipeline = call(t, device, "createComputePipeline", map[string]any{"label": "smoke-f16",
		"layout": "auto", "compute": map[string]any{"module": module, "entryPoint": "main"}})
	entries := []any{}
	for i, b := range buffers {
		entries = append(entries, map[string]any{"binding": i, "resource": map[string]any{"buffer": b}})
	}
	group = call(t, device, "createBindGroup", map[string]any{"label": "smoke-f16",
		"layout": pipeline.Call("getBindGroupLayout", 0), "entries": entries})
	if err := await(t, "popErrorScope", device.Call("popErrorScope")); !err.IsNull() {
		t.Fatalf("smoke-f16 pipeline: %s", err.Get("message").String())
	}
	return pipeline, group
}

// logAdapter prints what a report needs to say which adapter ran: a software one (lavapipe,
// SwiftShader) says isFallbackAdapter or names itself in vendor/architecture/description.
// Firefox leaves GPUAdapterInfo's strings empty unless told otherwise (fingerprinting).
func logAdapter(t *testing.T, adapter js.Value) {
	t.Helper()
	info := adapter.Get("info")
	fallback := info.Get("isFallbackAdapter")
	if fallback.IsUndefined() { // older browsers keep it on the adapter
		fallback = adapter.Get("isFallbackAdapter")
	}
	var features []string
	each := js.FuncOf(func(this js.Value, args []js.Value) any {
		features = append(features, args[0].String())
		return nil
	})
	adapter.Get("features").Call("forEach", each)
	each.Release()
	limits := adapter.Get("limits")
	t.Logf("adapter: vendor %q architecture %q device %q description %q isFallbackAdapter=%v",
		info.Get("vendor").String(), info.Get("architecture").String(), info.Get("device").String(),
		info.Get("description").String(), fallback.Truthy())
	t.Logf("adapter: maxStorageBufferBindingSize %d MiB, maxComputeInvocationsPerWorkgroup %d, features %v",
		limits.Get("maxStorageBufferBindingSize").Int()>>20, limits.Get("maxComputeInvocationsPerWorkgroup").Int(), features)
	t.Logf("browser: %s", js.Global().Get("navigator").Get("userAgent").String())
}

func f16Bytes(h []float16.Float16) []byte {
	b := make([]byte, 2*len(h))
	for i, v := range h {
		binary.LittleEndian.PutUint16(b[2*i:], v.Bits())
	}
	return b
}

func jsArray(v js.Value) []js.Value {
	out := make([]js.Value, v.Length())
	for i := range out {
		out[i] = v.Index(i)
	}
	return out
}
