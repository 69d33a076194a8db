//go:build js && wasm && benchgpu

package main

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
)

// nibble-webgpu: the WebGPU backend with production options (f16 products only where the adapter
// has shader-f16, subgroups where present). Built only with -tags benchgpu, which tools/bench
// passes when wasm/backend/gpu is in the tree, so the page builds before that package lands.
func init() {
	var be *gpu.Backend
	backends["nibble-webgpu"] = func() (backend.Backend, error) {
		var err error
		be, err = gpu.New(gpu.Options{Label: "bench"})
		return be, err
	}
	describers = append(describers, func(w backend.Weight) (string, string, bool) {
		if be == nil || be.Name() != "webgpu" {
			return "", "", false
		}
		products := "f32"
		if be.ComputeF16() {
			products = "f16"
		}
		return fmt.Sprintf("webgpu wgsl %s, %s products", w.Format(), products), "", true
	})
}
