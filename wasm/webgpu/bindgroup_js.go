//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
)

// BindGroupLayout is GPUBindGroupLayout. https://www.w3.org/TR/webgpu/#gpubindgrouplayout
type BindGroupLayout struct{ v js.Value }

// BindGroup is GPUBindGroup. https://www.w3.org/TR/webgpu/#gpubindgroup
type BindGroup struct {
	v     js.Value
	label string
}

// BufferBinding is one GPUBindGroupEntry holding a buffer range (Size 0: to the end).
type BufferBinding struct {
	Binding int
	Buffer  *Buffer
	Offset  int64
	Size    int64
}

// CreateBindGroup calls GPUDevice.createBindGroup with buffer entries.
func (d *Device) CreateBindGroup(label string, layout *BindGroupLayout, entries ...BufferBinding) (*BindGroup, error) {
	es := make([]any, len(entries))
	for i, e := range entries {
		if e.Buffer == nil {
			return nil, fmt.Errorf("webgpu: bind group %q: binding %d has no buffer", label, e.Binding)
		}
		res := map[string]any{"buffer": e.Buffer.v, "offset": float64(e.Offset)}
		if e.Size > 0 {
			res["size"] = float64(e.Size)
		}
		es[i] = map[string]any{"binding": e.Binding, "resource": res}
	}
	v, err := d.call(d.v, "createBindGroup", label, map[string]any{"label": label, "layout": layout.v, "entries": es})
	if err != nil {
		return nil, err
	}
	return &BindGroup{v: v, label: label}, nil
}
