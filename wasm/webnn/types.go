package webnn

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// DataType is an MLOperandDataType (https://www.w3.org/TR/webnn/#enumdef-mloperanddatatype).
type DataType string

const (
	Float32 DataType = "float32"
	Float16 DataType = "float16"
	Int32   DataType = "int32"
	Uint32  DataType = "uint32"
	Int64   DataType = "int64"
	Uint64  DataType = "uint64"
	Int8    DataType = "int8"
	Uint8   DataType = "uint8"
	Int4    DataType = "int4"
	Uint4   DataType = "uint4"
)

// Bits returns the storage width of one element.
func (t DataType) Bits() int {
	switch t {
	case Float32, Int32, Uint32:
		return 32
	case Float16:
		return 16
	case Int64, Uint64:
		return 64
	case Int8, Uint8:
		return 8
	case Int4, Uint4:
		return 4
	}
	return 0
}

// Descriptor is an MLOperandDescriptor: a data type and a static shape.
type Descriptor struct {
	DataType DataType
	Shape    []int
}

// Elements is the product of the shape (1 for a scalar).
func (d Descriptor) Elements() int {
	n := 1
	for _, s := range d.Shape {
		n *= s
	}
	return n
}

// ByteLength is the size of a buffer holding the operand; sub-byte types pack densely, the
// first element in the low bits, rounded up to whole bytes.
func (d Descriptor) ByteLength() int { return (d.Elements()*d.DataType.Bits() + 7) / 8 }

func (d Descriptor) String() string { return fmt.Sprintf("%s%v", d.DataType, d.Shape) }

// DeviceType is an MLDeviceType hint (https://www.w3.org/TR/webnn/#enumdef-mldevicetype).
type DeviceType string

const (
	CPU DeviceType = "cpu"
	GPU DeviceType = "gpu"
	NPU DeviceType = "npu"
)

// Flag is what a user must turn on when WebNN is missing.
const Flag = "--enable-features=WebMachineLearningNeuralNetwork (chrome://flags/#web-machine-learning-neural-network)"

var (
	// ErrUnavailable is wrapped when navigator.ml does not exist.
	ErrUnavailable = errors.New("webnn: navigator.ml is not available")
	// ErrContext is wrapped when createContext rejects, throws or never settles.
	ErrContext = errors.New("webnn: cannot create an MLContext")
	// ErrLost is wrapped by calls on a context that was lost or destroyed.
	ErrLost = errors.New("webnn: context lost")
	// ErrUnsupported is wrapped when an op, or an operand's data type or rank, is outside what
	// the context's opSupportLimits accept: the caller may decompose the op another way.
	ErrUnsupported = errors.New("webnn: not supported by this context")
)

// Range is a tensor rank range.
type Range struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// TensorLimits are the data types and ranks one operand of one op accepts.
type TensorLimits struct {
	DataTypes []DataType `json:"dataTypes"`
	RankRange Range      `json:"rankRange"`
}

// Accepts reports whether the operand takes type t at rank r.
func (l TensorLimits) Accepts(t DataType, rank int) bool {
	return slices.Contains(l.DataTypes, t) && rank >= l.RankRange.Min && rank <= l.RankRange.Max
}

// Limits is MLOpSupportLimits parsed: what this context's ops accept
// (https://www.w3.org/TR/webnn/#api-mlcontext-opsupportlimits).
type Limits struct {
	// PreferredInputLayout is "nchw" or "nhwc".
	PreferredInputLayout string
	MaxTensorByteLength  int64
	// Ops maps an op name ("dequantizeLinear", or "input", "constant", "output" with the
	// single operand key "") to its operands ("input", "scale", "a", ...).
	Ops map[string]map[string]TensorLimits
	// JSON is the dictionary as the browser returned it, for logs.
	JSON []byte
}

// ParseLimits reads the JSON form of MLOpSupportLimits. Unknown members are kept in JSON and
// otherwise ignored, so a newer browser does not break the parse.
func ParseLimits(b []byte) (*Limits, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("webnn: opSupportLimits is not a JSON object: %w", err)
	}
	l := &Limits{Ops: map[string]map[string]TensorLimits{}, JSON: b}
	for name, v := range raw {
		switch name {
		case "preferredInputLayout":
			_ = json.Unmarshal(v, &l.PreferredInputLayout)
			continue
		case "maxTensorByteLength":
			_ = json.Unmarshal(v, &l.MaxTensorByteLength)
			continue
		}
		// input/constant/output are one TensorLimits; ops are a map of them.
		var one TensorLimits
		if err := json.Unmarshal(v, &one); err == nil && one.DataTypes != nil {
			l.Ops[name] = map[string]TensorLimits{"": one}
			continue
		}
		var ops map[string]json.RawMessage
		if err := json.Unmarshal(v, &ops); err != nil {
			continue
		}
		m := map[string]TensorLimits{}
		for operand, ov := range ops {
			var tl TensorLimits
			if json.Unmarshal(ov, &tl) == nil && tl.DataTypes != nil {
				m[operand] = tl
			}
		}
		if len(m) > 0 {
			l.Ops[name] = m
		}
	}
	return l, nil
}

// Accepts reports whether op's operand takes type t at rank r. For "input", "constant" and
// "output" pass operand "".
func (l *Limits) Accepts(op, operand string, t DataType, rank int) bool {
	if l == nil {
		return false
	}
	tl, ok := l.Ops[op][operand]
	return ok && tl.Accepts(t, rank)
}

// Summary is one line per op that matters to quantized matmuls, for test logs and Caps notes.
func (l *Limits) Summary(ops ...string) []string {
	var out []string
	for _, op := range ops {
		m, ok := l.Ops[op]
		if !ok {
			out = append(out, op+": unsupported")
			continue
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := op + ":"
		for _, k := range keys {
			s += fmt.Sprintf(" %s%v r%d-%d", k, m[k].DataTypes, m[k].RankRange.Min, m[k].RankRange.Max)
		}
		out = append(out, s)
	}
	return out
}
