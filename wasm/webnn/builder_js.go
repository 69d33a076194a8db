//go:build js && wasm

package webnn

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Builder is an MLGraphBuilder (https://www.w3.org/TR/webnn/#api-mlgraphbuilder).
//
// Builder methods do not return errors one by one: the first failure is kept and every later
// call becomes a no-op, so a graph reads as a straight sequence of ops and Build reports the
// first problem with the label of the node that caused it.
type Builder struct {
	c      *Context
	v      js.Value
	err    error
	limits *Limits // nil when opSupportLimits failed: then the browser's own checks are all there is
}

// Operand is an MLOperand (https://www.w3.org/TR/webnn/#api-mloperand).
type Operand struct {
	v     js.Value
	Label string
	// Desc is the operand's data type and shape as the browser inferred them.
	Desc Descriptor
}

var graphBuilder = js.Global().Get("MLGraphBuilder")

// NewBuilder returns a builder for graphs on c.
func (c *Context) NewBuilder() *Builder {
	b := &Builder{c: c}
	if !graphBuilder.Truthy() {
		b.err = fmt.Errorf("%w: MLGraphBuilder is not defined", ErrUnavailable)
		return b
	}
	b.v, b.err = jsutil.New(graphBuilder, c.v)
	if b.err != nil {
		b.err = fmt.Errorf("webnn: new MLGraphBuilder: %w", b.err)
	}
	b.limits, _ = c.OpSupportLimits()
	return b
}

// Limits is the context's opSupportLimits every op is checked against (nil if unreadable).
func (b *Builder) Limits() *Limits { return b.limits }

// Err returns the first error the builder met.
func (b *Builder) Err() error { return b.err }

func opts(label string, kv ...any) js.Value {
	o := jsutil.ObjectClass.New()
	o.Set("label", label)
	for i := 0; i+1 < len(kv); i += 2 {
		o.Set(kv[i].(string), kv[i+1])
	}
	return o
}

// call runs builder.op(args...) unless an earlier call failed. keys name the *Operand
// arguments in order as opSupportLimits names them ("a", "input", "indices"...); each is checked
// against the context's limits before the browser sees it, and the result against "output", so an
// unsupported type or rank is reported as ErrUnsupported with the op's label, not as a bare
// TypeError from deep inside build.
func (b *Builder) call(label, op string, keys []string, args ...any) *Operand {
	if b.err != nil {
		return &Operand{Label: label}
	}
	jargs := make([]any, len(args))
	k := 0
	for i, a := range args {
		switch o := a.(type) {
		case *Operand:
			if !o.v.Truthy() {
				b.err = fmt.Errorf("webnn: %s %q: an argument operand is missing", op, label)
				return &Operand{Label: label}
			}
			if k < len(keys) {
				if b.err = b.check(label, op, keys[k], o.Desc); b.err != nil {
					return &Operand{Label: label}
				}
				k++
			}
			jargs[i] = o.v
		case []*Operand: // concat's inputs: one key for all
			arr := make([]any, len(o))
			for j, e := range o {
				if !e.v.Truthy() {
					b.err = fmt.Errorf("webnn: %s %q: argument operand %d is missing", op, label, j)
					return &Operand{Label: label}
				}
				if k < len(keys) {
					if b.err = b.check(label, op, keys[k], e.Desc); b.err != nil {
						return &Operand{Label: label}
					}
				}
				arr[j] = e.v
			}
			k++
			jargs[i] = arr
		default:
			jargs[i] = a
		}
	}
	v, err := jsutil.Call(b.v, op, jargs...)
	if err != nil {
		b.err = fmt.Errorf("webnn: %s %q: %w", op, label, err)
		return &Operand{Label: label}
	}
	out := &Operand{v: v, Label: label, Desc: descOf(v)}
	outKey := "output"
	if op == "input" || op == "constant" {
		outKey = ""
	}
	b.err = b.check(label, op, outKey, out.Desc)
	return out
}

// option checks an operand passed in an options dictionary rather than as an argument, and
// reports whether building may go on.
func (b *Builder) option(label, op, key string, o *Operand) bool {
	if b.err == nil && !o.v.Truthy() {
		b.err = fmt.Errorf("webnn: %s %q: operand %s is missing", op, label, key)
	}
	if b.err == nil {
		b.err = b.check(label, op, key, o.Desc)
	}
	return b.err == nil
}

// check says whether op's operand key takes d on this context.
func (b *Builder) check(label, op, key string, d Descriptor) error {
	if b.limits == nil || b.limits.Accepts(op, key, d.DataType, len(d.Shape)) {
		return nil
	}
	have := "not supported"
	if tl, ok := b.limits.Ops[op][key]; ok {
		have = fmt.Sprintf("accepts %v at rank %d-%d", tl.DataTypes, tl.RankRange.Min, tl.RankRange.Max)
	} else if _, ok := b.limits.Ops[op]; !ok {
		have = "is not an op of this context"
	}
	what := op
	if key != "" {
		what += " " + key
	}
	return fmt.Errorf("%w: %s %q: %s is %v; this context %s", ErrUnsupported, op, label, what, d, have)
}

func descOf(v js.Value) Descriptor {
	d := Descriptor{DataType: DataType(v.Get("dataType").String())}
	s := v.Get("shape")
	d.Shape = make([]int, s.Length())
	for i := range d.Shape {
		d.Shape[i] = s.Index(i).Int()
	}
	return d
}

// Input declares a graph input named name (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-input).
func (b *Builder) Input(name string, d Descriptor) *Operand {
	return b.call(name, "input", nil, name, d.toJS(name))
}

// Constant declares a constant holding a copy of data, an ArrayBuffer view of exactly
// d.ByteLength() bytes (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-constant). Sub-byte
// types are packed densely, first element in the low bits.
func (b *Builder) Constant(label string, d Descriptor, data js.Value) *Operand {
	if b.err == nil && data.Get("byteLength").Int() != d.ByteLength() {
		b.err = fmt.Errorf("webnn: constant %q %v: %d bytes, want %d", label, d, data.Get("byteLength").Int(), d.ByteLength())
	}
	return b.call(label, "constant", nil, d.toJS(label), data)
}

// ConstantBytes is Constant with the bytes copied from Go.
func (b *Builder) ConstantBytes(label string, d Descriptor, data []byte) *Operand {
	if b.err != nil {
		return &Operand{Label: label}
	}
	return b.Constant(label, d, jsutil.BytesToJS(data))
}

// DequantizeLinear computes (input − zeroPoint) · scale with block-wise broadcasting: each
// dimension of scale and zeroPoint must divide the input's
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-dequantizelinear).
func (b *Builder) DequantizeLinear(label string, input, scale, zeroPoint *Operand) *Operand {
	return b.call(label, "dequantizeLinear", []string{"input", "scale", "zeroPoint"}, input, scale, zeroPoint, opts(label))
}

// Matmul is a·b over the last two dimensions (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-matmul).
func (b *Builder) Matmul(label string, a, bb *Operand) *Operand {
	return b.call(label, "matmul", []string{"a", "b"}, a, bb, opts(label))
}

// GemmOptions are the MLGemmOptions nibble uses.
type GemmOptions struct {
	ATranspose, BTranspose bool
	// C, if set, is added to the product (broadcast to [M, N]).
	C *Operand
}

// Gemm is a·b (+ c) on 2-D operands with optional transposes (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-gemm).
func (b *Builder) Gemm(label string, a, bb *Operand, o GemmOptions) *Operand {
	jo := opts(label, "aTranspose", o.ATranspose, "bTranspose", o.BTranspose)
	if o.C == nil {
		return b.call(label, "gemm", []string{"a", "b"}, a, bb, jo)
	}
	if !b.option(label, "gemm", "c", o.C) {
		return &Operand{Label: label}
	}
	jo.Set("c", o.C.v)
	return b.call(label, "gemm", []string{"a", "b"}, a, bb, jo)
}

// Reshape (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-reshape-method).
func (b *Builder) Reshape(label string, x *Operand, shape []int) *Operand {
	return b.call(label, "reshape", []string{"input"}, x, ints(shape), opts(label))
}

// Transpose reverses the dimensions when perm is nil (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-transpose).
func (b *Builder) Transpose(label string, x *Operand, perm []int) *Operand {
	o := opts(label)
	if perm != nil {
		o.Set("permutation", ints(perm))
	}
	return b.call(label, "transpose", []string{"input"}, x, o)
}

// Cast (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-cast).
func (b *Builder) Cast(label string, x *Operand, t DataType) *Operand {
	return b.call(label, "cast", []string{"input"}, x, string(t), opts(label))
}

// Mul and Sub are element-wise with broadcasting (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-binary).
func (b *Builder) Mul(label string, x, y *Operand) *Operand {
	return b.call(label, "mul", []string{"a", "b"}, x, y, opts(label))
}

func (b *Builder) Sub(label string, x, y *Operand) *Operand {
	return b.call(label, "sub", []string{"a", "b"}, x, y, opts(label))
}

// Pad adds beginning[i] and ending[i] zeros along dimension i (constant mode)
// (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-pad).
func (b *Builder) Pad(label string, x *Operand, beginning, ending []int) *Operand {
	return b.call(label, "pad", []string{"input"}, x, ints(beginning), ints(ending), opts(label))
}

// Build compiles the graph with the named outputs (https://www.w3.org/TR/webnn/#api-mlgraphbuilder-build).
func (b *Builder) Build(label string, outputs map[string]*Operand) (*Graph, error) {
	if b.err != nil {
		return nil, fmt.Errorf("webnn: build %q: %w", label, b.err)
	}
	o := jsutil.ObjectClass.New()
	for k, op := range outputs {
		o.Set(k, op.v)
	}
	p, err := jsutil.Call(b.v, "build", o)
	if err == nil {
		var v js.Value
		if v, err = jsutil.Await(p, BuildTimeout); err == nil {
			return &Graph{v: v, Label: label}, nil
		}
	}
	if lerr := b.c.Err(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	return nil, fmt.Errorf("webnn: build %q: %w", label, err)
}

func ints(s []int) []any {
	a := make([]any, len(s))
	for i, v := range s {
		a[i] = v
	}
	return a
}
