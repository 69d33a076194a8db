//go:build js && wasm

package webgpu

import "syscall/js"

// ComputePipeline is GPUComputePipeline. https://www.w3.org/TR/webgpu/#gpucomputepipeline
// Create it with Device.CreateComputePipeline.
type ComputePipeline struct {
	v     js.Value
	d     *Device
	label string
}

func (p *ComputePipeline) Label() string { return p.label }

// BindGroupLayout returns the layout of group index that layout "auto" derived.
func (p *ComputePipeline) BindGroupLayout(index int) *BindGroupLayout {
	return &BindGroupLayout{v: p.v.Call("getBindGroupLayout", index)}
}
