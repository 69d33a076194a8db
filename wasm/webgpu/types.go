package webgpu

import (
	"errors"
	"fmt"
	"strings"
)

// BufferUsage is GPUBufferUsage, a bit set.
type BufferUsage uint32

// https://www.w3.org/TR/webgpu/#buffer-usage
const (
	BufferMapRead      BufferUsage = 0x0001
	BufferMapWrite     BufferUsage = 0x0002
	BufferCopySrc      BufferUsage = 0x0004
	BufferCopyDst      BufferUsage = 0x0008
	BufferUniform      BufferUsage = 0x0040
	BufferStorage      BufferUsage = 0x0080
	BufferIndirect     BufferUsage = 0x0100
	BufferQueryResolve BufferUsage = 0x0200
)

// MapMode is GPUMapMode.
type MapMode uint32

const (
	MapRead  MapMode = 1
	MapWrite MapMode = 2
)

// Feature names the kernels care about (https://www.w3.org/TR/webgpu/#feature-index).
const (
	FeatureShaderF16      = "shader-f16"
	FeatureSubgroups      = "subgroups"
	FeatureTimestampQuery = "timestamp-query"
)

// Limits are the GPUSupportedLimits the backend plans with. Sizes are int64: maxBufferSize
// passes 2³² on desktop GPUs.
type Limits struct {
	MaxBufferSize                     int64
	MaxStorageBufferBindingSize       int64
	MaxUniformBufferBindingSize       int64
	MaxStorageBuffersPerShaderStage   int
	MaxBindGroups                     int
	MinStorageBufferOffsetAlignment   int
	MinUniformBufferOffsetAlignment   int
	MaxComputeWorkgroupStorageSize    int
	MaxComputeInvocationsPerWorkgroup int
	MaxComputeWorkgroupSizeX          int
	MaxComputeWorkgroupSizeY          int
	MaxComputeWorkgroupsPerDimension  int
}

// AdapterInfo is GPUAdapterInfo. IsFallbackAdapter is true for software adapters (SwiftShader in
// Chromium): figures measured on them must never be reported as hardware figures.
type AdapterInfo struct {
	Vendor, Architecture, Device, Description string
	IsFallbackAdapter                         bool
	SubgroupMinSize, SubgroupMaxSize          int
}

func (i AdapterInfo) String() string {
	s := fmt.Sprintf("vendor=%q architecture=%q device=%q description=%q fallback=%v",
		i.Vendor, i.Architecture, i.Device, i.Description, i.IsFallbackAdapter)
	if i.SubgroupMaxSize > 0 {
		s += fmt.Sprintf(" subgroups=%d..%d", i.SubgroupMinSize, i.SubgroupMaxSize)
	}
	return s
}

var (
	// ErrNoWebGPU means navigator.gpu is missing: the browser was started without WebGPU.
	ErrNoWebGPU = errors.New("webgpu: navigator.gpu is undefined")
	// ErrNoAdapter means requestAdapter resolved to null: WebGPU exists but no adapter (not even
	// the software one) is available.
	ErrNoAdapter = errors.New("webgpu: requestAdapter returned null")
	// ErrDeviceLost is wrapped by every call made after the device was lost or destroyed.
	ErrDeviceLost = errors.New("webgpu: device lost")
	// ErrValidation is wrapped by errors that a validation error scope caught.
	ErrValidation = errors.New("webgpu: validation error")
)

// CompileMessage is one GPUCompilationMessage, with the line mapped back to the source file.
type CompileMessage struct {
	Type      string // "error", "warning", "info"
	File      string // the file the code came from, e.g. "shaders/gemv.wgsl"
	Line, Col int    // 1-based, in File (0 when the browser gave none)
	Text      string
}

func (m CompileMessage) String() string {
	return fmt.Sprintf("%s:%d:%d: %s: %s", m.File, m.Line, m.Col, m.Type, m.Text)
}

// CompileError is returned when a shader module or pipeline fails to build. Variant names the
// kernel variant so the failing combination can be reproduced without the browser.
type CompileError struct {
	Variant  string
	Messages []CompileMessage // errors first; empty when only the pipeline step failed
	Detail   string           // pipeline or validation message when there are no compile messages
}

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webgpu: shader variant %q does not build", e.Variant)
	for _, m := range e.Messages {
		if m.Type == "error" {
			b.WriteString(": ")
			b.WriteString(m.String())
		}
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Line is the file line of the first error message (0 if none).
func (e *CompileError) Line() int {
	for _, m := range e.Messages {
		if m.Type == "error" {
			return m.Line
		}
	}
	return 0
}

// ShaderSource is WGSL text plus what an error message needs to send a person to the right line
// of the right file: generated code is a header followed by one or more files.
type ShaderSource struct {
	// Variant names the kernel variant; it labels the module and the pipeline.
	Variant string
	Code    string
	Spans   []SourceSpan
}

// SourceSpan says that code lines [Start, Start+Lines) are lines 1… of File.
type SourceSpan struct {
	File         string
	Start, Lines int
}

// Locate maps a 1-based line of Code to a file and a line in it. Lines outside every span
// belong to the generated header.
func (s ShaderSource) Locate(line int) (file string, fileLine int) {
	for _, sp := range s.Spans {
		if line >= sp.Start && line < sp.Start+sp.Lines {
			return sp.File, line - sp.Start + 1
		}
	}
	return s.Variant + " (generated header)", line
}
