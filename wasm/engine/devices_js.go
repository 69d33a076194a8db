//go:build js && wasm

package engine

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
	"github.com/nibble-ml/nibble/wasm/backend/nn"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/stream"
	"github.com/nibble-ml/nibble/wasm/webgpu"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

func openURL(u string) stream.Opener { return stream.Fetch(u, stream.FetchOptions{}) }

// CacheName is the Cache API cache the bundle keeps quantized models in (one entry per file and
// format; see stream.CacheKey).
const CacheName = "nibble-quantized"

// openCache opens CacheName once: caches.open is a round trip through the browser, and an error
// (no Cache API outside a secure context) will not change during the page's life.
var openCache = sync.OnceValues(func() (stream.Cache, error) { return stream.BrowserCache(CacheName) })

// newBackend creates the named backend. "auto" takes WebGPU on a hardware adapter, else WebNN,
// else the CPU: on a software adapter (SwiftShader) WebGPU is an emulation on the CPU, and the
// choice must not pretend otherwise. Why a preferred backend failed is kept in the error of the
// one that ran (see Model.Notes). int8Activations gives a WebGPU backend its int8-activation
// GEMV (gpu.Options.Int8Activations); WebNN's int8 activations are the encoder's calibrated
// graphs (uselite.Encoder), the backend is the same.
func newBackend(name string, int8Activations bool) (backend.Backend, error) {
	gopt := gpu.Options{Label: "nibble", Int8Activations: int8Activations}
	switch name {
	case "cpu":
		return cpu.New(), nil
	case "webgpu":
		b, err := gpu.New(gopt)
		if err != nil {
			// No adapter, no device: what this browser cannot do (unless the error says more).
			return nil, fmt.Errorf("webgpu backend: %w", errs.Mark(err, errs.ErrUnsupported))
		}
		return b, nil
	case "webnn":
		b, err := nn.New(nn.Options{})
		if err != nil {
			return nil, fmt.Errorf("webnn backend: %w", errs.Mark(err, errs.ErrUnsupported))
		}
		return b, nil
	case BackendHybrid:
		return newHybrid()
	case "auto", "":
		var why []error
		if b, err := gpu.New(gopt); err != nil {
			why = append(why, fmt.Errorf("webgpu: %w", err))
		} else if b.AdapterInfo().IsFallbackAdapter {
			b.Close()
			why = append(why, errors.New("webgpu: software adapter, skipped"))
		} else {
			return b, nil
		}
		if b, err := nn.New(nn.Options{}); err == nil {
			return b, nil
		} else {
			why = append(why, fmt.Errorf("webnn: %w", err))
		}
		return autoCPU{cpu.New(), errors.Join(why...)}, nil
	}
	return nil, fmt.Errorf("%w: %w", errUnknownBackend(name), errs.ErrBadArgument)
}

// Probe measures what this browser offers. It never fails: what could not be measured is an
// Error string in the facts.
func Probe() *Devices {
	d := &Devices{CPU: cpuFacts()}
	d.WebGPU = probeWebGPU()
	d.WebNN = probeWebNN()
	return d
}

func probeWebGPU() (f WebGPUFacts) {
	a, err := webgpu.RequestAdapter(webgpu.AdapterOptions{})
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Available = true
	info := a.Info()
	f.Vendor, f.Architecture, f.Device, f.Description = info.Vendor, info.Architecture, info.Device, info.Description
	f.Software = info.IsFallbackAdapter
	f.SubgroupMinSize, f.SubgroupMaxSize = info.SubgroupMinSize, info.SubgroupMaxSize
	feats := a.Features()
	for k := range feats {
		f.Features = append(f.Features, k)
	}
	sort.Strings(f.Features)
	f.ShaderF16 = feats[webgpu.FeatureShaderF16]
	f.Subgroups = feats["subgroups"]
	f.TimestampQuery = feats["timestamp-query"]
	l := a.Limits()
	f.Limits = map[string]int64{
		"maxBufferSize":                     l.MaxBufferSize,
		"maxStorageBufferBindingSize":       l.MaxStorageBufferBindingSize,
		"maxComputeInvocationsPerWorkgroup": int64(l.MaxComputeInvocationsPerWorkgroup),
		"maxComputeWorkgroupStorageSize":    int64(l.MaxComputeWorkgroupStorageSize),
		"maxComputeWorkgroupsPerDimension":  int64(l.MaxComputeWorkgroupsPerDimension),
		"maxStorageBuffersPerShaderStage":   int64(l.MaxStorageBuffersPerShaderStage),
	}
	return f
}

func probeWebNN() (f WebNNFacts) {
	if !webnn.Available() {
		f.Error = webnn.ErrUnavailable.Error() + " (Chromium: " + webnn.Flag + ")"
		return f
	}
	ctx, err := webnn.CreateContext(webnn.ContextOptions{DeviceType: webnn.CPU})
	if err != nil {
		f.Error = err.Error()
		return f
	}
	defer ctx.Destroy()
	lim, err := ctx.OpSupportLimits()
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Available = true
	f.DeviceType = string(webnn.CPU)
	for _, t := range []webnn.DataType{"int4", "uint4", "int8", "uint8", "int32", "float16", "float32"} {
		if lim.Accepts("dequantizeLinear", "input", t, 3) {
			f.DequantizeLinear = append(f.DequantizeLinear, string(t))
		}
		if lim.Accepts("constant", "", t, 3) {
			f.Constants = append(f.Constants, string(t))
		}
	}
	f.Float16 = slices.Contains(f.Constants, "float16")
	f.Summary = lim.Summary("dequantizeLinear", "gemm", "matmul", "cast")
	return f
}

func wasmMemory() int64 { return stream.LinearMemoryBytes() }

// deviceKind gives the device-loss errors of the browser bindings their kind: the bindings
// predate wasm/errs and wrap only their own sentinels.
func deviceKind(err error) error {
	if errors.Is(err, webgpu.ErrDeviceLost) || errors.Is(err, webnn.ErrLost) {
		return errs.ErrDeviceLost
	}
	return errs.Kind(err)
}
