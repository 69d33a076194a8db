//go:build js && wasm

package webgpu

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// CreateComputePipeline is the one way nibble builds a shader module and a compute pipeline.
// Inside a validation error scope it creates the module, reads getCompilationInfo (which the
// browser would otherwise only log to the console), then builds the pipeline with
// createComputePipelineAsync (layout "auto"). Compile errors come back as a *CompileError naming
// the variant, the file and the line; pipeline and validation failures as a *CompileError with
// Detail. constants sets the module's override declarations.
// https://www.w3.org/TR/webgpu/#dom-gpushadermodule-getcompilationinfo
func (d *Device) CreateComputePipeline(src ShaderSource, entryPoint string, constants map[string]float64) (*ComputePipeline, error) {
	if err := d.lostErr(); err != nil {
		return nil, fmt.Errorf("webgpu: shader variant %q: %w", src.Variant, err)
	}
	if err := d.PushErrorScope("validation"); err != nil {
		return nil, err
	}
	popped := false
	pop := func() error {
		if popped {
			return nil
		}
		popped = true
		return d.PopErrorScope("shader variant " + src.Variant)
	}
	defer pop() // an early return must not leave the scope on the stack
	mod, err := d.call(d.v, "createShaderModule", src.Variant, map[string]any{"label": src.Variant, "code": src.Code})
	if err != nil {
		return nil, err
	}
	cerr := &CompileError{Variant: src.Variant}
	if p, err := jsutil.Call(mod, "getCompilationInfo"); err == nil {
		info, err := d.await(fmt.Sprintf("webgpu: getCompilationInfo %q", src.Variant), p)
		if err != nil {
			return nil, err
		}
		msgs := info.Get("messages")
		for i := range msgs.Length() {
			m := msgs.Index(i)
			cm := CompileMessage{Type: m.Get("type").String(), Text: m.Get("message").String()}
			if n := m.Get("lineNum"); n.Type() == js.TypeNumber && n.Int() > 0 {
				cm.File, cm.Line = src.Locate(n.Int())
				cm.Col = m.Get("linePos").Int()
			}
			if cm.Type == "error" {
				cerr.Messages = append([]CompileMessage{cm}, cerr.Messages...)
			} else {
				cerr.Messages = append(cerr.Messages, cm)
			}
		}
		if cerr.Line() > 0 {
			// The scope caught the same error in the browser's words; the messages say it better.
			pop()
			return nil, cerr
		}
	}
	compute := map[string]any{"module": mod, "entryPoint": entryPoint}
	if len(constants) > 0 {
		c := map[string]any{}
		for k, v := range constants {
			c[k] = v
		}
		compute["constants"] = c
	}
	p, err := d.call(d.v, "createComputePipelineAsync", src.Variant, map[string]any{
		"label": src.Variant, "layout": "auto", "compute": compute,
	})
	if err != nil {
		return nil, err
	}
	pv, err := d.await(fmt.Sprintf("webgpu: createComputePipelineAsync %q", src.Variant), p)
	if err != nil {
		if errors.Is(err, ErrDeviceLost) {
			return nil, err
		}
		cerr.Detail = err.Error()
		if perr := pop(); perr != nil {
			cerr.Detail += "; " + perr.Error()
		}
		return nil, cerr
	}
	if err := pop(); err != nil {
		if errors.Is(err, ErrDeviceLost) {
			return nil, err
		}
		cerr.Detail = err.Error()
		return nil, cerr
	}
	return &ComputePipeline{v: pv, d: d, label: src.Variant}, nil
}
