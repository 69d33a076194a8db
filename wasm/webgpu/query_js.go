//go:build js && wasm

package webgpu

import (
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// QuerySet is GPUQuerySet of type "timestamp". https://www.w3.org/TR/webgpu/#gpuqueryset
type QuerySet struct {
	v     js.Value
	label string
	count int
}

func (q *QuerySet) Count() int { return q.count }

// Destroy calls GPUQuerySet.destroy.
func (q *QuerySet) Destroy() { q.v.Call("destroy") }

func callJS(v js.Value, method string, args ...any) (js.Value, error) {
	return jsutil.Call(v, method, args...)
}
