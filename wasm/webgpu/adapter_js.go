//go:build js && wasm

package webgpu

import (
	"fmt"
	"sort"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Adapter is GPUAdapter. https://www.w3.org/TR/webgpu/#gpuadapter
type Adapter struct{ v js.Value }

// Info returns GPUAdapter.info (isFallbackAdapter lives there since Chrome 136; older browsers
// kept it on the adapter, which is read as a fallback).
func (a *Adapter) Info() AdapterInfo {
	i := a.v.Get("info")
	str := func(v js.Value, k string) string {
		if x := v.Get(k); x.Type() == js.TypeString {
			return x.String()
		}
		return ""
	}
	num := func(v js.Value, k string) int {
		if x := v.Get(k); x.Type() == js.TypeNumber {
			return x.Int()
		}
		return 0
	}
	info := AdapterInfo{}
	if i.Truthy() {
		info = AdapterInfo{
			Vendor: str(i, "vendor"), Architecture: str(i, "architecture"),
			Device: str(i, "device"), Description: str(i, "description"),
			SubgroupMinSize: num(i, "subgroupMinSize"), SubgroupMaxSize: num(i, "subgroupMaxSize"),
		}
		info.IsFallbackAdapter = i.Get("isFallbackAdapter").Truthy()
	}
	if a.v.Get("isFallbackAdapter").Truthy() {
		info.IsFallbackAdapter = true
	}
	return info
}

// Features returns GPUAdapter.features as a set.
func (a *Adapter) Features() map[string]bool { return setToMap(a.v.Get("features")) }

// Limits returns GPUAdapter.limits.
func (a *Adapter) Limits() Limits { return readLimits(a.v.Get("limits")) }

// DeviceDescriptor is GPUDeviceDescriptor.
type DeviceDescriptor struct {
	Label            string
	RequiredFeatures []string
	// RequiredLimits by WebGPU name, e.g. "maxStorageBufferBindingSize".
	RequiredLimits map[string]int64
}

// RequestDevice calls GPUAdapter.requestDevice and starts watching device.lost.
// https://www.w3.org/TR/webgpu/#dom-gpuadapter-requestdevice
func (a *Adapter) RequestDevice(desc DeviceDescriptor) (*Device, error) {
	feats := make([]any, len(desc.RequiredFeatures))
	for i, f := range desc.RequiredFeatures {
		feats[i] = f
	}
	lim := map[string]any{}
	for k, v := range desc.RequiredLimits {
		lim[k] = float64(v)
	}
	d := map[string]any{
		"label":            desc.Label,
		"requiredFeatures": feats,
		"requiredLimits":   lim,
		"defaultQueue":     map[string]any{"label": desc.Label + " queue"},
	}
	p, err := jsutil.Call(a.v, "requestDevice", d)
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestDevice %q: %w", desc.Label, err)
	}
	v, err := jsutil.Await(p, DefaultTimeout)
	if err != nil {
		return nil, fmt.Errorf("webgpu: requestDevice %q (features %v, limits %v): %w", desc.Label, desc.RequiredFeatures, desc.RequiredLimits, err)
	}
	return newDevice(v, desc.Label), nil
}

// limitNames is the one place that maps WebGPU limit names to Limits fields.
func limitNames(l *Limits) map[string]any {
	return map[string]any{
		"maxBufferSize":                     &l.MaxBufferSize,
		"maxStorageBufferBindingSize":       &l.MaxStorageBufferBindingSize,
		"maxUniformBufferBindingSize":       &l.MaxUniformBufferBindingSize,
		"maxStorageBuffersPerShaderStage":   &l.MaxStorageBuffersPerShaderStage,
		"maxBindGroups":                     &l.MaxBindGroups,
		"minStorageBufferOffsetAlignment":   &l.MinStorageBufferOffsetAlignment,
		"minUniformBufferOffsetAlignment":   &l.MinUniformBufferOffsetAlignment,
		"maxComputeWorkgroupStorageSize":    &l.MaxComputeWorkgroupStorageSize,
		"maxComputeInvocationsPerWorkgroup": &l.MaxComputeInvocationsPerWorkgroup,
		"maxComputeWorkgroupSizeX":          &l.MaxComputeWorkgroupSizeX,
		"maxComputeWorkgroupSizeY":          &l.MaxComputeWorkgroupSizeY,
		"maxComputeWorkgroupsPerDimension":  &l.MaxComputeWorkgroupsPerDimension,
	}
}

func readLimits(v js.Value) Limits {
	var l Limits
	names := limitNames(&l)
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x := v.Get(k)
		if x.Type() != js.TypeNumber {
			continue
		}
		switch p := names[k].(type) {
		case *int64:
			*p = int64(x.Float())
		case *int:
			*p = x.Int()
		}
	}
	return l
}
