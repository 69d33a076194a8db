//go:build js && wasm

package gpu

import (
	"fmt"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// boundMatMul is x·wᵀ bound to buffer ranges its caller owns, built once and recorded into any
// number of compute passes. MatMul owns its x, y and params buffers and submits alone; a graph
// program records many matmuls into one pass over its own arena, so it needs the dispatches
// without the buffers.
type boundMatMul struct {
	key    shaders.Key
	pl     *webgpu.ComputePipeline
	groups []*webgpu.BindGroup
	rows   []int // weight rows of each chunk
	m      int   // activation rows: with rows, the grid
}

// matmulParams is the uniform block (decode.wgsl's Params) of each chunk of w for m rows, for the
// caller to write where bindMatMul's params ranges point.
func (w *weight) matmulParams(m int) []paramBlock {
	out := make([]paramBlock, len(w.chunks))
	for i, c := range w.chunks {
		out[i] = params(w.l, c.chunk, m)
	}
	return out
}

// paddedK is the row length x must have: K padded with zeros to whole device rows of w.
func (w *weight) paddedK() int { return w.l.kp }

// bindMatMul builds the pipeline of variant key and one bind group per chunk of w for m
// activation rows. x holds m rows of w.paddedK() floats (zero past K), y receives m rows of N,
// and params[i] is a paramBytes uniform range holding w.matmulParams(m)[i]; extra bindings (a
// Residual key's res at 6) go into every chunk's group. The caller holds b.mu (the pipeline
// cache).
func (b *Backend) bindMatMul(label string, w *weight, key shaders.Key, m int, x, y webgpu.BufferBinding, params []webgpu.BufferBinding, extra ...webgpu.BufferBinding) (*boundMatMul, error) {
	if len(params) != len(w.chunks) {
		return nil, fmt.Errorf("gpu: bind matmul %q: %d params ranges for %d chunks", w.name, len(params), len(w.chunks))
	}
	pl, err := b.pipeline(key)
	if err != nil {
		return nil, err
	}
	bm := &boundMatMul{key: key, pl: pl, m: m}
	x.Binding, y.Binding = 2, 3
	for i, c := range w.chunks {
		p := params[i]
		p.Binding = 0
		es := []webgpu.BufferBinding{p, {Binding: 1, Buffer: c.data}, x, y}
		if c.scales != nil {
			es = append(es, webgpu.BufferBinding{Binding: 4, Buffer: c.scales})
		}
		if c.zeros != nil {
			es = append(es, webgpu.BufferBinding{Binding: 5, Buffer: c.zeros})
		}
		es = append(es, extra...)
		g, err := b.dev.CreateBindGroup(fmt.Sprintf("%s %s rows %d-%d", label, w.name, c.r0, c.r1), pl.BindGroupLayout(0), es...)
		if err != nil {
			return nil, err
		}
		bm.groups = append(bm.groups, g)
		bm.rows = append(bm.rows, c.r1-c.r0)
	}
	return bm, nil
}

// record appends the matmul's dispatches to pass (MatMul, the benchmarks' timed passes).
func (bm *boundMatMul) record(pass *webgpu.ComputePass) {
	pass.SetPipeline(bm.pl)
	for _, d := range bm.dispatches() {
		pass.SetBindGroup(0, d.Group)
		pass.Dispatch(d.X, d.Y, 1)
	}
}

// dispatches are the matmul's dispatches, one per chunk: what record records, and what a graph
// program's prepared list holds for its Linear.
func (bm *boundMatMul) dispatches() []webgpu.Dispatch {
	out := make([]webgpu.Dispatch, len(bm.groups))
	for i, g := range bm.groups {
		gx, gy := grid(bm.key, bm.rows[i], bm.m)
		out[i] = webgpu.Dispatch{Pipeline: bm.pl, Group: g, X: gx, Y: gy}
	}
	return out
}
