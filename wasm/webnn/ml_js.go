//go:build js && wasm

package webnn

import (
	"errors"
	"fmt"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Timeouts bound every promise this package awaits. WebNN that is compiled in but not enabled
// for the platform has been seen to leave promises pending, and a test must fail, not hang.
var (
	ContextTimeout = 15 * time.Second
	// BuildTimeout covers graph compilation, which copies every constant: a 4096×11008 weight
	// takes a few hundred milliseconds on TFLite CPU, so this is generous on purpose.
	BuildTimeout  = 2 * time.Minute
	TensorTimeout = 10 * time.Second
	// ReadTimeout covers readTensor, which waits for every dispatch queued before it.
	ReadTimeout = time.Minute
)

// ML is navigator.ml, looked up once per call so tests can remove it.
func ml() (js.Value, error) {
	nav := js.Global().Get("navigator")
	if !nav.Truthy() {
		return js.Value{}, fmt.Errorf("%w: no navigator (not a browser or worker?)", ErrUnavailable)
	}
	m := nav.Get("ml")
	if !m.Truthy() {
		return js.Value{}, fmt.Errorf("%w: this browser does not expose WebNN; in Chromium start with %s", ErrUnavailable, Flag)
	}
	return m, nil
}

// Available reports whether navigator.ml exists. It does not mean a context can be created.
func Available() bool { _, err := ml(); return err == nil }

// ContextOptions are MLContextOptions (https://www.w3.org/TR/webnn/#dictdef-mlcontextoptions).
type ContextOptions struct {
	DeviceType DeviceType // "" lets the browser choose
	// PowerPreference is "default", "high-performance" or "low-power"; "" omits it.
	PowerPreference string
}

func (o ContextOptions) toJS() js.Value {
	d := jsutil.ObjectClass.New()
	if o.DeviceType != "" {
		d.Set("deviceType", string(o.DeviceType))
	}
	if o.PowerPreference != "" {
		d.Set("powerPreference", o.PowerPreference)
	}
	return d
}

// CreateContext calls navigator.ml.createContext(options)
// (https://www.w3.org/TR/webnn/#api-ml-createcontext).
func CreateContext(o ContextOptions) (*Context, error) {
	return createContext(o.toJS(), "deviceType "+string(o.DeviceType))
}

// CreateContextFromGPU calls navigator.ml.createContext(gpuDevice) so WebNN and WebGPU share a
// device and MLTensors can be exported to GPUBuffers (hybrid use). gpuDevice is a GPUDevice.
func CreateContextFromGPU(gpuDevice js.Value) (*Context, error) {
	if !gpuDevice.Truthy() {
		return nil, fmt.Errorf("%w: nil GPUDevice", ErrContext)
	}
	return createContext(gpuDevice, "GPUDevice")
}

func createContext(arg js.Value, what string) (*Context, error) {
	m, err := ml()
	if err != nil {
		return nil, err
	}
	p, err := jsutil.Call(m, "createContext", arg)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %w", ErrContext, what, err)
	}
	v, err := jsutil.Await(p, ContextTimeout)
	if err != nil {
		hint := ""
		if errors.Is(err, jsutil.ErrTimeout) {
			hint = "; WebNN may be compiled in but disabled: start Chromium with " + Flag
		}
		return nil, fmt.Errorf("%w (%s): %w%s", ErrContext, what, err, hint)
	}
	c := &Context{v: v, what: what, lost: make(chan struct{})}
	c.watchLost()
	return c, nil
}
