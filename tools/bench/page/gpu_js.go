//go:build js && wasm && benchgpu

package main

import (
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
)

// nibble-webgpu: the WebGPU backend with production options (f16 products only where the adapter
// has shader-f16, subgroups where present). Built only with -tags benchgpu, which tools/bench
// passes when wasm/backend/gpu is in the tree, so the page builds before that package lands.
func init() {
	backends["nibble-webgpu"] = func() (backend.Backend, error) { return gpu.New(gpu.Options{Label: "bench"}) }
}
