//go:build js && wasm

package webnn

// The ops below are one method each over MLGraphBuilder, as the spec names them. Each checks its
// operands against opSupportLimits through call, so a caller that must decompose an op can ask
// Limits().Accepts first and otherwise gets ErrUnsupported naming the node.

// Add, Div, Max and Min are element-wise with broadcasting
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-binary).
func (b *Builder) Add(label string, x, y *Operand) *Operand {
	return b.call(label, "add", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) Div(label string, x, y *Operand) *Operand {
	return b.call(label, "div", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) Max(label string, x, y *Operand) *Operand {
	return b.call(label, "max", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) Min(label string, x, y *Operand) *Operand {
	return b.call(label, "min", []string{"a", "b"}, x, y, opts(label))
}

// NotEqual, GreaterOrEqual and Lesser compare element-wise with broadcasting and give uint8 0/1
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-logical).
func (b *Builder) NotEqual(label string, x, y *Operand) *Operand {
	return b.call(label, "notEqual", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) GreaterOrEqual(label string, x, y *Operand) *Operand {
	return b.call(label, "greaterOrEqual", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) Lesser(label string, x, y *Operand) *Operand {
	return b.call(label, "lesser", []string{"a", "b"}, x, y, opts(label))
}

// LogicalAnd is the element-wise and of two uint8 operands
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-logical).
func (b *Builder) LogicalAnd(label string, x, y *Operand) *Operand {
	return b.call(label, "logicalAnd", []string{"a", "b"}, x, y, opts(label))
}

// Where picks trueValue where condition (uint8) is non-zero, else falseValue, all three
// broadcast together (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-where).
func (b *Builder) Where(label string, condition, trueValue, falseValue *Operand) *Operand {
	return b.call(label, "where", []string{"condition", "trueValue", "falseValue"}, condition, trueValue, falseValue, opts(label))
}

// unary is builder.op(x) for the element-wise unary ops.
func (b *Builder) unary(label, op string, x *Operand) *Operand {
	return b.call(label, op, []string{"input"}, x, opts(label))
}

// Relu, Sigmoid, Tanh and Gelu are the activations of
// https://www.w3.org/TR/webnn/#api-mlgraphbuilder-relu-method and siblings; WebNN's gelu is
// the exact form x·Φ(x) with erf.
func (b *Builder) Relu(label string, x *Operand) *Operand    { return b.unary(label, "relu", x) }
func (b *Builder) Sigmoid(label string, x *Operand) *Operand { return b.unary(label, "sigmoid", x) }
func (b *Builder) Tanh(label string, x *Operand) *Operand    { return b.unary(label, "tanh", x) }
func (b *Builder) Gelu(label string, x *Operand) *Operand    { return b.unary(label, "gelu", x) }

// Erf, Exp, Sqrt, Cos and Sin are element-wise
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-unary).
func (b *Builder) Erf(label string, x *Operand) *Operand  { return b.unary(label, "erf", x) }
func (b *Builder) Exp(label string, x *Operand) *Operand  { return b.unary(label, "exp", x) }
func (b *Builder) Sqrt(label string, x *Operand) *Operand { return b.unary(label, "sqrt", x) }
func (b *Builder) Cos(label string, x *Operand) *Operand  { return b.unary(label, "cos", x) }
func (b *Builder) Sin(label string, x *Operand) *Operand  { return b.unary(label, "sin", x) }

// Identity copies x; a graph output must not be a graph input or constant itself, so those go
// through it (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-identity).
func (b *Builder) Identity(label string, x *Operand) *Operand { return b.unary(label, "identity", x) }

// Softmax normalizes along axis (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-softmax-method).
func (b *Builder) Softmax(label string, x *Operand, axis int) *Operand {
	return b.call(label, "softmax", []string{"input"}, x, axis, opts(label))
}

// LayerNormalization is (x − mean)/√(var + epsilon)·scale + bias over axes
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-layernorm).
func (b *Builder) LayerNormalization(label string, x, scale, bias *Operand, axes []int, epsilon float32) *Operand {
	if !b.option(label, "layerNormalization", "scale", scale) || !b.option(label, "layerNormalization", "bias", bias) {
		return &Operand{Label: label}
	}
	return b.call(label, "layerNormalization", []string{"input"}, x, opts(label, "scale", scale.v, "bias", bias.v, "axes", ints(axes), "epsilon", epsilon))
}

// reduce is builder.op(x, {axes, keepDimensions}).
func (b *Builder) reduce(label, op string, x *Operand, axes []int, keep bool) *Operand {
	return b.call(label, op, []string{"input"}, x, opts(label, "axes", ints(axes), "keepDimensions", keep))
}

// ReduceSum, ReduceMean, ReduceMax and ReduceSumSquare reduce over axes, keeping them as size 1
// when keep is set (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-reduce).
func (b *Builder) ReduceSum(label string, x *Operand, axes []int, keep bool) *Operand {
	return b.reduce(label, "reduceSum", x, axes, keep)
}

func (b *Builder) ReduceMean(label string, x *Operand, axes []int, keep bool) *Operand {
	return b.reduce(label, "reduceMean", x, axes, keep)
}

func (b *Builder) ReduceMax(label string, x *Operand, axes []int, keep bool) *Operand {
	return b.reduce(label, "reduceMax", x, axes, keep)
}

func (b *Builder) ReduceSumSquare(label string, x *Operand, axes []int, keep bool) *Operand {
	return b.reduce(label, "reduceSumSquare", x, axes, keep)
}

// Slice keeps sizes[i] elements from starts[i] along each dimension
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-slice).
func (b *Builder) Slice(label string, x *Operand, starts, sizes []int) *Operand {
	return b.call(label, "slice", []string{"input"}, x, ints(starts), ints(sizes), opts(label))
}

// Concat joins inputs along axis (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-concat).
func (b *Builder) Concat(label string, inputs []*Operand, axis int) *Operand {
	return b.call(label, "concat", []string{"inputs"}, inputs, axis, opts(label))
}

// Gather picks slices of input along axis by indices
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-gather). Out-of-range indices are not
// defined by the spec to give anything in particular: callers clamp them.
func (b *Builder) Gather(label string, input, indices *Operand, axis int) *Operand {
	return b.call(label, "gather", []string{"input", "indices"}, input, indices, opts(label, "axis", axis))
}

// QuantizeLinear computes saturate(round(input/scale) + zeroPoint) in zeroPoint's type
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-quantizelinear).
func (b *Builder) QuantizeLinear(label string, input, scale, zeroPoint *Operand) *Operand {
	return b.call(label, "quantizeLinear", []string{"input", "scale", "zeroPoint"}, input, scale, zeroPoint, opts(label))
}
