//go:build js && wasm

package gpu

import (
	"context"
	"errors"
	"fmt"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
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
	if err := p.lockReady(ctx, in); err != nil {
		return nil, err
	}
	b := p.b
	defer b.mu.Unlock()
	p.runs++
	q := b.dev.Queue()
	if err := p.writeInputs(in, -1); err != nil {
		return nil, err
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
	return p.outputTensors(), nil
}

// lockReady checks that a run of in can start and takes b.mu, which it holds on success only.
func (p *program) lockReady(ctx context.Context, in []graph.Tensor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.g.CheckInputs(in); err != nil {
		return err
	}
	p.b.mu.Lock()
	err := p.checkStates(in)
	switch {
	case err != nil:
	case p.released:
		err = errors.New("program released")
	case p.b.closed:
		err = errors.New("backend closed")
	default:
		err = p.b.dev.Err()
	}
	if err != nil {
		p.b.mu.Unlock()
	}
	return err
}

// writeInputs queues the writes of in, all but input skip (-1: none), through the staging array.
func (p *program) writeInputs(in []graph.Tensor, skip int) error {
	q := p.b.dev.Queue()
	for i, r := range p.inputs {
		if r.size == 0 || i == skip {
			continue
		}
		data := f32bytes(in[i].F32)
		if in[i].I32 != nil {
			data = i32bytes(in[i].I32)
		}
		js.CopyBytesToJS(p.stage, data)
		if err := q.WriteBuffer(r.buf, r.off, p.stage, 0, r.size); err != nil {
			return err
		}
	}
	return nil
}

// outputTensors are the outputs in p.host, the readback's bytes, as tensors of their types.
func (p *program) outputTensors() []graph.Tensor {
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
	return out
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
	var ts *webgpu.TimestampWrites
	if !readback {
		ts = p.b.passStamps.take()
	}
	if err := p.recordList(enc, p.forward, "forward", ts); err != nil {
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
	return mapCopy(p.readback, p.readback.Size(), p.host)
}

var _ backend.Chainer = (*program)(nil)

// passStamps hands out pairs of timestamp queries to the forwards Queue records (the
// benchmarks' view of a chain on the GPU: each pass's time, and the time between passes); nil,
// and once its queries are used up, it hands out none.
type passStamps struct {
	qs         *webgpu.QuerySet
	used, size int
}

func (s *passStamps) take() *webgpu.TimestampWrites {
	if s == nil || s.used+2 > s.size {
		return nil
	}
	s.used += 2
	return &webgpu.TimestampWrites{QuerySet: s.qs, Beginning: s.used - 2, End: s.used - 1}
}

// chain is what Queue keeps per program: readback buffers (one per run in flight, reused once
// waited for) and the next queued forward's commands, recorded while the GPU works.
type chain struct {
	free []*webgpu.Buffer
	all  []*webgpu.Buffer
	next *webgpu.CommandBuffer
	// carry holds the last queued run's outputs (the readback's layout) for a later run's
	// feed: the output's own place may be overwritten by the next run's input writes, which the
	// queue orders before that run's commands, the feed's copy included.
	carry *webgpu.Buffer
	spent queueTimes
}

// queueTimes add up where Queue's host time goes (the benchmark reports them per token): the
// input writes, the feed's and the readback's copies, the submit, the recording of the next
// forward, and all of Queue.
type queueTimes struct {
	writes, copies, submit, record, all time.Duration
}

func (c *chain) destroy() {
	for _, buf := range append(c.all, c.carry) {
		buf.Destroy()
	}
	c.free, c.all, c.next, c.carry = nil, nil, nil, nil
}

// queued is a run Queue submitted; done receives its readback's mapping.
type queued struct {
	p    *program
	run  uint64 // p.runs when it was submitted
	buf  *webgpu.Buffer
	done chan error
	// waited is set by the first Wait (which alone receives from done), under b.mu.
	waited bool
}

// Queue writes in and submits a run without waiting for it (backend.Chainer): the fed input
// copied on the device first, the forward recorded ahead by the last Queue, then the outputs
// copied into a readback buffer of this run's own (which a goroutine maps while the host goes
// on) and into the carry a later feed reads. Its validation errors surface at Wait, through
// the device's uncaptured errors: an error scope popped here would make every run wait for the
// GPU process.
func (p *program) Queue(ctx context.Context, in []graph.Tensor, feed backend.Feed) (backend.Queued, error) {
	q, err := p.queue(ctx, in, feed)
	if err != nil {
		return nil, fmt.Errorf("gpu queue %q: %w", p.g.Name, err)
	}
	return q, nil
}

func (p *program) queue(ctx context.Context, in []graph.Tensor, feed backend.Feed) (*queued, error) {
	t0 := time.Now()
	if err := p.lockReady(ctx, in); err != nil {
		return nil, err
	}
	b := p.b
	defer b.mu.Unlock()
	c := &p.chain
	defer func() { c.spent.all += time.Since(t0) }()
	skip := -1
	var src, dst ioRange
	if feed.From != nil {
		var err error
		if src, dst, err = p.feedRanges(feed); err != nil {
			return nil, err
		}
		skip = feed.Input
	}
	tw := time.Now()
	if err := p.writeInputs(in, skip); err != nil {
		return nil, err
	}
	c.spent.writes += time.Since(tw)
	var buf *webgpu.Buffer
	if n := len(c.free); n > 0 {
		buf, c.free = c.free[n-1], c.free[:n-1]
	} else {
		var err error
		if buf, err = b.dev.CreateBuffer(p.b.label+" graph "+p.g.Name+" queued readback", max(int64(len(p.host)), 4), webgpu.BufferMapRead|webgpu.BufferCopyDst); err != nil {
			return nil, err
		}
		c.all = append(c.all, buf)
	}
	fwd := c.next
	c.next = nil
	if fwd == nil {
		var err error
		if fwd, err = p.commands(false); err != nil {
			return nil, err
		}
	}
	tc := time.Now()
	pre, post, err := p.copies(src, dst, buf)
	c.spent.copies += time.Since(tc)
	if err != nil {
		return nil, err
	}
	cbs := []*webgpu.CommandBuffer{fwd, post}
	if pre != nil {
		cbs = []*webgpu.CommandBuffer{pre, fwd, post}
	}
	ts := time.Now()
	if err := b.dev.Queue().Submit(cbs...); err != nil {
		return nil, err
	}
	c.spent.submit += time.Since(ts)
	p.runs++
	r := &queued{p: p, run: p.runs, buf: buf, done: make(chan error, 1)}
	// Mapped by a goroutine: it asks as soon as this one blocks (at the latest when the host
	// waits for an earlier run), and the mapping resolves when the GPU is done, host busy or not.
	go func() { r.done <- buf.MapAsync(webgpu.MapRead, 0, buf.Size()) }()
	tr := time.Now()
	c.next, _ = p.commands(false) // a failure is met again by the next Queue
	c.spent.record += time.Since(tr)
	return r, nil
}

// feedRanges are where feed's output is read (in its program's carry) and its input written,
// checked to match.
func (p *program) feedRanges(feed backend.Feed) (src, dst ioRange, err error) {
	from, ok := feed.From.(*queued)
	switch {
	case !ok || from.p.b != p.b:
		return src, dst, errors.New("feed: the run it names was not queued on this backend")
	case from.p.released:
		return src, dst, errors.New("feed: the program of the run it names was released")
	case from.run != from.p.runs:
		return src, dst, fmt.Errorf("feed: %q ran again after the run it names: its outputs were overwritten", from.p.g.Name)
	case feed.Output < 0 || feed.Output >= len(from.p.outputs) || feed.Input < 0 || feed.Input >= len(p.inputs):
		return src, dst, fmt.Errorf("feed: output %d of %q or input %d of %q does not exist", feed.Output, from.p.g.Name, feed.Input, p.g.Name)
	}
	on := &from.p.g.Nodes[from.p.g.Outputs[feed.Output]]
	in := &p.g.Nodes[p.g.Inputs[feed.Input]]
	if on.Shape.Size() != in.Shape.Size() || on.DType != in.DType {
		return src, dst, fmt.Errorf("%w: feed: output %d of %q is %s %s, input %q of %q is %s %s", graph.ErrShape, feed.Output, from.p.g.Name, on.Shape, on.DType, in.Attr.Name, p.g.Name, in.Shape, in.DType)
	}
	r := from.p.outputs[feed.Output]
	return ioRange{buf: from.p.chain.carry, off: r.at, size: r.size}, p.inputs[feed.Input], nil
}

// copies records the feed's copy (nil when there is none) and the outputs' copies into buf
// and into the chain's carry.
func (p *program) copies(src, dst ioRange, buf *webgpu.Buffer) (pre, post *webgpu.CommandBuffer, err error) {
	d, c := p.b.dev, &p.chain
	if dst.size > 0 {
		enc, err := d.CreateCommandEncoder(p.b.label + " graph " + p.g.Name + " feed")
		if err != nil {
			return nil, nil, err
		}
		if err := enc.CopyBufferToBuffer(src.buf, src.off, dst.buf, dst.off, dst.size); err != nil {
			return nil, nil, err
		}
		if pre, err = enc.Finish(); err != nil {
			return nil, nil, err
		}
	}
	if c.carry == nil {
		if c.carry, err = d.CreateBuffer(p.b.label+" graph "+p.g.Name+" carry", buf.Size(), webgpu.BufferCopySrc|webgpu.BufferCopyDst); err != nil {
			return nil, nil, err
		}
	}
	enc, err := d.CreateCommandEncoder(p.b.label + " graph " + p.g.Name + " readback")
	if err != nil {
		return nil, nil, err
	}
	for _, r := range p.outputs {
		for _, to := range []*webgpu.Buffer{buf, c.carry} {
			if err := enc.CopyBufferToBuffer(r.buf, r.off, to, r.at, r.size); err != nil {
				return nil, nil, err
			}
		}
	}
	post, err = enc.Finish()
	return pre, post, err
}

// Wait waits for the run's readback and returns its outputs (once: a second Wait is an error);
// the readback buffer then serves a later Queue. When ctx ends first, the buffer is returned
// once its mapping settles.
func (r *queued) Wait(ctx context.Context) ([]graph.Tensor, error) {
	p := r.p
	p.b.mu.Lock()
	again := r.waited
	r.waited = true
	p.b.mu.Unlock()
	if again {
		return nil, fmt.Errorf("gpu wait %q: this run was waited for already", p.g.Name)
	}
	var err error
	select {
	case err = <-r.done:
	case <-ctx.Done():
		go func() { r.finish(<-r.done) }()
		return nil, fmt.Errorf("gpu wait %q: %w", p.g.Name, context.Cause(ctx))
	}
	out, err := r.finish(err)
	if err != nil {
		return nil, fmt.Errorf("gpu wait %q: %w", p.g.Name, err)
	}
	return out, nil
}

// finish reads the mapped buffer (when mapErr is nil), unmaps it and gives it back.
func (r *queued) finish(mapErr error) ([]graph.Tensor, error) {
	p := r.p
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	if p.released {
		return nil, errors.New("program released")
	}
	err := mapErr
	if err == nil {
		var ab js.Value
		if ab, err = r.buf.MappedRange(0, r.buf.Size()); err == nil {
			jsutil.CopyBytesToGo(p.host, ab)
		}
		r.buf.Unmap()
	}
	if err == nil {
		err = p.b.dev.Err()
	}
	if mapErr == nil {
		p.chain.free = append(p.chain.free, r.buf)
	}
	if err != nil {
		return nil, err
	}
	return p.outputTensors(), nil
}
