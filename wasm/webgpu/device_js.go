//go:build js && wasm

package webgpu

import (
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Device is GPUDevice. https://www.w3.org/TR/webgpu/#gpudevice
//
// Its methods are safe to call from several goroutines; the JavaScript side is single-threaded,
// and the Go state here (lost, uncaptured) is guarded by mu.
type Device struct {
	v     js.Value
	label string
	queue *Queue
	// Timeout bounds every await made through this device.
	Timeout time.Duration

	// lostReject rejects when device.lost resolves; every await races against it so that
	// nothing waits on a device that can no longer answer.
	lostReject js.Value

	mu         sync.Mutex
	lost       error
	uncaptured error
	// The callbacks live as long as the device: releasing one that JS may still call would
	// crash the program.
	onLost, onError js.Func
}

func newDevice(v js.Value, label string) *Device {
	d := &Device{v: v, label: label, Timeout: DefaultTimeout}
	d.queue = &Queue{v: v.Get("queue"), d: d}
	d.onLost = js.FuncOf(func(_ js.Value, args []js.Value) any {
		info := jsutil.Arg0(args)
		reason, msg := "unknown", ""
		if info.Truthy() {
			reason, msg = info.Get("reason").String(), info.Get("message").String()
		}
		err := fmt.Errorf("%w: %q: reason %s: %s", ErrDeviceLost, label, reason, msg)
		d.mu.Lock()
		d.lost = err
		d.mu.Unlock()
		return jsutil.Reject(jsutil.NewError(err.Error()))
	})
	d.lostReject = v.Get("lost").Call("then", d.onLost)
	// Handled here once so a lost device is never reported as an unhandled rejection.
	d.lostReject.Call("catch", js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	d.onError = js.FuncOf(func(_ js.Value, args []js.Value) any {
		e := jsutil.Arg0(args).Get("error")
		d.mu.Lock()
		if d.uncaptured == nil {
			d.uncaptured = fmt.Errorf("%w (uncaptured, device %q): %s", ErrValidation, label, e.Get("message").String())
		}
		d.mu.Unlock()
		return nil
	})
	v.Call("addEventListener", "uncapturederror", d.onError)
	return d
}

// Label returns the label the device was requested with.
func (d *Device) Label() string { return d.label }

// Queue returns the device's default queue.
func (d *Device) Queue() *Queue { return d.queue }

// Limits returns GPUDevice.limits: what was granted, not what the adapter could give.
func (d *Device) Limits() Limits { return readLimits(d.v.Get("limits")) }

// Features returns GPUDevice.features.
func (d *Device) Features() map[string]bool { return setToMap(d.v.Get("features")) }

// Err returns the loss of the device, if it was lost, else the first uncaptured validation
// error since the last call (clearing it). Every binding call checks it first.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lost != nil {
		return d.lost
	}
	err := d.uncaptured
	d.uncaptured = nil
	return err
}

func (d *Device) lostErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}

// Destroy calls GPUDevice.destroy; device.lost then resolves with reason "destroyed".
func (d *Device) Destroy() { d.v.Call("destroy") }

// await waits for p, bounded by d.Timeout and by the device being lost.
func (d *Device) await(what string, p js.Value) (js.Value, error) {
	if err := d.lostErr(); err != nil {
		return js.Undefined(), fmt.Errorf("%s: %w", what, err)
	}
	race := jsutil.PromiseClass.Call("race", []any{p, d.lostReject})
	v, err := jsutil.Await(race, d.Timeout)
	if err != nil {
		if lost := d.lostErr(); lost != nil {
			return js.Undefined(), fmt.Errorf("%s: %w", what, lost)
		}
		return js.Undefined(), fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// call is jsutil.Call behind a device-lost check, with the object label in the error.
func (d *Device) call(v js.Value, method, label string, args ...any) (js.Value, error) {
	if err := d.lostErr(); err != nil {
		return js.Undefined(), fmt.Errorf("%s %q: %w", method, label, err)
	}
	r, err := jsutil.Call(v, method, args...)
	if err != nil {
		return js.Undefined(), fmt.Errorf("webgpu: %s %q: %w", method, label, err)
	}
	return r, nil
}

// PushErrorScope calls GPUDevice.pushErrorScope ("validation", "out-of-memory" or "internal").
func (d *Device) PushErrorScope(filter string) error {
	_, err := d.call(d.v, "pushErrorScope", filter, filter)
	return err
}

// PopErrorScope pops the innermost scope and returns what it caught as an error wrapping
// ErrValidation (nil if nothing). what says which operation the scope covered.
func (d *Device) PopErrorScope(what string) error {
	p, err := d.call(d.v, "popErrorScope", what)
	if err != nil {
		return err
	}
	v, err := d.await("webgpu: popErrorScope "+what, p)
	if err != nil {
		return err
	}
	if v.IsNull() || v.IsUndefined() {
		return nil
	}
	return fmt.Errorf("%w in %s: %s", ErrValidation, what, v.Get("message").String())
}

// CreateBuffer calls GPUDevice.createBuffer. size is rounded up to 4 bytes, as writeBuffer and
// mapping require.
func (d *Device) CreateBuffer(label string, size int64, usage BufferUsage) (*Buffer, error) {
	size = (size + 3) &^ 3
	v, err := d.call(d.v, "createBuffer", label, map[string]any{"label": label, "size": float64(size), "usage": uint32(usage)})
	if err != nil {
		return nil, err
	}
	return &Buffer{v: v, d: d, label: label, size: size}, nil
}

// CreateCommandEncoder calls GPUDevice.createCommandEncoder.
func (d *Device) CreateCommandEncoder(label string) (*CommandEncoder, error) {
	v, err := d.call(d.v, "createCommandEncoder", label, map[string]any{"label": label})
	if err != nil {
		return nil, err
	}
	return &CommandEncoder{v: v, d: d, label: label}, nil
}

// CreateQuerySet creates a timestamp query set of count entries; the device must have been
// requested with FeatureTimestampQuery.
func (d *Device) CreateQuerySet(label string, count int) (*QuerySet, error) {
	if !d.Features()[FeatureTimestampQuery] {
		return nil, errors.New("webgpu: timestamp queries need the timestamp-query feature on the device")
	}
	v, err := d.call(d.v, "createQuerySet", label, map[string]any{"label": label, "type": "timestamp", "count": count})
	if err != nil {
		return nil, err
	}
	return &QuerySet{v: v, label: label, count: count}, nil
}
