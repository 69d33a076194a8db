// Package plan turns what a device can really do into per-tensor choices: bits, group size,
// scheme, scale type and backend, each with its reason. Inputs are the model's tensors (roles
// inferred from their names), the Caps every backend measured, a memory budget, a Policy and,
// for the mixed policy, the model's measured Sensitivity; Make returns a Plan, or ErrNoFit
// before anything is fetched. It is pure Go and imports no backend (backends import it for
// Caps); measuring sensitivity belongs to each model package (uselite.Native.Sensitivity).
package plan

// Caps are the facts a backend measured about the device it runs on. Nothing here is guessed
// from a user agent: WebGPU fills it from the adapter and device, WebNN from opSupportLimits.
type Caps struct {
	Backend string // "webgpu", "webnn", "cpu"
	// Adapter describes the device: vendor, architecture, description as the browser reports them.
	Adapter string
	// Software is true when a software adapter ran (SwiftShader, lavapipe, the CPU fallback),
	// so no figure from it is mistaken for a hardware measurement.
	Software bool

	F16            bool // shader-f16 (WebGPU) or float16 operands (WebNN)
	Subgroups      bool
	TimestampQuery bool

	MaxStorageBindingSize   int64 // largest storage-buffer binding, bytes
	MaxBufferSize           int64
	MaxWorkgroupInvocations int

	// WeightBits lists the quantized widths the backend holds natively (e.g. 2, 4, 8).
	WeightBits []int
	// Notes records choices the backend made (e.g. "int4 constants rejected: using int8").
	Notes []string
}
