//go:build js && wasm

package gpu

import (
	"fmt"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// a8Prepass is the dispatch that quantizes MatMul's activations (the backend's x) into the
// backend's xq for an int8-activation GEMV whose key has XQ (Tuning.GEMVInt8Prepass).
type a8Prepass struct {
	pl     *webgpu.ComputePipeline
	group  *webgpu.BindGroup
	gx, gy int
}

// prepassFor is w's pre-pass for key over m activation rows, or nil when key has no XQ. Its
// bind group (chunk 0's params: kp; x; xq) is made once per backend generation. The caller
// holds b.mu and has sized b.xq (ensureXQ).
func (b *Backend) prepassFor(w *weight, key shaders.Key, m int) (*a8Prepass, error) {
	if !key.XQ {
		return nil, nil
	}
	blocks, qk, _ := a8Quant(key, w.l, m)
	pl, err := b.pipeline(qk)
	if err != nil {
		return nil, err
	}
	if w.xqGen != b.gen || w.xqGroups == nil {
		w.xqGroups, w.xqGen = map[shaders.Key]*webgpu.BindGroup{}, b.gen
	}
	g := w.xqGroups[qk]
	if g == nil {
		if g, err = b.dev.CreateBindGroup(fmt.Sprintf("%s %s activations to int8", b.label, w.name), pl.BindGroupLayout(0),
			webgpu.BufferBinding{Binding: 0, Buffer: w.chunks[0].params},
			webgpu.BufferBinding{Binding: 2, Buffer: b.x},
			webgpu.BufferBinding{Binding: 3, Buffer: b.xq}); err != nil {
			return nil, err
		}
		w.xqGroups[qk] = g
	}
	gx, gy := grid(qk, blocks, m)
	return &a8Prepass{pl: pl, group: g, gx: gx, gy: gy}, nil
}

// record appends the pre-pass to pass; a nil pre-pass records nothing.
func (p *a8Prepass) record(pass *webgpu.ComputePass) {
	if p == nil {
		return
	}
	pass.SetPipeline(p.pl)
	pass.SetBindGroup(0, p.group)
	pass.Dispatch(p.gx, p.gy, 1)
}

// ensureXQ sizes the quantized activations' buffer for key over m rows of w (nothing without
// XQ). The caller holds b.mu.
func (b *Backend) ensureXQ(w *weight, key shaders.Key, m int) error {
	if !key.XQ {
		return nil
	}
	_, _, bytes := a8Quant(key, w.l, m)
	var err error
	b.xq, err = b.ensure(b.xq, "activations int8", bytes, webgpu.BufferStorage)
	return err
}

// matmulKey is the variant MatMul and the benchmarks run: keyFor's, with XQ where the tuning
// quantizes the activations in a pre-pass.
func (b *Backend) matmulKey(w *weight, m int) shaders.Key {
	k := keyFor(w.l.format, w.l.n, m, b.feat, b.tune)
	if k.Kernel == shaders.GEMVA8 && b.tune.GEMVInt8Prepass {
		b.tune.readXQ(&k)
	}
	return k
}
