//go:build js && wasm

package webgpu

import (
	"encoding/binary"
	"fmt"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Dispatch is one dispatch of a prepared list: a pipeline, its bind group 0 and the grid.
type Dispatch struct {
	Pipeline *ComputePipeline
	Group    *BindGroup
	X, Y     int
}

// Dispatches is a list of dispatches prepared once and recorded into any number of compute
// passes by one call into JavaScript, where recording them one by one takes three calls each
// (setPipeline, setBindGroup, dispatchWorkgroups): a decoder's forward is over a thousand
// dispatches, and each call from wasm into JavaScript costs microseconds. The pipelines and bind
// groups sit in JavaScript arrays, the grids and indices in an Int32Array.
type Dispatches struct {
	list               []Dispatch
	pipes, groups, ops js.Value
}

// replayJS records a prepared list into a pass: per dispatch, ops holds the pipeline's index
// (−1: the previous dispatch's), the bind group's index and the grid's x and y.
const replayJS = `for (let j = 0; j < ops.length; j += 4) {
  if (ops[j] >= 0) pass.setPipeline(pipes[ops[j]]);
  pass.setBindGroup(0, groups[ops[j + 1]]);
  pass.dispatchWorkgroups(ops[j + 2], ops[j + 3], 1);
}`

// replay is replayJS as a function, made on first use; undefined where the page's content
// security policy forbids making functions from source (no 'unsafe-eval'): lists are then
// recorded one call at a time.
var replay js.Value

func replayFunc() js.Value {
	if replay.IsUndefined() {
		f, err := jsutil.New(js.Global().Get("Function"), "pass", "pipes", "groups", "ops", replayJS)
		if err != nil {
			f = js.Null()
		}
		replay = f
	}
	return replay
}

// NewDispatches prepares list for ComputePass.Record.
func NewDispatches(list []Dispatch) *Dispatches {
	d := &Dispatches{list: list}
	if replayFunc().IsNull() {
		return d
	}
	array := js.Global().Get("Array")
	d.pipes, d.groups = array.New(), array.New()
	pipes := map[*ComputePipeline]int{}
	ops := make([]byte, 16*len(list))
	var last *ComputePipeline
	for i, e := range list {
		pi := -1
		if e.Pipeline != last {
			var ok bool
			if pi, ok = pipes[e.Pipeline]; !ok {
				pi = len(pipes)
				pipes[e.Pipeline] = pi
				d.pipes.SetIndex(pi, e.Pipeline.v)
			}
			last = e.Pipeline
		}
		d.groups.SetIndex(i, e.Group.v)
		for k, v := range []int{pi, i, e.X, e.Y} {
			binary.LittleEndian.PutUint32(ops[16*i+4*k:], uint32(int32(v)))
		}
	}
	u8 := jsutil.BytesToJS(ops)
	d.ops = js.Global().Get("Int32Array").New(u8.Get("buffer"), 0, 4*len(list))
	return d
}

// Len is the number of dispatches.
func (d *Dispatches) Len() int { return len(d.list) }

// Record appends the dispatches to the pass.
func (p *ComputePass) Record(d *Dispatches) error {
	if d.ops.IsUndefined() {
		for _, e := range d.list {
			p.SetPipeline(e.Pipeline)
			p.SetBindGroup(0, e.Group)
			p.Dispatch(e.X, e.Y, 1)
		}
		return nil
	}
	if _, err := jsutil.Call(replayFunc(), "call", nil, p.v, d.pipes, d.groups, d.ops); err != nil {
		return fmt.Errorf("webgpu: compute pass %q: %w", p.label, err)
	}
	return nil
}
