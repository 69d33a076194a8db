package graph

import "fmt"

// Tensor is a run-time value crossing a backend boundary: a graph input or output. Exactly one
// of F32 and I32 holds the elements (row-major), as the value's DType says.
type Tensor struct {
	Shape Shape
	F32   []float32
	I32   []int32
}

// F32Tensor and I32Tensor wrap data with its shape.
func F32Tensor(data []float32, shape ...int) Tensor { return Tensor{Shape: Shape(shape), F32: data} }
func I32Tensor(data []int32, shape ...int) Tensor   { return Tensor{Shape: Shape(shape), I32: data} }

// DType says which slice holds the elements.
func (t Tensor) DType() DType {
	if t.I32 != nil {
		return Int32
	}
	return Float32
}

// CheckInputs validates run-time inputs against the graph's declared inputs, so every backend
// rejects a bad call the same way before any device work.
func (g *Graph) CheckInputs(in []Tensor) error {
	if len(in) != len(g.Inputs) {
		return fmt.Errorf("%w: graph %q takes %d inputs, got %d", ErrShape, g.Name, len(g.Inputs), len(in))
	}
	for i, v := range g.Inputs {
		n := &g.Nodes[v]
		t := in[i]
		if !equalShape(t.Shape, n.Shape) || t.DType() != n.DType {
			return fmt.Errorf("%w: graph %q: input %q is %s %s, got %s %s", ErrShape, g.Name, n.Attr.Name, n.Shape, n.DType, t.Shape, t.DType())
		}
		l := len(t.F32)
		if t.DType() == Int32 {
			l = len(t.I32)
		}
		if l != n.Shape.Size() {
			return fmt.Errorf("%w: graph %q: input %q has %d values for %s", ErrShape, g.Name, n.Attr.Name, l, n.Shape)
		}
	}
	return nil
}

func equalShape(a, b Shape) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
