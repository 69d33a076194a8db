// Package graph is nibble's intermediate representation of a network: a list of typed ops over
// values with static shapes, built once by model code (wasm/model/...) and executed by any
// backend (the cpu interpreter is the reference; gpu records one WGSL dispatch per op; nn builds
// one MLGraph).
//
// A Graph is a value: it prints (String), it can be checked natively, and every op checks its
// operands' shapes when it is added, so a bad graph fails at build time with an error naming the
// op, its label and the dimension, never at run time on a device.
//
// Shapes are static. Models bucket the dynamic dimensions (batch, sequence) and build one graph
// per bucket, with masks for the padding, so a backend compiles a bucket once and reuses it.
//
// Weights are not data of the graph: a Weight node names a tensor the backend holds (uploaded by
// wasm/stream, quantized or not); backends bind names to resident weights at Compile.
//
// The package is pure Go and must stay free of syscall/js.
package graph

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrShape is wrapped by every error a graph reports at build time.
var ErrShape = errors.New("graph: bad shape")

// DType is a value's element type.
type DType uint8

const (
	Float32 DType = iota
	Int32
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "f32"
	case Int32:
		return "i32"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Shape lists dimensions, outermost first.
type Shape []int

// Size is the number of elements.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, "×") + "]"
}

// Value names the output of one node.
type Value int

// None marks an absent optional operand (a Linear without bias, a Softmax without mask).
const None Value = -1

// Node is one op and its output.
type Node struct {
	Op     Op
	Label  string // what the model calls it ("layer0/attn/q"), for printing and errors
	Inputs []Value
	Shape  Shape
	DType  DType
	Attr   Attr
}

// Attr holds the parameters an op needs beyond its operands; each op uses only its own fields.
type Attr struct {
	Eps         float32 // LayerNorm, RMSNorm, L2Normalize
	Scale       float32 // Scale
	Perm        []int   // Transpose
	Axis        int     // Slice, Concat
	Start, End  int     // Slice: [Start, End) along Axis
	TransB      bool    // MatMul: b is [..., N, K]
	Base        float32 // RoPE: theta base
	Interleaved bool    // RoPE: rotate adjacent pairs (GGUF llama) rather than halves (NeoX)
	Name        string  // Input, Weight, State: the tensor's name
	Data        []float32
	Storage     StateFormat // State: how the backend stores its elements
}

// Graph is a network under construction or built. The zero value is not usable: use New.
type Graph struct {
	Name    string
	Nodes   []Node
	Inputs  []Value // in the order Run takes them
	Outputs []Value // in the order Run returns them
	err     error
}

// New starts an empty graph.
func New(name string) *Graph { return &Graph{Name: name} }

// Err is the first build error; once set, later ops are no-ops returning None.
func (g *Graph) Err() error { return g.err }

// Node returns v's node.
func (g *Graph) Node(v Value) *Node { return &g.Nodes[v] }

// Shape is v's shape.
func (g *Graph) Shape(v Value) Shape { return g.Nodes[v].Shape }

// Output marks values as the graph's outputs, in order, and returns the first build error.
func (g *Graph) Output(vs ...Value) error {
	if g.err != nil {
		return g.err
	}
	for _, v := range vs {
		if !g.valid(v) {
			g.fail(OpInput, "", "output %d is not a value of this graph", v)
			return g.err
		}
	}
	g.Outputs = append(g.Outputs, vs...)
	return nil
}

// Validate re-checks a finished graph: outputs exist, operands precede their users, shapes agree
// with what each op infers. A graph built through the methods of this package always passes;
// Validate guards graphs built or edited by hand.
func (g *Graph) Validate() error {
	if g.err != nil {
		return g.err
	}
	if len(g.Outputs) == 0 {
		return fmt.Errorf("%w: graph %q has no outputs", ErrShape, g.Name)
	}
	check := &Graph{Name: g.Name}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != None && (in < 0 || int(in) >= i) {
				return fmt.Errorf("%w: graph %q: node %d (%s %q) uses %%%d, which does not precede it", ErrShape, g.Name, i, n.Op, n.Label, in)
			}
		}
		v := check.add(n)
		if check.err != nil {
			return check.err
		}
		if !slices.Equal(check.Nodes[v].Shape, n.Shape) || check.Nodes[v].DType != n.DType {
			return fmt.Errorf("%w: graph %q: node %d (%s %q) says %s %s, its operands give %s %s", ErrShape, g.Name, i, n.Op, n.Label, n.Shape, n.DType, check.Nodes[v].Shape, check.Nodes[v].DType)
		}
	}
	for _, o := range g.Outputs {
		if !g.valid(o) {
			return fmt.Errorf("%w: graph %q: output %%%d does not exist", ErrShape, g.Name, o)
		}
	}
	return nil
}

// Weights lists the names of the resident tensors the graph reads, in first-use order.
func (g *Graph) Weights() []string {
	var out []string
	for _, n := range g.Nodes {
		if n.Op == OpWeight && !slices.Contains(out, n.Attr.Name) {
			out = append(out, n.Attr.Name)
		}
	}
	return out
}

// LastUse gives, for every node, the index of the last node that reads it (len(Nodes) for
// outputs, which live to the end; -1 for values nothing reads). Backends plan buffer reuse from it.
func (g *Graph) LastUse() []int {
	last := make([]int, len(g.Nodes))
	for i := range last {
		last[i] = -1
	}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != None {
				last[in] = i
			}
		}
	}
	for _, o := range g.Outputs {
		last[o] = len(g.Nodes)
	}
	return last
}

// String prints one line per node: "%7 = linear(%5, %6) [2×9×768] f32  layer0/attn/qkv".
func (g *Graph) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q: %d nodes, inputs %v, outputs %v\n", g.Name, len(g.Nodes), g.Inputs, g.Outputs)
	for i, n := range g.Nodes {
		args := make([]string, 0, len(n.Inputs)+1)
		for _, in := range n.Inputs {
			if in == None {
				args = append(args, "-")
			} else {
				args = append(args, fmt.Sprintf("%%%d", in))
			}
		}
		if a := n.attrString(); a != "" {
			args = append(args, a)
		}
		fmt.Fprintf(&b, "%%%d = %s(%s) %s %s", i, n.Op, strings.Join(args, ", "), n.Shape, n.DType)
		if n.Label != "" {
			fmt.Fprintf(&b, "  %s", n.Label)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (n *Node) attrString() string {
	a := n.Attr
	switch n.Op {
	case OpInput, OpWeight:
		return fmt.Sprintf("%q", a.Name)
	case OpConst:
		return fmt.Sprintf("%d values", len(a.Data))
	case OpLayerNorm, OpRMSNorm, OpL2Normalize:
		return fmt.Sprintf("eps=%g", a.Eps)
	case OpScale:
		return fmt.Sprintf("×%g", a.Scale)
	case OpTranspose:
		return fmt.Sprintf("perm=%v", a.Perm)
	case OpSlice:
		return fmt.Sprintf("axis=%d [%d:%d]", a.Axis, a.Start, a.End)
	case OpConcat:
		return fmt.Sprintf("axis=%d", a.Axis)
	case OpMatMul:
		if a.TransB {
			return "bᵀ"
		}
	case OpState:
		return fmt.Sprintf("%q %s", a.Name, a.Storage)
	case OpStateWrite:
		return fmt.Sprintf("keep [0:%d]", a.End)
	case OpRoPE:
		s := fmt.Sprintf("base=%g", a.Base)
		if a.Interleaved {
			s += " interleaved"
		}
		return s
	}
	return ""
}

func (g *Graph) valid(v Value) bool { return v >= 0 && int(v) < len(g.Nodes) }

func (g *Graph) fail(op Op, label, format string, args ...any) Value {
	if g.err == nil {
		where := op.String()
		if label != "" {
			where += " " + fmt.Sprintf("%q", label)
		}
		g.err = fmt.Errorf("%w: graph %q: %s: %s", ErrShape, g.Name, where, fmt.Sprintf(format, args...))
	}
	return None
}
