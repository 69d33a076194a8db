package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// ErrPlacement (an errs.ErrUnsupported) says a piece of the model the caller pinned to a
// backend gave wrong numbers there, or failed, or that no backend ran a piece correctly.
var ErrPlacement = errs.New(errs.ErrUnsupported, "plan: no backend runs this piece of the model correctly")

// Placement says which backend runs each stage of a hybrid model (a stage is a piece the model
// can run on a backend of its own: USE-lite's embedding, each layer, the head) and why: what
// the load's probe measured of each stage on each backend. Activations cross from one backend
// to another through host memory at stage boundaries only.
type Placement struct {
	// Reference is the backend every probe's output is compared with (cpu, the pure-Go oracle).
	Reference string `json:"reference"`
	// Bound is the largest relative RMS error a backend's stage output may show.
	Bound float64 `json:"bound"`
	// Probe describes the probe's input (e.g. "1×16 tokens, median of 3 runs").
	Probe  string  `json:"probe"`
	Stages []Stage `json:"stages"`
	// Whole is the whole model as one graph on each backend, measured the same way.
	Whole []Probe `json:"whole"`
	// Split is the predicted time of the fastest correct backend per stage (the sum of their
	// medians); Chosen the predicted time of the placement made.
	SplitMS  float64 `json:"splitMs"`
	ChosenMS float64 `json:"chosenMs"`
	// Crossings is the number of stage boundaries where the backend changes: host transfers of
	// the activations per forward pass.
	Crossings int `json:"crossings"`
	// Crossed counts the crossings made so far, over every pass run, and CrossedBytes the
	// activations' bytes they moved (a snapshot taken when the plan is read).
	Crossed      int      `json:"crossed"`
	CrossedBytes int64    `json:"crossedBytes"`
	Notes        []string `json:"notes,omitempty"`
}

// Stage is one piece of the model and where it runs.
type Stage struct {
	Name string `json:"name"`
	// Pinned is the backend the caller pinned the stage's tensors to (an override's @backend):
	// the stage runs there or the load fails.
	Pinned  string  `json:"pinned,omitempty"`
	Probe   []Probe `json:"probe"`
	Backend string  `json:"backend"`
	Reason  string  `json:"reason"`
	// Moved is set when the fastest backend's output differed from the reference beyond the
	// bound (the guard): the stage runs on another.
	Moved string `json:"moved,omitempty"`
}

// Probe is what one stage (or the whole model) measured on one backend.
type Probe struct {
	Backend string  `json:"backend"`
	MS      float64 `json:"ms"`     // median of the timed runs, upload and readback included
	RelErr  float64 `json:"relErr"` // relative RMS error against the reference's output
	Error   string  `json:"error,omitempty"`
}

// ok reports whether the probe ran and matched the reference.
func (p *Probe) ok(bound float64) bool { return p.Error == "" && p.RelErr <= bound }

func (p *Probe) String() string {
	if p.Error != "" {
		return p.Backend + " failed (" + p.Error + ")"
	}
	return fmt.Sprintf("%s %.3g ms (error %.2g)", p.Backend, p.MS, p.RelErr)
}

// SplitMargin is how much faster than the best single backend a per-stage split must be
// predicted to be before Place splits: the probe is short and a shared machine's noise is
// larger than the gap it would chase, and a split compiles more graphs and moves activations
// through host memory at every crossing.
const SplitMargin = 0.1

// Place chooses a backend for each stage of pl (whose Stages carry their probes; Whole
// optional): the fastest whose output matched the reference within pl.Bound; the reference
// itself (the cpu) only when no other did. A stage's fastest
// backend that did not match is skipped, and the stage's Moved says so; a pinned stage whose
// backend did not match fails the placement with ErrPlacement. When no stage is pinned and one
// backend running the whole model as a single graph is not SplitMargin slower than the
// per-stage choice (whose stage times each include a host round trip), and matched the
// reference in every stage, every stage goes there: hybrid only where it wins.
func Place(pl *Placement) error {
	pinned := false
	pl.SplitMS = 0
	for i := range pl.Stages {
		s := &pl.Stages[i]
		if err := s.place(pl.Bound, pl.Reference); err != nil {
			return err
		}
		pinned = pinned || s.Pinned != ""
		pl.SplitMS += s.ms()
	}
	pl.ChosenMS = pl.SplitMS
	best := fastest(pl.Whole, pl.Bound)
	if best != nil && !pinned && pl.SplitMS >= (1-SplitMargin)*best.MS && pl.passes(best.Backend) {
		for i := range pl.Stages {
			s := &pl.Stages[i]
			if s.Backend != best.Backend {
				s.Reason = fmt.Sprintf("whole model on %s (%.3g ms): the per-stage split (%.3g ms predicted) does not save %.0f %%; alone this stage is fastest on %s", best.Backend, best.MS, pl.SplitMS, 100*SplitMargin, s.Backend)
				s.Backend = best.Backend
			}
		}
		pl.ChosenMS = best.MS
		pl.Notes = append(pl.Notes, fmt.Sprintf("one backend: %s runs the whole model in %.3g ms, the fastest backend per stage would take %.3g ms (each stage's time includes a host round trip)", best.Backend, best.MS, pl.SplitMS))
	}
	pl.Crossings = 0
	for i := 1; i < len(pl.Stages); i++ {
		if pl.Stages[i].Backend != pl.Stages[i-1].Backend {
			pl.Crossings++
		}
	}
	return nil
}

func (s *Stage) place(bound float64, ref string) error {
	var order []*Probe
	for i := range s.Probe {
		if s.Pinned == "" || s.Probe[i].Backend == s.Pinned {
			order = append(order, &s.Probe[i])
		}
	}
	if s.Pinned != "" && len(order) == 0 {
		return fmt.Errorf("%w: stage %s is pinned to %s, which the probe did not run (backends: %s)", ErrPlacement, s.Name, s.Pinned, s.backends())
	}
	slices.SortStableFunc(order, func(a, b *Probe) int {
		switch { // the reference and failures last; among the rest, faster first
		case (a.Backend == ref) != (b.Backend == ref):
			if b.Backend == ref {
				return -1
			}
			return 1
		case (a.Error == "") != (b.Error == ""):
			if a.Error == "" {
				return -1
			}
			return 1
		case a.MS < b.MS:
			return -1
		case a.MS > b.MS:
			return 1
		}
		return 0
	})
	var skipped []string
	for _, p := range order {
		if p.ok(bound) {
			s.Backend = p.Backend
			s.Reason = "fastest correct: " + s.summary()
			if p.Backend == ref && len(order) > 1 {
				s.Reason = "no other backend ran it correctly, so on the reference: " + s.summary()
			}
			if s.Pinned != "" {
				s.Reason = "pinned by an override: " + s.summary()
			}
			if len(skipped) > 0 {
				s.Moved = "guard: " + strings.Join(skipped, "; ")
				s.Reason += "; moved off " + strings.Join(skipped, "; ")
			}
			return nil
		}
		if p.Error == "" {
			skipped = append(skipped, fmt.Sprintf("%s (its output differs from the reference by %.3g > %.0e)", p.Backend, p.RelErr, bound))
		} else {
			skipped = append(skipped, p.Backend+" (failed: "+p.Error+")")
		}
	}
	if s.Pinned != "" {
		return fmt.Errorf("%w: stage %s is pinned to %s: %s (unpin it, or choose another backend)", ErrPlacement, s.Name, s.Pinned, strings.Join(skipped, "; "))
	}
	return fmt.Errorf("%w: stage %s: %s", ErrPlacement, s.Name, strings.Join(skipped, "; "))
}

func (s *Stage) summary() string {
	var parts []string
	for i := range s.Probe {
		parts = append(parts, s.Probe[i].String())
	}
	return strings.Join(parts, ", ")
}

func (s *Stage) backends() string {
	var b []string
	for _, p := range s.Probe {
		b = append(b, p.Backend)
	}
	return strings.Join(b, ", ")
}

// ms is the probe time of the backend the stage is on.
func (s *Stage) ms() float64 {
	for _, p := range s.Probe {
		if p.Backend == s.Backend {
			return p.MS
		}
	}
	return 0
}

// passes reports whether backend matched the reference in every stage's probe.
func (pl *Placement) passes(backend string) bool {
	for _, s := range pl.Stages {
		i := slices.IndexFunc(s.Probe, func(p Probe) bool { return p.Backend == backend })
		if i < 0 || !s.Probe[i].ok(pl.Bound) {
			return false
		}
	}
	return true
}

func fastest(ps []Probe, bound float64) *Probe {
	var best *Probe
	for i := range ps {
		if ps[i].ok(bound) && (best == nil || ps[i].MS < best.MS) {
			best = &ps[i]
		}
	}
	return best
}

// Backends lists the distinct backends the placement uses, in stage order.
func (pl *Placement) Backends() []string {
	var out []string
	for _, s := range pl.Stages {
		if !slices.Contains(out, s.Backend) {
			out = append(out, s.Backend)
		}
	}
	return out
}

// Table prints the placement: per stage, each backend's probe and the choice.
func (pl *Placement) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "placement: %d crossing(s) per pass, predicted %.3g ms (per-stage best %.3g ms); reference %s, bound %.0e; probe %s\n",
		pl.Crossings, pl.ChosenMS, pl.SplitMS, pl.Reference, pl.Bound, pl.Probe)
	for _, s := range pl.Stages {
		fmt.Fprintf(&b, "  %-8s → %-7s %s\n", s.Name, s.Backend, s.Reason)
	}
	if len(pl.Whole) > 0 {
		var parts []string
		for i := range pl.Whole {
			parts = append(parts, pl.Whole[i].String())
		}
		fmt.Fprintf(&b, "  whole model: %s\n", strings.Join(parts, ", "))
	}
	for _, n := range pl.Notes {
		b.WriteString("  note: " + n + "\n")
	}
	return b.String()
}
