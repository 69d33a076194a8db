package onnx

import (
	"fmt"
)

// Ops are the operators this package writes, by domain, with their operand counts (min, max).
var Ops = map[string]map[string][2]int{
	"": {
		"Add": {2, 2}, "Sub": {2, 2}, "Mul": {2, 2}, "Div": {2, 2}, "Clip": {1, 3},
		"Equal": {2, 2}, "Less": {2, 2}, "GreaterOrEqual": {2, 2}, "Where": {3, 3},
		"Cast": {1, 1}, "Shape": {1, 1}, "Unsqueeze": {2, 2}, "Reshape": {2, 2}, "Transpose": {1, 1},
		"Slice": {3, 5}, "Concat": {1, 1 << 20}, "Gather": {2, 2}, "MatMul": {2, 2},
		"Softmax": {1, 1}, "LayerNormalization": {2, 3}, "ReduceSum": {1, 2}, "ReduceSumSquare": {1, 1},
		"ReduceMean": {1, 1}, "Sqrt": {1, 1}, "Relu": {1, 1}, "Tanh": {1, 1}, "Erf": {1, 1}, "Sigmoid": {1, 1},
	},
	Microsoft: {"MatMulNBits": {3, 4}, "GatherBlockQuantized": {3, 4}},
}

// Check verifies a model's structure without running it: the opsets it imports cover its nodes'
// domains, every node is an operator of Ops with a valid operand count, every operand is a graph
// input, an initializer or an earlier node's output (the graph is in topological order), no
// tensor is written twice, every initializer holds the bytes its type and dimensions say, and
// every graph output is written.
func Check(m *Model) error {
	if m.IRVersion < 3 {
		return fmt.Errorf("onnx: ir_version %d", m.IRVersion)
	}
	if m.Opsets[""] < Opset {
		return fmt.Errorf("onnx: standard opset %d, want ≥ %d", m.Opsets[""], Opset)
	}
	defined := map[string]string{}
	def := func(name, what string) error {
		if name == "" {
			return fmt.Errorf("onnx: %s has an empty name", what)
		}
		if prev, ok := defined[name]; ok {
			return fmt.Errorf("onnx: %q is both %s and %s", name, prev, what)
		}
		defined[name] = what
		return nil
	}
	for _, v := range m.Inputs {
		if err := def(v.Name, "a graph input"); err != nil {
			return err
		}
		if elemSize(v.ElemType) == 0 {
			return fmt.Errorf("onnx: input %q has element type %d", v.Name, v.ElemType)
		}
	}
	for _, t := range m.Initializers {
		if err := def(t.Name, "an initializer"); err != nil {
			return err
		}
		size := int64(elemSize(t.DataType))
		if size == 0 {
			return fmt.Errorf("onnx: initializer %q has data type %d", t.Name, t.DataType)
		}
		for _, d := range t.Dims {
			if d < 0 {
				return fmt.Errorf("onnx: initializer %q has dimension %d", t.Name, d)
			}
			size *= d
		}
		if int64(len(t.Raw)) != size {
			return fmt.Errorf("onnx: initializer %q: %d bytes for type %d dims %v (want %d)", t.Name, len(t.Raw), t.DataType, t.Dims, size)
		}
	}
	for i, n := range m.Nodes {
		ops, ok := Ops[n.Domain]
		if !ok {
			return fmt.Errorf("onnx: node %d (%s): domain %q is not one this package writes", i, n.Op, n.Domain)
		}
		if _, ok := m.Opsets[n.Domain]; !ok {
			return fmt.Errorf("onnx: node %d (%s): domain %q is not imported", i, n.Op, n.Domain)
		}
		count, ok := ops[n.Op]
		if !ok {
			return fmt.Errorf("onnx: node %d: %s is not an operator of domain %q this package writes", i, n.Op, n.Domain)
		}
		if len(n.Inputs) < count[0] || len(n.Inputs) > count[1] {
			return fmt.Errorf("onnx: node %d (%s): %d operands, want %d…%d", i, n.Op, len(n.Inputs), count[0], count[1])
		}
		for j, in := range n.Inputs {
			if in == "" && j >= count[0] {
				continue
			}
			if _, ok := defined[in]; !ok {
				return fmt.Errorf("onnx: node %d (%s %s): operand %d %q is not defined before it", i, n.Op, n.Name, j, in)
			}
		}
		if len(n.Outputs) == 0 {
			return fmt.Errorf("onnx: node %d (%s) has no output", i, n.Op)
		}
		for _, out := range n.Outputs {
			if err := def(out, fmt.Sprintf("the output of node %d (%s)", i, n.Op)); err != nil {
				return err
			}
		}
	}
	if len(m.Outputs) == 0 {
		return fmt.Errorf("onnx: the graph has no outputs")
	}
	for _, o := range m.Outputs {
		if _, ok := defined[o.Name]; !ok {
			return fmt.Errorf("onnx: graph output %q is never written", o.Name)
		}
	}
	return nil
}
