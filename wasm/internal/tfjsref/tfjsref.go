package tfjsref

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// Version is the TF.js that package.json pins; Load refuses a page that got another.
const Version = "4.22.0"

// Backends are the TF.js backends SetBackend accepts: the ones nibble is checked and
// benchmarked against.
var Backends = []string{"cpu", "wasm", "webgpu"}

// Facts is what TF.js's current backend really is, for logs and benchmark tables.
type Facts struct {
	Version string // tf.version.tfjs
	Backend string // tf.getBackend()
	// WasmThreads is the wasm backend's thread count as it reports it: 1 unless the page is
	// cross-origin isolated (SharedArrayBuffer), whatever was asked for.
	WasmThreads         int
	WasmSIMD            bool
	CrossOriginIsolated bool
	Adapter             webgpu.AdapterInfo // webgpu backend only
}

func (f Facts) String() string {
	s := fmt.Sprintf("TF.js %s backend=%s crossOriginIsolated=%v", f.Version, f.Backend, f.CrossOriginIsolated)
	switch f.Backend {
	case "wasm":
		s += fmt.Sprintf(" threads=%d simd=%v", f.WasmThreads, f.WasmSIMD)
	case "webgpu":
		s += " adapter: " + f.Adapter.String()
	}
	return s
}
