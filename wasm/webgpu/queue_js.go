//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
)

// Queue is GPUQueue. https://www.w3.org/TR/webgpu/#gpuqueue
type Queue struct {
	v js.Value
	d *Device
}

// WriteBuffer calls GPUQueue.writeBuffer with a typed array (or ArrayBuffer) as the source;
// dataOffset and size count the source's elements, as in the spec. Callers pass a reused
// staging array: making a new one per call costs an allocation on both sides.
func (q *Queue) WriteBuffer(b *Buffer, offset int64, data js.Value, dataOffset, size int64) error {
	_, err := q.d.call(q.v, "writeBuffer", b.label, b.v, float64(offset), data, float64(dataOffset), float64(size))
	return err
}

// Submit calls GPUQueue.submit.
func (q *Queue) Submit(cbs ...*CommandBuffer) error {
	arr := make([]any, len(cbs))
	for i, c := range cbs {
		arr[i] = c.v
	}
	_, err := q.d.call(q.v, "submit", "queue", arr)
	return err
}

// OnSubmittedWorkDone waits until the GPU finished everything submitted so far.
func (q *Queue) OnSubmittedWorkDone() error {
	p, err := q.d.call(q.v, "onSubmittedWorkDone", "queue")
	if err != nil {
		return err
	}
	_, err = q.d.await(fmt.Sprintf("webgpu: onSubmittedWorkDone on %q", q.d.label), p)
	return err
}
