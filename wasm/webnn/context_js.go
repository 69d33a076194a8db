//go:build js && wasm

package webnn

import (
	"fmt"
	"sync"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Context is an MLContext (https://www.w3.org/TR/webnn/#api-mlcontext).
type Context struct {
	v    js.Value
	what string // how it was created, for errors

	mu      sync.Mutex
	lostMsg string
	lost    chan struct{}
	limits  *Limits
}

// JS returns the underlying MLContext.
func (c *Context) JS() js.Value { return c.v }

func (c *Context) watchLost() {
	lost := c.v.Get("lost")
	if !lost.Truthy() {
		return
	}
	go func() {
		// No timeout: lost settles only when the context dies, which may be never.
		info, err := jsutil.Await(lost, 0)
		msg := "lost"
		if err != nil {
			msg = err.Error()
		} else if info.Type() == js.TypeObject && info.Get("message").Type() == js.TypeString {
			msg = info.Get("message").String()
		}
		c.mu.Lock()
		c.lostMsg = msg
		c.mu.Unlock()
		close(c.lost)
	}()
}

// Lost is closed when the context is lost or destroyed (MLContext.lost); see Err.
func (c *Context) Lost() <-chan struct{} { return c.lost }

// Err returns an error wrapping ErrLost once the context is lost, else nil.
func (c *Context) Err() error {
	select {
	case <-c.lost:
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("%w (%s): %s", ErrLost, c.what, c.lostMsg)
	default:
		return nil
	}
}

// OpSupportLimits returns what this context's ops accept, parsed once
// (https://www.w3.org/TR/webnn/#api-mlcontext-opsupportlimits).
func (c *Context) OpSupportLimits() (*Limits, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limits != nil {
		return c.limits, nil
	}
	v, err := jsutil.Call(c.v, "opSupportLimits")
	if err != nil {
		return nil, fmt.Errorf("webnn: opSupportLimits: %w", err)
	}
	s, err := jsutil.Call(js.Global().Get("JSON"), "stringify", v)
	if err != nil {
		return nil, fmt.Errorf("webnn: opSupportLimits: %w", err)
	}
	l, err := ParseLimits([]byte(s.String()))
	if err != nil {
		return nil, err
	}
	c.limits = l
	return l, nil
}

// TensorUsage says what a tensor may be used for (MLTensorDescriptor readable/writable).
type TensorUsage struct{ Readable, Writable bool }

// CreateTensor allocates an MLTensor (https://www.w3.org/TR/webnn/#api-mlcontext-createtensor).
func (c *Context) CreateTensor(label string, d Descriptor, u TensorUsage) (*Tensor, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	desc := d.toJS(label)
	desc.Set("readable", u.Readable)
	desc.Set("writable", u.Writable)
	p, err := jsutil.Call(c.v, "createTensor", desc)
	if err == nil {
		var v js.Value
		if v, err = jsutil.Await(p, TensorTimeout); err == nil {
			return &Tensor{v: v, Label: label, Desc: d}, nil
		}
	}
	return nil, fmt.Errorf("webnn: createTensor %q %v: %w", label, d, err)
}

// WriteTensor queues a copy of src (an ArrayBuffer or view of exactly the tensor's byte
// length) into t (https://www.w3.org/TR/webnn/#api-mlcontext-writetensor).
func (c *Context) WriteTensor(t *Tensor, src js.Value) error {
	if _, err := jsutil.Call(c.v, "writeTensor", t.v, src); err != nil {
		return fmt.Errorf("webnn: writeTensor %q: %w", t.Label, err)
	}
	return nil
}

// ReadTensorInto waits for t's contents and copies them into dst, an ArrayBuffer or view of the
// tensor's byte length (https://www.w3.org/TR/webnn/#api-mlcontext-readtensor-view). Reusing
// dst avoids one allocation per read.
func (c *Context) ReadTensorInto(t *Tensor, dst js.Value) error {
	p, err := jsutil.Call(c.v, "readTensor", t.v, dst)
	if err == nil {
		_, err = jsutil.Await(p, ReadTimeout)
	}
	if err != nil {
		if lerr := c.Err(); lerr != nil {
			err = fmt.Errorf("%w; %w", err, lerr)
		}
		return fmt.Errorf("webnn: readTensor %q: %w", t.Label, err)
	}
	return nil
}

// Dispatch queues one execution of g (https://www.w3.org/TR/webnn/#api-mlcontext-dispatch).
// It returns at once; a following ReadTensorInto waits for it.
func (c *Context) Dispatch(g *Graph, inputs, outputs map[string]*Tensor) error {
	if err := c.Err(); err != nil {
		return err
	}
	if _, err := jsutil.Call(c.v, "dispatch", g.v, tensorMap(inputs), tensorMap(outputs)); err != nil {
		return fmt.Errorf("webnn: dispatch %q: %w", g.Label, err)
	}
	return nil
}

func tensorMap(m map[string]*Tensor) js.Value {
	o := jsutil.ObjectClass.New()
	for k, t := range m {
		o.Set(k, t.v)
	}
	return o
}

// Destroy releases the context and everything built on it
// (https://www.w3.org/TR/webnn/#api-mlcontext-destroy).
func (c *Context) Destroy() {
	_, _ = jsutil.Call(c.v, "destroy")
}

// Tensor is an MLTensor (https://www.w3.org/TR/webnn/#api-mltensor).
type Tensor struct {
	v     js.Value
	Label string
	Desc  Descriptor
}

// JS returns the underlying MLTensor.
func (t *Tensor) JS() js.Value { return t.v }

// Destroy frees the tensor's memory now instead of at garbage collection.
func (t *Tensor) Destroy() {
	if t != nil {
		_, _ = jsutil.Call(t.v, "destroy")
	}
}

// Graph is a compiled MLGraph (https://www.w3.org/TR/webnn/#api-mlgraph).
type Graph struct {
	v     js.Value
	Label string
}

// Destroy frees the compiled graph and its constants.
func (g *Graph) Destroy() {
	if g != nil {
		_, _ = jsutil.Call(g.v, "destroy")
	}
}

func (d Descriptor) toJS(label string) js.Value {
	o := jsutil.ObjectClass.New()
	o.Set("dataType", string(d.DataType))
	shape := make([]any, len(d.Shape))
	for i, s := range d.Shape {
		shape[i] = s
	}
	o.Set("shape", shape)
	if label != "" {
		o.Set("label", label)
	}
	return o
}
