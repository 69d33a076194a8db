package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/plan"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// SensitivityFile is looked for beside a model (in its directory): a plan.Sensitivity that the
// mixed policy spends bytes by (tools/sensitivity writes one).
const SensitivityFile = "sensitivity.json"

// planned is a load's precision plan: made whole before any weight is fetched when the tensor
// list is known up front (a TF.js manifest), else grown tensor by tensor as headers arrive
// (safetensors, GGUF; the loader checks Options.MemoryBudget against what they declare).
type planned struct {
	req  plan.Request
	opt  Options
	mu   sync.Mutex
	plan *plan.Plan
	// fixed is a Format load's plan: the policy-free path, recorded into plan as it is asked.
	fixed stream.Plan
}

// makePlan resolves opt.Policy into a plan for the load. It fails, before anything is fetched
// but the model's small JSON files, when the policy cannot fit opt.MemoryBudget or the backend.
func makePlan(ctx context.Context, spec *Spec, opt Options, b backend.Backend, fixed stream.Plan) (*planned, error) {
	if opt.Policy == "" {
		return &planned{opt: opt, fixed: fixed, plan: &plan.Plan{Policy: "format " + opt.Format, Backends: []string{b.Name()}}}, nil
	}
	pol, err := plan.PolicyByName(opt.Policy)
	if err != nil {
		return nil, err
	}
	overrides, err := plan.ParseOverrides(opt.Overrides)
	if err != nil {
		return nil, err
	}
	p := &planned{opt: opt, req: plan.Request{Policy: pol, Budget: opt.MemoryBudget, Overrides: overrides,
		Backends: hybridCaps(b), DeviceMemory: deviceMemory()}}
	tensors := knownTensors(spec)
	if tensors == nil {
		// Headers arrive with the stream: rules by role, one tensor at a time.
		if pol.Adaptive {
			p.req.Policy, _ = plan.PolicyByName("small")
			p.req.Policy.Name = pol.Name + ":small"
		}
		p.plan = &plan.Plan{Policy: p.req.Policy.Name, Budget: opt.MemoryBudget, Backends: []string{b.Name()},
			Notes: []string{"tensors planned as their headers arrive (the file lists them only there): rules by role"}}
		return p, nil
	}
	p.req.Tensors = tensors
	if pol.Mixed || pol.Adaptive {
		p.req.Sensitivity = sensitivityFor(ctx, spec, tensors)
	}
	if p.plan, err = plan.Make(p.req); err != nil {
		return nil, fmt.Errorf("plan %s for %s: %w", pol.Name, spec.URL, err)
	}
	return p, nil
}

// knownTensors lists a TF.js model's tensors from its manifest, shaped as they will be held
// (USE-lite's kernels transposed to [out, in]); nil for files whose headers are in the stream.
func knownTensors(spec *Spec) []plan.Tensor {
	if spec.Kind != KindTFJS {
		return nil
	}
	var out []plan.Tensor
	for _, g := range spec.TFJS {
		for _, w := range g.Weights {
			shape := make([]int, len(w.Shape))
			for i, d := range w.Shape {
				shape[i] = int(d)
			}
			if uselite.IsKernel(w.Name) && len(shape) >= 2 {
				k := 1
				for _, d := range shape[:len(shape)-1] {
					k *= d
				}
				shape = []int{shape[len(shape)-1], k}
			}
			out = append(out, plan.NewTensor(w.Name, shape))
		}
	}
	return out
}

// sensitivityFor reads sensitivity.json beside the model, else the copy nibble ships for the
// USE-lite it was measured on when every measured tensor is there with its shape; nil if
// neither applies (the mixed policy then says it fell back to rules).
func sensitivityFor(ctx context.Context, spec *Spec, tensors []plan.Tensor) *plan.Sensitivity {
	if base, err := url.Parse(spec.URL); err == nil {
		if u, _, err := stream.ConfinedURL(base, SensitivityFile); err == nil {
			if raw, err := fetchSmall(ctx, u); err == nil {
				if s, err := plan.ParseSensitivity(raw); err == nil && matches(s, tensors) {
					return s
				}
			}
		}
	}
	if s := uselite.Sensitivity(); s != nil && matches(s, tensors) {
		return s
	}
	return nil
}

// matches reports whether every tensor s measured is in the model with the same shape.
func matches(s *plan.Sensitivity, tensors []plan.Tensor) bool {
	shapes := map[string][]int{}
	for _, t := range tensors {
		shapes[t.Name] = t.Shape
	}
	for _, ts := range s.Tensors {
		sh, ok := shapes[ts.Name]
		if !ok || fmt.Sprint(sh) != fmt.Sprint(ts.Shape) {
			return false
		}
	}
	return len(s.Tensors) > 0
}

// streamPlan is the loader's per-tensor view of the plan.
func (p *planned) streamPlan(t *format.TensorInfo) quant.Format {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.plan.Lookup(t.Name); ok {
		return c.Format
	}
	if p.fixed != nil {
		f := p.fixed(t)
		pt := plan.NewTensor(t.Name, squeezed(t).Shape)
		c := plan.Choice{Name: t.Name, Role: pt.Role, Layer: pt.Layer, Shape: pt.Shape, Format: f,
			Backend: p.plan.Backends[0], Bytes: pt.Bytes(f), Reason: "format " + p.opt.Format}
		p.add(c, pt.Bytes(stream.F32))
		return f
	}
	if p.req.Tensors != nil {
		return stream.F32 // not in the manifest: nothing the plan chose for
	}
	// Incremental: plan this one tensor with the same policy; GGUF blocks of the same width
	// are kept as stored.
	pt := plan.NewTensor(t.Name, squeezed(t).Shape)
	if f := stream.DefaultPlan(t); f != stream.F32 && f.Bits < 16 && pt.Matrix {
		pt.Stored = &f
	}
	one, err := plan.Make(plan.Request{Tensors: []plan.Tensor{pt}, Policy: p.req.Policy, Overrides: p.req.Overrides, Backends: p.req.Backends})
	if err != nil || len(one.Tensors) != 1 {
		return stream.DefaultPlan(squeezed(t))
	}
	p.add(one.Tensors[0], one.F32Bytes)
	return one.Tensors[0].Format
}

func (p *planned) add(c plan.Choice, f32Bytes int64) {
	p.plan.Tensors = append(p.plan.Tensors, c)
	p.plan.Bytes += c.Bytes
	p.plan.F32Bytes += f32Bytes
}

// cacheTag keys cached tensors by the plan's formats, so two policies never share entries.
func (p *planned) cacheTag() string {
	if p.req.Tensors == nil {
		return "engine policy " + p.req.Policy.Name + " " + p.opt.Overrides
	}
	h := sha256.New()
	for _, c := range p.plan.Tensors {
		fmt.Fprintf(h, "%s=%s\n", c.Name, c.Format)
	}
	return "engine plan " + hex.EncodeToString(h.Sum(nil))[:16]
}

// Plan is the precision plan the model loads with: per tensor, format, backend and why. For
// files whose tensors are known only from their headers it grows as they arrive.
func (m *Model) Plan() *plan.Plan {
	if m.planned == nil {
		return nil
	}
	m.planned.mu.Lock()
	defer m.planned.mu.Unlock()
	c := *m.planned.plan
	c.Tensors = append([]plan.Choice(nil), c.Tensors...)
	if c.Placement != nil && m.arch != nil {
		pl := *c.Placement
		cr := m.arch.crossings()
		pl.Crossed, pl.CrossedBytes = cr.Count, cr.Bytes
		c.Placement = &pl
	}
	return &c
}

// moved records that the load held a tensor in another format than planned (the guard).
func (p *planned) moved(name string, f quant.Format, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.plan.Lookup(name)
	if !ok {
		return
	}
	n := int64(1)
	for _, d := range c.Shape {
		n *= int64(d)
	}
	b := int64(f.TensorBytes(int(n)/c.Shape[len(c.Shape)-1], c.Shape[len(c.Shape)-1]))
	p.plan.Bytes += b - c.Bytes
	c.Format, c.Bytes, c.Reason = f, b, c.Reason+"; "+why
}
