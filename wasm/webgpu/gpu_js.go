//go:build js && wasm

package webgpu

import (
	"fmt"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// DefaultTimeout bounds every await unless a Device says otherwise. Software adapters compile
// large shaders slowly; a minute leaves room for that and still ends a hang.
const DefaultTimeout = time.Minute

// AdapterOptions is GPURequestAdapterOptions.
type AdapterOptions struct {
	PowerPreference      string // "", "low-power", "high-performance"
	ForceFallbackAdapter bool
}

// RequestAdapter calls navigator.gpu.requestAdapter.
// https://www.w3.org/TR/webgpu/#dom-gpu-requestadapter
func RequestAdapter(opt AdapterOptions) (*Adapter, error) {
	nav := js.Global().Get("navigator")
	if !nav.Truthy() || !nav.Get("gpu").Truthy() {
		return nil, ErrNoWebGPU
	}
	o := map[string]any{}
	if opt.PowerPreference != "" {
		o["powerPreference"] = opt.PowerPreference
	}
	if opt.ForceFallbackAdapter {
		o["forceFallbackAdapter"] = true
	}
	p, err := jsutil.Call(nav.Get("gpu"), "requestAdapter", o)
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestAdapter: %w", err)
	}
	v, err := jsutil.Await(p, DefaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestAdapter: %w", err)
	}
	if v.IsNull() || v.IsUndefined() {
		return nil, ErrNoAdapter
	}
	return &Adapter{v: v}, nil
}

// WGSLLanguageFeatures returns navigator.gpu.wgslLanguageFeatures.
func WGSLLanguageFeatures() map[string]bool {
	return setToMap(js.Global().Get("navigator").Get("gpu").Get("wgslLanguageFeatures"))
}

// setToMap reads a JS Set-like (GPUSupportedFeatures, WGSLLanguageFeatures) in one call.
func setToMap(s js.Value) map[string]bool {
	m := map[string]bool{}
	if !s.Truthy() {
		return m
	}
	arr := js.Global().Get("Array").Call("from", s)
	for i := range arr.Length() {
		m[arr.Index(i).String()] = true
	}
	return m
}
