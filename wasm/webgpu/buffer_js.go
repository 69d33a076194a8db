//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
)

// Buffer is GPUBuffer. https://www.w3.org/TR/webgpu/#gpubuffer
type Buffer struct {
	v     js.Value
	d     *Device
	label string
	size  int64
}

func (b *Buffer) Label() string { return b.label }
func (b *Buffer) Size() int64   { return b.size }

// Destroy frees the buffer's memory now rather than at garbage collection.
func (b *Buffer) Destroy() {
	if b != nil && b.v.Truthy() {
		b.v.Call("destroy")
	}
}

// MapAsync maps [offset, offset+size) and waits for it, bounded by the device timeout.
// https://www.w3.org/TR/webgpu/#dom-gpubuffer-mapasync
func (b *Buffer) MapAsync(mode MapMode, offset, size int64) error {
	p, err := b.d.call(b.v, "mapAsync", b.label, uint32(mode), float64(offset), float64(size))
	if err != nil {
		return err
	}
	_, err = b.d.await(fmt.Sprintf("webgpu: mapAsync %q", b.label), p)
	return err
}

// MappedRange returns the ArrayBuffer of a mapped range; it is detached by Unmap, so copy out
// of it before unmapping.
func (b *Buffer) MappedRange(offset, size int64) (js.Value, error) {
	return b.d.call(b.v, "getMappedRange", b.label, float64(offset), float64(size))
}

// Unmap calls GPUBuffer.unmap.
func (b *Buffer) Unmap() { b.v.Call("unmap") }
