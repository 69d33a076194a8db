//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
)

// CommandEncoder is GPUCommandEncoder. https://www.w3.org/TR/webgpu/#gpucommandencoder
type CommandEncoder struct {
	v     js.Value
	d     *Device
	label string
}

// CommandBuffer is GPUCommandBuffer.
type CommandBuffer struct{ v js.Value }

// TimestampWrites is GPUComputePassTimestampWrites; an index < 0 is left out.
type TimestampWrites struct {
	QuerySet       *QuerySet
	Beginning, End int
}

// BeginComputePass calls beginComputePass; ts may be nil.
func (e *CommandEncoder) BeginComputePass(label string, ts *TimestampWrites) (*ComputePass, error) {
	desc := map[string]any{"label": label}
	if ts != nil {
		tw := map[string]any{"querySet": ts.QuerySet.v}
		if ts.Beginning >= 0 {
			tw["beginningOfPassWriteIndex"] = ts.Beginning
		}
		if ts.End >= 0 {
			tw["endOfPassWriteIndex"] = ts.End
		}
		desc["timestampWrites"] = tw
	}
	v, err := e.d.call(e.v, "beginComputePass", label, desc)
	if err != nil {
		return nil, err
	}
	return &ComputePass{v: v, label: label, setPipeline: v.Get("setPipeline"), setBindGroup: v.Get("setBindGroup"), dispatch: v.Get("dispatchWorkgroups")}, nil
}

// CopyBufferToBuffer calls copyBufferToBuffer.
func (e *CommandEncoder) CopyBufferToBuffer(src *Buffer, srcOffset int64, dst *Buffer, dstOffset, size int64) error {
	_, err := e.d.call(e.v, "copyBufferToBuffer", e.label, src.v, float64(srcOffset), dst.v, float64(dstOffset), float64(size))
	return err
}

// ClearBuffer calls clearBuffer (size 0: to the end).
func (e *CommandEncoder) ClearBuffer(b *Buffer, offset, size int64) error {
	if size == 0 {
		size = b.size - offset
	}
	_, err := e.d.call(e.v, "clearBuffer", e.label, b.v, float64(offset), float64(size))
	return err
}

// ResolveQuerySet calls resolveQuerySet into a buffer with BufferQueryResolve usage.
func (e *CommandEncoder) ResolveQuerySet(q *QuerySet, first, count int, dst *Buffer, offset int64) error {
	_, err := e.d.call(e.v, "resolveQuerySet", e.label, q.v, first, count, dst.v, float64(offset))
	return err
}

// Finish calls finish.
func (e *CommandEncoder) Finish() (*CommandBuffer, error) {
	v, err := e.d.call(e.v, "finish", e.label, map[string]any{"label": e.label})
	if err != nil {
		return nil, err
	}
	return &CommandBuffer{v: v}, nil
}

// ComputePass is GPUComputePassEncoder. Its hot methods are looked up once: a matmul records
// several dispatches, and each v.Call would look the method up again by name.
type ComputePass struct {
	v                                   js.Value
	label                               string
	setPipeline, setBindGroup, dispatch js.Value
}

// SetPipeline calls setPipeline.
func (p *ComputePass) SetPipeline(pl *ComputePipeline) {
	p.setPipeline.Call("call", p.v, pl.v)
}

// SetBindGroup calls setBindGroup.
func (p *ComputePass) SetBindGroup(index int, g *BindGroup) {
	p.setBindGroup.Call("call", p.v, index, g.v)
}

// Dispatch calls dispatchWorkgroups. Counts beyond the device limit are a validation error
// that the caller's error scope reports; they are not checked here twice.
func (p *ComputePass) Dispatch(x, y, z int) {
	p.dispatch.Call("call", p.v, x, y, z)
}

// End calls end.
func (p *ComputePass) End() error {
	if _, err := callJS(p.v, "end"); err != nil {
		return fmt.Errorf("webgpu: compute pass %q: %w", p.label, err)
	}
	return nil
}
