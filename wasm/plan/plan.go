package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// ErrNoFit (an errs.ErrTooLarge: OUT_OF_MEMORY in the JS API) says no plan the policy allows
// fits the memory budget or the device's limits. Make returns it before anything is fetched.
var ErrNoFit = errs.New(errs.ErrTooLarge, "plan: the model does not fit")

// Request is everything a Plan is made from.
type Request struct {
	Tensors []Tensor
	// Backends are the measured capabilities of the backends available, preferred first. A
	// tensor goes to the first that can hold its format; none given means any.
	Backends []Caps
	// Budget bounds the bytes of every tensor as held (0: no bound).
	Budget int64
	// DeviceMemory is navigator.deviceMemory in bytes, where the browser tells it (0: unknown).
	// With no Budget, half of it is the budget: the tab shares the device with everything else.
	DeviceMemory int64
	Policy       Policy
	// Sensitivity is the model's measured per-tensor losses (nil: none); the mixed policy needs it.
	Sensitivity *Sensitivity
	Overrides   []Override
}

// Plan names, per tensor, the format it is held in, the backend that holds it and why.
type Plan struct {
	Policy   string   `json:"policy"`
	Budget   int64    `json:"budget,omitempty"`
	Bytes    int64    `json:"bytes"`    // every tensor as planned
	F32Bytes int64    `json:"f32Bytes"` // every tensor as float32
	Backends []string `json:"backends,omitempty"`
	// Predicted is the output's error the sensitivity data predict for this plan (summing each
	// tensor's measured loss per calibration sample); nil without sensitivity data.
	Predicted *Prediction `json:"predicted,omitempty"`
	Tensors   []Choice    `json:"tensors"`
	// Placement is where a hybrid load runs each stage of the model (nil unless the backend
	// is "hybrid" and the model has stages), set once the load's probe has run.
	Placement *Placement `json:"placement,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
}

// Prediction is a plan's error estimated from sensitivity data.
type Prediction struct {
	Metric    string  `json:"metric"`
	MeanLoss  float64 `json:"meanLoss"`
	WorstLoss float64 `json:"worstLoss"`
}

// Choice is one tensor's line of a Plan.
type Choice struct {
	Name    string       `json:"name"`
	Role    Role         `json:"role"`
	Layer   int          `json:"layer"`
	Shape   []int        `json:"shape"`
	Format  quant.Format `json:"-"`
	Backend string       `json:"backend,omitempty"`
	// Pinned says an override named the backend: a hybrid load runs the tensor's stage there
	// or fails.
	Pinned bool   `json:"pinned,omitempty"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

type choiceJSON struct {
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	Layer     int    `json:"layer"`
	Shape     []int  `json:"shape"`
	Format    string `json:"format"`
	Bits      int    `json:"bits"`
	GroupSize int    `json:"groupSize,omitempty"`
	Scheme    string `json:"scheme,omitempty"`
	Scales    string `json:"scales,omitempty"`
	Backend   string `json:"backend,omitempty"`
	Pinned    bool   `json:"pinned,omitempty"`
	Bytes     int64  `json:"bytes"`
	Reason    string `json:"reason"`
}

// MarshalJSON writes the format both as its name and spelled out (bits, groupSize, scheme,
// scales) for pages that read one field; reading back uses the name.
func (c Choice) MarshalJSON() ([]byte, error) {
	j := choiceJSON{Name: c.Name, Role: c.Role, Layer: c.Layer, Shape: c.Shape, Format: c.Format.String(),
		Bits: c.Format.Bits, Backend: c.Backend, Pinned: c.Pinned, Bytes: c.Bytes, Reason: c.Reason}
	if c.Format.Quantized() {
		j.GroupSize, j.Scheme, j.Scales = c.Format.GroupSize, c.Format.Scheme.String(), c.Format.Scales.String()
	}
	return json.Marshal(j)
}

func (c *Choice) UnmarshalJSON(raw []byte) error {
	var j choiceJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	f, err := ParseFormat(j.Format)
	if err != nil {
		return fmt.Errorf("plan: tensor %q: %w", j.Name, err)
	}
	*c = Choice{Name: j.Name, Role: j.Role, Layer: j.Layer, Shape: j.Shape, Format: f, Backend: j.Backend, Pinned: j.Pinned, Bytes: j.Bytes, Reason: j.Reason}
	return nil
}

// Lookup returns the tensor's choice.
func (p *Plan) Lookup(name string) (*Choice, bool) {
	for i := range p.Tensors {
		if p.Tensors[i].Name == name {
			return &p.Tensors[i], true
		}
	}
	return nil, false
}

// ReductionPct is 100·(1 − bytes/f32 bytes).
func (p *Plan) ReductionPct() float64 {
	if p.F32Bytes == 0 {
		return 0
	}
	return 100 * (1 - float64(p.Bytes)/float64(p.F32Bytes))
}

// Make chooses every tensor's format and backend. It fails with ErrNoFit when the policy's
// smallest plan exceeds the budget or a tensor fits no backend, with a message that says by
// how much and what to try.
func Make(r Request) (*Plan, error) {
	budget, budgetNote := r.Budget, ""
	if budget == 0 && r.DeviceMemory > 0 {
		budget = r.DeviceMemory / 2
		budgetNote = fmt.Sprintf("budget %s: half the device memory the browser reports", human(budget))
	}
	if !r.Policy.Adaptive {
		p, err := r.makeWith(r.Policy, budget)
		if p != nil && budgetNote != "" {
			p.Notes = append(p.Notes, budgetNote)
		}
		return p, err
	}
	var tried []string
	var errsSeen []error
	for _, name := range r.Policy.Tiers {
		tier, err := PolicyByName(name)
		if err != nil {
			return nil, err
		}
		if tier.Mixed && r.Sensitivity == nil {
			continue // without measurements mixed is a rule policy another tier already is
		}
		p, err := r.makeWith(tier, budget)
		if err != nil {
			if !errors.Is(err, ErrNoFit) {
				return nil, err
			}
			tried = append(tried, name)
			errsSeen = append(errsSeen, err)
			continue
		}
		p.Policy = r.Policy.Name + ":" + tier.Name
		if len(tried) > 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("%s: %s did not fit, %s is the most accurate tier that does", r.Policy.Name, strings.Join(tried, ", "), tier.Name))
		} else {
			p.Notes = append(p.Notes, fmt.Sprintf("%s: %s, the most accurate tier, fits", r.Policy.Name, tier.Name))
		}
		if budgetNote != "" {
			p.Notes = append(p.Notes, budgetNote)
		}
		return p, nil
	}
	if len(errsSeen) == 0 {
		return nil, fmt.Errorf("policy %q has no tiers: %w", r.Policy.Name, errs.ErrBadArgument)
	}
	return nil, fmt.Errorf("%s: no tier fits (%s); the smallest: %w", r.Policy.Name, strings.Join(tried, ", "), errsSeen[len(errsSeen)-1])
}

// makeWith makes the plan of one (non-adaptive) policy.
func (r *Request) makeWith(pol Policy, budget int64) (*Plan, error) {
	p := &Plan{Policy: pol.Name, Budget: budget}
	for _, c := range r.Backends {
		p.Backends = append(p.Backends, c.Backend)
	}
	p.Tensors = make([]Choice, len(r.Tensors))
	var mixed []int // matrices the mixed allocation chooses for
	for i := range r.Tensors {
		t := &r.Tensors[i]
		c := Choice{Name: t.Name, Role: t.Role, Layer: t.Layer, Shape: t.Shape, Format: quant.Format{Bits: 32}, Reason: "not a weight matrix: float32"}
		if t.Matrix {
			if pol.Mixed && r.Sensitivity.Of(t.Name) != nil {
				mixed = append(mixed, i)
			} else {
				f, why, err := pol.formatFor(t)
				if err != nil {
					return nil, err
				}
				if pol.Mixed {
					why = "no sensitivity measured for it: " + why
				}
				c.Format, c.Reason = f, why
			}
		}
		p.Tensors[i] = c
	}
	if pol.Mixed && r.Sensitivity == nil {
		p.Notes = append(p.Notes, pol.Name+": no sensitivity data for this model: rules by role instead")
	}
	// Overrides first: what the caller pinned is not the allocation's to spend.
	pinned := make([]bool, len(p.Tensors))
	for _, o := range r.Overrides {
		n, err := o.apply(p.Tensors, pinned)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			p.Notes = append(p.Notes, fmt.Sprintf("override %q matched no tensor", o.Pattern))
		}
	}
	mixed = slices.DeleteFunc(mixed, func(i int) bool { return pinned[i] })
	for i := range p.Tensors {
		if !slices.Contains(mixed, i) {
			if err := r.place(&p.Tensors[i], &r.Tensors[i], pinned[i]); err != nil {
				return nil, err
			}
		}
	}
	if len(mixed) > 0 {
		// The caller's budget asks for the most accurate plan under it; the device's only bounds
		// the smallest plan that meets the policy's target.
		maxLoss := pol.MaxLoss
		if r.Budget > 0 {
			maxLoss = 0
		}
		if err := r.allocate(p, pol, mixed, budget, maxLoss); err != nil {
			return nil, err
		}
	}
	for i := range p.Tensors {
		p.Bytes += p.Tensors[i].Bytes
		p.F32Bytes += r.Tensors[i].Bytes(quant.Format{Bits: 32})
	}
	p.Predicted = r.predict(p)
	if budget > 0 && p.Bytes > budget {
		return p, fmt.Errorf("%w: policy %s needs %s, over the %s budget by %s (try a smaller policy: %s)",
			ErrNoFit, pol.Name, human(p.Bytes), human(budget), human(p.Bytes-budget), strings.Join(PolicyNames(), ", "))
	}
	return p, nil
}

// place keeps a stored lossless layout when the plan asks for its width, and finds the
// backend for c's format: the first that holds it, else (unless pinned) the nearest wider
// format the preferred backend holds.
func (r *Request) place(c *Choice, t *Tensor, pinned bool) error {
	if t.Stored != nil && c.Format.Bits == t.Stored.Bits && c.Format != *t.Stored && !pinned {
		c.Format, c.Reason = *t.Stored, c.Reason+"; the file's "+t.Stored.String()+" blocks kept as stored (no lossy round trip)"
	}
	c.Bytes = t.Bytes(c.Format)
	if len(r.Backends) == 0 {
		return nil
	}
	if pinned && c.Backend != "" {
		for _, caps := range r.Backends {
			if caps.Backend == c.Backend {
				if why := caps.cannotHold(c.Format, c.Bytes); why != "" {
					return fmt.Errorf("%w: tensor %q is pinned to %s as %s, which it cannot hold: %s", ErrNoFit, c.Name, c.Backend, c.Format, why)
				}
			}
		}
		return nil // a backend the caller knows of that is not among those measured
	}
	for _, caps := range r.Backends {
		if why := caps.cannotHold(c.Format, c.Bytes); why == "" {
			c.Backend = caps.Backend
			if caps.Backend != r.Backends[0].Backend {
				c.Reason += fmt.Sprintf("; on %s: %s", caps.Backend, r.Backends[0].cannotHold(c.Format, c.Bytes))
			}
			return nil
		}
	}
	first := r.Backends[0]
	if !pinned && c.Format.Quantized() {
		for _, bits := range []int{4, 8, 16, 32} {
			if bits <= c.Format.Bits {
				continue
			}
			f := c.Format
			f.Bits = bits
			if bits >= 16 {
				f = quant.Format{Bits: bits}
			}
			b := t.Bytes(f)
			if first.cannotHold(f, b) == "" {
				c.Reason += fmt.Sprintf("; %s: %s, so %s", first.Backend, first.cannotHold(c.Format, c.Bytes), f)
				c.Format, c.Bytes, c.Backend = f, b, first.Backend
				return nil
			}
		}
	}
	var whys []string
	for _, caps := range r.Backends {
		whys = append(whys, caps.Backend+": "+caps.cannotHold(c.Format, c.Bytes))
	}
	return fmt.Errorf("%w: tensor %q as %s (%s) fits no backend (%s)", ErrNoFit, c.Name, c.Format, human(c.Bytes), strings.Join(whys, "; "))
}

// cannotHold says why the backend cannot hold a tensor of format f and size bytes ("" if it can).
func (c *Caps) cannotHold(f quant.Format, bytes int64) string {
	if f.Quantized() && len(c.WeightBits) > 0 && !slices.Contains(c.WeightBits, f.Bits) {
		return fmt.Sprintf("no int%d weights", f.Bits)
	}
	if f.Bits == 16 && !c.F16 && c.Backend == "webnn" {
		return "no float16 operands"
	}
	if c.MaxBufferSize > 0 && bytes > c.MaxBufferSize {
		return fmt.Sprintf("%s exceeds its largest buffer (%s)", human(bytes), human(c.MaxBufferSize))
	}
	return ""
}

// predict sums the measured per-sample losses of the plan's formats.
func (r *Request) predict(p *Plan) *Prediction {
	if r.Sensitivity == nil || r.Sensitivity.Samples == 0 {
		return nil
	}
	sum := make([]float64, r.Sensitivity.Samples)
	for _, c := range p.Tensors {
		ts := r.Sensitivity.Of(c.Name)
		if ts == nil || !c.Format.Quantized() {
			continue
		}
		l := ts.loss(c.Format.String())
		if l == nil || len(l.PerSample) != len(sum) {
			return nil // a format nobody measured: no honest prediction
		}
		for s, v := range l.PerSample {
			sum[s] += v
		}
	}
	pr := &Prediction{Metric: r.Sensitivity.Metric}
	for _, v := range sum {
		pr.MeanLoss += v / float64(len(sum))
		pr.WorstLoss = max(pr.WorstLoss, v)
	}
	return pr
}

func (ts *TensorSensitivity) loss(format string) *Loss {
	for i := range ts.Formats {
		if ts.Formats[i].Format == format {
			return &ts.Formats[i]
		}
	}
	return nil
}

// Override pins tensors matched by Pattern to a format and/or backend, whatever the policy says.
type Override struct {
	// Pattern is a glob on the tensor name (* is any run of characters, / included), or
	// "role:<selector>" (a role, "attention", "ffn").
	Pattern string `json:"pattern"`
	Format  string `json:"format,omitempty"`
	Backend string `json:"backend,omitempty"`
}

// ParseOverrides reads "pattern=format[@backend],…" (a command line's form).
func ParseOverrides(s string) ([]Override, error) {
	var out []Override
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pat, rhs, ok := strings.Cut(part, "=")
		if !ok || pat == "" {
			return nil, fmt.Errorf("override %q: want pattern=format[@backend]: %w", part, errs.ErrBadArgument)
		}
		o := Override{Pattern: pat}
		o.Format, o.Backend, _ = strings.Cut(rhs, "@")
		out = append(out, o)
	}
	return out, nil
}

func (o *Override) matches(c *Choice) (bool, error) {
	if sel, ok := strings.CutPrefix(o.Pattern, "role:"); ok {
		return c.Role.Matches(sel), nil
	}
	re, err := regexp.Compile("^" + strings.ReplaceAll(regexp.QuoteMeta(o.Pattern), `\*`, ".*") + "$")
	if err != nil {
		return false, err
	}
	return re.MatchString(c.Name), nil
}

func (o *Override) apply(cs []Choice, pinned []bool) (int, error) {
	var f quant.Format
	if o.Format != "" {
		var err error
		if f, err = ParseFormat(o.Format); err != nil {
			return 0, fmt.Errorf("override %q: %w", o.Pattern, err)
		}
	}
	n := 0
	for i := range cs {
		ok, err := o.matches(&cs[i])
		if err != nil {
			return 0, fmt.Errorf("override %q: %w", o.Pattern, err)
		}
		if !ok {
			continue
		}
		n++
		pinned[i] = true
		if o.Format != "" {
			cs[i].Format = f
		}
		cs[i].Backend, cs[i].Pinned = o.Backend, o.Backend != ""
		cs[i].Reason = "override " + o.Pattern
	}
	return n, nil
}

// human writes a byte count as MB/GB with three significant digits.
func human(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.3g GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.3g MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.3g KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// Table prints the plan one tensor a line: what a person reads to see where the bytes went.
func (p *Plan) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s: %s of %s as float32 (%.1f %% less)", p.Policy, human(p.Bytes), human(p.F32Bytes), p.ReductionPct())
	if p.Budget > 0 {
		fmt.Fprintf(&b, ", budget %s", human(p.Budget))
	}
	if p.Predicted != nil {
		fmt.Fprintf(&b, ", predicted %s: mean %.4f, worst %.4f", p.Predicted.Metric, p.Predicted.MeanLoss, p.Predicted.WorstLoss)
	}
	b.WriteString("\n")
	w := 4
	for _, c := range p.Tensors {
		w = max(w, len(c.Name))
	}
	w = min(w, 72)
	fmt.Fprintf(&b, "%-*s  %-9s %5s  %-16s %-7s %10s  %s\n", w, "name", "role", "layer", "format", "backend", "bytes", "reason")
	for _, c := range p.Tensors {
		name := c.Name
		if len(name) > w {
			name = "…" + name[len(name)-w+1:]
		}
		layer := "-"
		if c.Layer >= 0 {
			layer = fmt.Sprint(c.Layer)
		}
		be := c.Backend
		if be == "" {
			be = "-"
		}
		fmt.Fprintf(&b, "%-*s  %-9s %5s  %-16s %-7s %10d  %s\n", w, name, c.Role, layer, c.Format, be, c.Bytes, c.Reason)
	}
	for _, n := range p.Notes {
		b.WriteString("note: " + n + "\n")
	}
	if p.Placement != nil {
		b.WriteString(p.Placement.Table())
	}
	return b.String()
}
