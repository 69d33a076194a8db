//go:build js && wasm

package main

import (
	"fmt"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
)

// nibble-webgpu: the WebGPU backend with production options (f16 products only where the adapter
// has shader-f16, subgroups where present).
// The await bound is raised from the default: a 128-row GEMM on SwiftShader on a loaded 2-core
// machine took longer than a minute, and a benchmark wants the figure, not a timeout.
func init() {
	var be *gpu.Backend
	backends["nibble-webgpu"] = func() (backend.Backend, error) {
		var err error
		be, err = gpu.New(gpu.Options{Label: "bench", Timeout: 10 * time.Minute})
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
