package engine

import (
	"fmt"
	"runtime"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
)

// Devices are the facts Probe measured in this browser. Field names are the JS API's.
type Devices struct {
	WebGPU WebGPUFacts `json:"webgpu"`
	WebNN  WebNNFacts  `json:"webnn"`
	CPU    CPUFacts    `json:"cpu"`
}

// WebGPUFacts come from navigator.gpu.requestAdapter(): GPUAdapterInfo, features and limits.
type WebGPUFacts struct {
	Available    bool   `json:"available"`
	Error        string `json:"error,omitempty"`
	Vendor       string `json:"vendor"`
	Architecture string `json:"architecture"`
	Device       string `json:"device"`
	Description  string `json:"description"`
	// Software is GPUAdapterInfo.isFallbackAdapter: a CPU emulation (SwiftShader, lavapipe).
	Software        bool             `json:"software"`
	ShaderF16       bool             `json:"shaderF16"`
	Subgroups       bool             `json:"subgroups"`
	TimestampQuery  bool             `json:"timestampQuery"`
	SubgroupMinSize int              `json:"subgroupMinSize"`
	SubgroupMaxSize int              `json:"subgroupMaxSize"`
	Features        []string         `json:"features"`
	Limits          map[string]int64 `json:"limits"`
}

// WebNNFacts come from an MLContext's opSupportLimits().
type WebNNFacts struct {
	Available  bool   `json:"available"`
	Error      string `json:"error,omitempty"`
	DeviceType string `json:"deviceType"`
	// DequantizeLinear lists the input types dequantizeLinear accepts (rank 3, as the backend's
	// graphs use it); Constants the types a constant operand may have.
	DequantizeLinear []string `json:"dequantizeLinear"`
	Constants        []string `json:"constants"`
	Float16          bool     `json:"float16"`
	Summary          []string `json:"summary"`
}

// CPUFacts describe the Go side.
type CPUFacts struct {
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"goVersion"`
}

func cpuFacts() CPUFacts {
	return CPUFacts{GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version()}
}

// Backends are the names NewBackend accepts.
var Backends = []string{"auto", "webgpu", "webnn", "cpu", BackendHybrid}

// NewBackend creates a backend by name: "webgpu", "webnn", "cpu", "hybrid" or "auto", each with
// exact activations (Load gives a model with Options.Int8Activations its own WebGPU backend
// with int8 activations).
func NewBackend(name string) (backend.Backend, error) { return newBackend(name, false) }

func errUnknownBackend(name string) error {
	return fmt.Errorf("backend %q: want one of %v", name, Backends)
}

// autoCPU is the CPU backend that "auto" fell back to, carrying why the others were not used.
// It embeds the concrete *cpu.Backend, not the backend.Backend interface: the optional
// interfaces (backend.Compiler for whole graphs, StateAllocator, …) are found by type assertion,
// and an embedded interface would hide them, leaving a browser without WebGPU and WebNN (WebKit)
// unable to embed.
type autoCPU struct {
	*cpu.Backend
	why error
}

// FallbackReason says why "auto" ended on a backend other than its first choice.
func FallbackReason(b backend.Backend) error {
	if a, ok := b.(autoCPU); ok {
		return a.why
	}
	return nil
}
