package backend

import (
	"fmt"
	"slices"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// State is a buffer a backend keeps between runs (graph.State): a KV cache lives here, resident
// on the device, allocated once at its full size so it never moves while it fills.
type State interface {
	Spec() graph.StateSpec
	// Bytes is the memory the state holds on the backend.
	Bytes() int64
	Release() error
}

// StateAllocator is a backend that can hold states.
type StateAllocator interface {
	NewState(spec graph.StateSpec) (State, error)
}

// States resolves the names of a graph's State nodes. Compile looks for it on the Weights it is
// given: pass WithStates(weights, states) to compile a graph that has states, and the same
// states to every graph that shares them (prefill and decode).
type States interface {
	State(name string) (State, bool)
}

// StateMap is States over a map.
type StateMap map[string]State

func (m StateMap) State(name string) (State, bool) { s, ok := m[name]; return s, ok }

type weightsAndStates struct {
	Weights
	States
}

// WithStates returns Weights that also resolve states.
func WithStates(w Weights, s States) Weights { return weightsAndStates{w, s} }

// BindStates resolves every State node of g through ws (which must implement States when g has
// any) and checks each against its spec: same shape and storage.
func BindStates(g *graph.Graph, ws Weights) (map[string]State, error) {
	specs := g.States()
	if len(specs) == 0 {
		return nil, nil
	}
	ss, ok := ws.(States)
	if !ok {
		return nil, fmt.Errorf("graph %q has state %q: compile it with backend.WithStates", g.Name, specs[0].Name)
	}
	out := map[string]State{}
	for _, sp := range specs {
		s, ok := ss.State(sp.Name)
		if !ok {
			return nil, fmt.Errorf("graph %q: state %q was not allocated", g.Name, sp.Name)
		}
		if h := s.Spec(); !slices.Equal(h.Shape, sp.Shape) || h.Storage != sp.Storage {
			return nil, fmt.Errorf("%w: graph %q: state %q is %s %s, the graph declares %s %s", ErrShape, g.Name, sp.Name, h.Shape, h.Storage, sp.Shape, sp.Storage)
		}
		out[sp.Name] = s
	}
	return out, nil
}
