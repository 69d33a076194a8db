package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// Policy says how a Plan chooses precision. Named policies are in Policies; a caller may write
// its own (rules by role, first match wins).
type Policy struct {
	Name string `json:"name"`
	// Rules give formats by role; a matrix no rule names takes Default.
	Rules   []Rule `json:"rules,omitempty"`
	Default string `json:"default,omitempty"`
	// Mixed spends bytes by measured sensitivity (Request.Sensitivity): the most accurate plan
	// under the budget, or with no budget the smallest whose predicted worst loss is at most
	// MaxLoss. Without sensitivity data it falls back to Rules and Default, and says so.
	Mixed   bool    `json:"mixed,omitempty"`
	MaxLoss float64 `json:"maxLoss,omitempty"`
	// Adaptive tries Tiers, most accurate first, and keeps the first that fits the budget and
	// every tensor's backend.
	Adaptive bool     `json:"adaptive,omitempty"`
	Tiers    []string `json:"tiers,omitempty"`
	About    string   `json:"about,omitempty"`
}

// Rule gives matrices of the named roles (Role.Matches: a role, "attention", "ffn") a format.
type Rule struct {
	Roles  []string `json:"roles"`
	Format string   `json:"format"`
}

// Candidates are the formats the mixed policy chooses among, cheapest first, as
// tools/sensitivity measures them: f16 scales because their error is far below the codes'
// (bytes per weight: 0.39, 0.56, 0.63, 1.06).
var Candidates = []string{"q2-asym-g16-f16", "q4-sym-g32-f16", "q4-sym-g16-f16", "q8-sym-g32-f16"}

// Named policies. The tiers come from USE-lite measured natively (make sensitivity; README,
// "Precision plans"), worst cosine to fp32 over 30 held-out sentences: int8 everywhere 0.9996;
// int4 FFN with int8 elsewhere 0.975; int4 everywhere 0.908 with f32 scales, 0.925 with group
// 16 and f16 scales at the same bytes (so "small" is that, and the plain q4-sym-g32 "int4" tier
// is dominated); group 32 with f16 scales is 10 % smaller for 0.906. int2 is in no named policy:
// one FFN matrix at int2 alone costs USE-lite 3 % cosine, ten times int4's cost; the mixed
// policy may still choose it where a budget forces it.
var Policies = map[string]Policy{
	"quality": {Name: "quality", Default: "q8-sym-g32", About: "int8 everywhere"},
	"balanced": {Name: "balanced", Default: "q8-sym-g32",
		Rules: []Rule{{Roles: []string{"ffn"}, Format: "q4-sym-g32"}},
		About: "FFN int4; attention, embeddings and head int8"},
	"small": {Name: "small", Default: "q4-sym-g16-f16", About: "int4 everywhere, groups of 16, f16 scales"},
	"int4":  {Name: "int4", Default: "q4-sym-g32", About: "int4 everywhere, groups of 32, f32 scales (the loader's default)"},
	"tiny":  {Name: "tiny", Default: "q4-sym-g32-f16", About: "int4 everywhere, groups of 32, f16 scales: the fewest bytes of any int4 plan"},
	// MaxLoss is the calibration set's predicted worst: on held-out sentences the worst lost 2–3×
	// its prediction (a repetitive 128-token text), so 0.005 is what keeps them ≥ 0.99.
	"mixed": {Name: "mixed", Mixed: true, MaxLoss: 0.005, Default: "q8-sym-g32",
		Rules: []Rule{{Roles: []string{"ffn"}, Format: "q4-sym-g32"}},
		About: "sensitivity-driven: the most accurate plan under the budget, else the smallest predicted to keep cosine ≥ 0.995 (falls back to balanced's rules without measurements)"},
	"auto": {Name: "auto", Adaptive: true, Tiers: []string{"quality", "mixed", "balanced", "small", "tiny"},
		About: "the most accurate tier that fits the budget and the device"},
}

// PolicyNames lists the named policies, in the order a page offers them.
func PolicyNames() []string {
	names := make([]string, 0, len(Policies))
	for n := range Policies {
		names = append(names, n)
	}
	order := map[string]int{"auto": 0, "quality": 1, "balanced": 2, "mixed": 3, "small": 4, "int4": 5, "tiny": 6}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	return names
}

// PolicyByName returns a named policy; "" is "auto".
func PolicyByName(name string) (Policy, error) {
	if name == "" {
		name = "auto"
	}
	p, ok := Policies[name]
	if !ok {
		return Policy{}, fmt.Errorf("policy %q: want one of %s: %w", name, strings.Join(PolicyNames(), ", "), quant.ErrFormat)
	}
	return p, nil
}

// Uniform is a policy that gives every matrix one format (what engine.Options.Format asks).
func Uniform(f quant.Format) Policy {
	return Policy{Name: f.String(), Default: f.String()}
}

// formatFor is the rule-based choice for one matrix, with the reason.
func (p *Policy) formatFor(t *Tensor) (quant.Format, string, error) {
	for _, r := range p.Rules {
		for _, sel := range r.Roles {
			if t.Role.Matches(sel) {
				f, err := ParseFormat(r.Format)
				return f, fmt.Sprintf("%s: %s is %s", p.Name, t.Role, r.Format), err
			}
		}
	}
	def := p.Default
	if def == "" {
		def = quant.Q4.String()
	}
	f, err := ParseFormat(def)
	return f, fmt.Sprintf("%s: default %s", p.Name, def), err
}
