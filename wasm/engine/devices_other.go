//go:build !(js && wasm)

package engine

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/stream"
)

func openURL(u string) stream.Opener { return stream.HTTP(nil, u) }

// newBackend natively knows only the CPU: WebGPU and WebNN live in the browser (a hybrid
// load holds its weights on the cpu alone); int8Activations changes nothing on the cpu.
func newBackend(name string, int8Activations bool) (backend.Backend, error) {
	switch name {
	case "cpu", "auto", "":
		return cpu.New(), nil
	case BackendHybrid:
		return newHybrid()
	case "webgpu", "webnn":
		return nil, fmt.Errorf("%s exists only in the browser: %w", name, errs.ErrUnsupported)
	}
	return nil, fmt.Errorf("%w: %w", errUnknownBackend(name), errs.ErrBadArgument)
}

// Probe natively reports no browser APIs.
func Probe() *Devices {
	return &Devices{
		WebGPU: WebGPUFacts{Error: "not in a browser"},
		WebNN:  WebNNFacts{Error: "not in a browser"},
		CPU:    cpuFacts(),
	}
}

func wasmMemory() int64 { return 0 }

// memCache is the native cache: a native program that loads a model twice reads it back.
var memCache stream.MemCache

func openCache() (stream.Cache, error) { return &memCache, nil }

// deviceKind is errs.Kind: natively no device can be lost.
func deviceKind(err error) error { return errs.Kind(err) }
