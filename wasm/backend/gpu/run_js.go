//go:build js && wasm

package gpu

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// Run writes the inputs, submits every dispatch and the copies of the outputs as one command
// buffer (recorded during the previous Run) and maps the one readback buffer once.
func (p *program) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	out, err := p.run(ctx, in, true)
	if err != nil {
		return nil, fmt.Errorf("gpu run %q: %w", p.g.Name, err)
	}
	return out, nil
}

// run is Run; without readback it waits for the queue instead of mapping (the benchmark's
// measure of what the readback costs).
func (p *program) run(ctx context.Context, in []graph.Tensor, readback bool) ([]graph.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.g.CheckInputs(in); err != nil {
		return nil, err
	}
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := p.checkStates(in); err != nil {
		return nil, err
	}
	switch {
	case p.released:
		return nil, errors.New("program released")
	case b.closed:
		return nil, errors.New("backend closed")
	}
	if err := b.dev.Err(); err != nil {
		return nil, err
	}
	q := b.dev.Queue()
	for i, r := range p.inputs {
		if r.size == 0 {
			continue
		}
		data := f32bytes(in[i].F32)
		if in[i].I32 != nil {
			data = i32bytes(in[i].I32)
		}
		js.CopyBytesToJS(p.stage, data)
		if err := q.WriteBuffer(r.buf, r.off, p.stage, 0, r.size); err != nil {
			return nil, err
		}
	}
	if err := b.dev.PushErrorScope("validation"); err != nil {
		return nil, err
	}
	err := p.submit(readback)
	if err == nil {
		if readback {
			err = p.read()
		} else {
			err = q.OnSubmittedWorkDone()
		}
	}
	if perr := b.dev.PopErrorScope("run " + p.g.Name); err == nil {
		err = perr
	}
	if err != nil || !readback {
		return nil, err
	}
	out := make([]graph.Tensor, len(p.outputs))
	for j, r := range p.outputs {
		n := &p.g.Nodes[p.g.Outputs[j]]
		src := p.host[r.at : r.at+r.size]
		t := graph.Tensor{Shape: n.Shape}
		if n.DType == graph.Int32 {
			t.I32 = make([]int32, n.Shape.Size())
			copy(i32bytes(t.I32), src)
		} else {
			t.F32 = make([]float32, n.Shape.Size())
			copy(f32bytes(t.F32), src)
		}
		out[j] = t
	}
	return out, nil
}

// submit submits a forward: the commands recorded ahead by the last Run where it read back,
// else new ones. After a forward that reads back it records the next one's while the GPU works;
// a failure there is left for the next Run to meet when it records again.
func (p *program) submit(readback bool) error {
	cb := p.next
	if readback {
		p.next = nil
	}
	if cb == nil || !readback {
		var err error
		if cb, err = p.commands(readback); err != nil {
			return err
		}
	}
	if err := p.b.dev.Queue().Submit(cb); err != nil {
		return err
	}
	if readback {
		p.next, _ = p.commands(true)
	}
	return nil
}

// commands records one forward: every step in one compute pass, then the copies of the outputs
// into the readback buffer when readback is set.
func (p *program) commands(readback bool) (*webgpu.CommandBuffer, error) {
	enc, err := p.b.dev.CreateCommandEncoder(p.b.label + " graph " + p.g.Name)
	if err != nil {
		return nil, err
	}
	if err := p.recordList(enc, p.forward, "forward"); err != nil {
		return nil, err
	}
	if readback {
		for _, r := range p.outputs {
			if err := enc.CopyBufferToBuffer(r.buf, r.off, p.readback, r.at, r.size); err != nil {
				return nil, err
			}
		}
	}
	return enc.Finish()
}

func (p *program) read() error {
	size := p.readback.Size()
	if err := p.readback.MapAsync(webgpu.MapRead, 0, size); err != nil {
		return err
	}
	ab, err := p.readback.MappedRange(0, size)
	if err == nil {
		jsutil.CopyBytesToGo(p.host, ab)
	}
	p.readback.Unmap()
	return err
}
