// Package webgpu is nibble's thin, typed binding over navigator.gpu, reached from Go through
// syscall/js. One file per WebGPU interface (adapter_js.go, device_js.go, buffer_js.go, …); the
// types that carry no JavaScript (limits, usages, errors) live in types.go so pure-Go code such as
// the GPU backend's planning can use them and test natively.
//
// What it adds to the raw API, and why:
//   - Every object takes a label as a positional argument: a validation message from the browser
//     names the label, and a label nobody can forget to pass is the only one that is always there.
//   - Every shader module and compute pipeline is created by one helper, Device.CreateComputePipeline,
//     which pushes a validation error scope, reads getCompilationInfo and returns a *CompileError
//     naming the variant, the file and the line. The browser would otherwise only log it.
//   - Every promise is awaited with a timeout and raced against device.lost, so a lost device turns
//     into an error on the next call (ErrDeviceLost), never a hang.
//
// It owns no policy: which kernel to run, how to split tensors or what to cache belongs to
// wasm/backend/gpu. It must not import anything above wasm/jsutil.
package webgpu
