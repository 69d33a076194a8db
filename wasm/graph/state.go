package graph

import (
	"fmt"
	"slices"
)

// A State is a buffer the backend keeps between runs, and between the programs of every graph
// that names it: a decoder's KV cache, written by the prefill graph and then by each decode
// graph without being copied in or out. States are the only values that outlive a run; all
// other values are recomputed each time.
//
// A graph reads a state only through the StateWrite that updates it, so the order of the write
// and the read is part of the graph, and a backend may update the buffer in place (no copy of
// the whole cache per token).

// StateFormat is how a backend stores a state's elements. Reads give float32 whatever the format.
type StateFormat uint8

const (
	StateF32 StateFormat = iota
	// StateF16 stores IEEE half floats (values round to nearest even; beyond ±65504 saturate).
	StateF16
	// StateInt8 stores each row of the last axis (one head of one token, for a KV cache laid out
	// [T, heads, Dh]) as int8 codes q with one float32 scale s = max|x|/127: x ≈ s·q,
	// q = round(x/s) (half away from zero), s = 0 for a zero row.
	StateInt8
)

func (f StateFormat) String() string {
	switch f {
	case StateF32:
		return "f32"
	case StateF16:
		return "f16"
	case StateInt8:
		return "int8-row"
	}
	return fmt.Sprintf("StateFormat(%d)", uint8(f))
}

// StateSpec describes a state: backends allocate one buffer per spec, zero-filled.
type StateSpec struct {
	Name    string
	Shape   Shape
	Storage StateFormat
}

// Bytes is the buffer's size in storage (int8 counts its scales).
func (s StateSpec) Bytes() int64 {
	n := int64(s.Shape.Size())
	switch s.Storage {
	case StateF16:
		return 2 * n
	case StateInt8:
		return n + 4*n/int64(s.Shape[len(s.Shape)-1])
	}
	return 4 * n
}

// State declares the state name of the given storage format and shape [S, ...]: S rows along
// axis 0 (positions, for a KV cache), each of the remaining dimensions.
func (g *Graph) State(name string, storage StateFormat, shape ...int) Value {
	return g.add(Node{Op: OpState, Label: name, DType: Float32, Shape: Shape(shape), Attr: Attr{Name: name, Storage: storage}})
}

// StateWrite stores x[T, ...] (the state's shape with T rows) into rows [p, p+T) of state, p =
// pos[0] read at run time (i32 [1]), in the state's storage format, and returns rows [0, keep) of
// the state after the write as float32: what the storage holds (for f16 and int8, the rounded
// values, the written rows included). Rows past the end of the state are a run-time error; rows
// [p+T, keep) hold whatever was last stored there (zeros at first), so readers mask them.
func (g *Graph) StateWrite(label string, state, x, pos Value, keep int) Value {
	return g.add(Node{Op: OpStateWrite, Label: label, Inputs: []Value{state, x, pos}, Attr: Attr{End: keep}})
}

// States lists the specs of the graph's states, in declaration order.
func (g *Graph) States() []StateSpec {
	var out []StateSpec
	for _, n := range g.Nodes {
		if n.Op == OpState {
			out = append(out, StateSpec{Name: n.Attr.Name, Shape: slices.Clone(n.Shape), Storage: n.Attr.Storage})
		}
	}
	return out
}

func (g *Graph) inferState(n *Node) (Shape, DType, error) {
	if n.Op == OpState {
		if n.Attr.Name == "" {
			return nil, 0, fmt.Errorf("empty name")
		}
		if len(n.Shape) < 2 {
			return nil, 0, fmt.Errorf("shape %s: want [S, ...] of rank ≥ 2", n.Shape)
		}
		if n.Attr.Storage > StateInt8 {
			return nil, 0, fmt.Errorf("storage %s", n.Attr.Storage)
		}
		for _, m := range g.Nodes {
			if m.Op == OpState && m.Attr.Name == n.Attr.Name {
				return nil, 0, fmt.Errorf("state %q declared twice", n.Attr.Name)
			}
		}
		return n.Shape, Float32, positive(n.Shape)
	}
	st, x, pos := g.in(n, 0), g.in(n, 1), g.in(n, 2)
	if st.Op != OpState {
		return nil, 0, fmt.Errorf("operand 0 (%s) is a %s, want a State", st.Label, st.Op)
	}
	for _, m := range g.Nodes {
		if m.Op == OpStateWrite && m.Inputs[0] == n.Inputs[0] {
			return nil, 0, fmt.Errorf("state %q is already written by %q: one write per state per graph", st.Attr.Name, m.Label)
		}
	}
	if x.DType != Float32 || len(x.Shape) != len(st.Shape) || !slices.Equal(x.Shape[1:], st.Shape[1:]) {
		return nil, 0, fmt.Errorf("x %s %s: want f32 [T, %v] to write into state %q %s", x.Shape, x.DType, st.Shape[1:], st.Attr.Name, st.Shape)
	}
	if x.Shape[0] > st.Shape[0] {
		return nil, 0, fmt.Errorf("x has %d rows, state %q holds %d", x.Shape[0], st.Attr.Name, st.Shape[0])
	}
	if pos.DType != Int32 || len(pos.Shape) != 1 || pos.Shape[0] != 1 {
		return nil, 0, fmt.Errorf("pos %s %s: want i32 [1]", pos.Shape, pos.DType)
	}
	if k := n.Attr.End; k <= 0 || k > st.Shape[0] {
		return nil, 0, fmt.Errorf("keep %d outside [1, %d] (state %q)", k, st.Shape[0], st.Attr.Name)
	}
	out := slices.Clone(st.Shape)
	out[0] = n.Attr.End
	return out, Float32, nil
}
