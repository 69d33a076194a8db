package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A minimal ONNX writer and reader: just enough of onnx.proto (proto2) for the models this
// package writes, hand-encoded so nothing needs a protobuf dependency. Field numbers are those
// of onnx/onnx.proto; each message below lists the ones used.
//
//	ModelProto          ir_version=1 (int64) · producer_name=2 · graph=7 · opset_import=8
//	OperatorSetIdProto  domain=1 · version=2 (int64)
//	GraphProto          node=1 · name=2 · initializer=5 · input=11 · output=12
//	NodeProto           input=1 · output=2 · name=3 · op_type=4 · attribute=5 · domain=7
//	AttributeProto      name=1 · f=2 (fixed32) · i=3 (int64) · ints=8 (int64, one field each) ·
//	                    type=20 (AttributeType: FLOAT=1, INT=2, INTS=7)
//	TensorProto         dims=1 (int64, one field each, unpacked as proto2 writes them) ·
//	                    data_type=2 · name=8 · raw_data=9 (little-endian, row-major)
//	ValueInfoProto      name=1 · type=2
//	TypeProto           tensor_type=1
//	TypeProto.Tensor    elem_type=1 · shape=2
//	TensorShapeProto    dim=1
//	Dimension           dim_value=1 (int64) · dim_param=2 (string)
const (
	IRVersion      = 8  // ONNX 1.10+: every ORT 1.30 build reads it
	Opset          = 17 // the standard domain: LayerNormalization is 17
	MicrosoftOpset = 1  // com.microsoft MatMulNBits and GatherBlockQuantized are version 1

	Microsoft = "com.microsoft"
)

// TensorProto.DataType values.
const (
	Float = 1
	Uint8 = 2
	Int32 = 6
	Int64 = 7
	Bool  = 9
)

// elemSize is the bytes of one element of a data type this package writes.
func elemSize(dt int) int {
	switch dt {
	case Float, Int32:
		return 4
	case Int64:
		return 8
	case Uint8, Bool:
		return 1
	}
	return 0
}

// AttributeProto.AttributeType values.
const (
	attrFloat = 1
	attrInt   = 2
	attrInts  = 7
)

// pbuf appends protobuf wire-format fields to a byte slice.
type pbuf []byte

func (b *pbuf) varint(v uint64) { *b = binary.AppendUvarint(*b, v) }

func (b *pbuf) tag(field, wire int) { b.varint(uint64(field)<<3 | uint64(wire)) }

// Int writes a varint field (wire type 0); negative values take ten bytes as proto's int64 does.
func (b *pbuf) Int(field int, v int64) {
	b.tag(field, 0)
	b.varint(uint64(v))
}

// Float writes a fixed32 field (wire type 5).
func (b *pbuf) Float(field int, v float32) {
	b.tag(field, 5)
	*b = binary.LittleEndian.AppendUint32(*b, math.Float32bits(v))
}

// Bytes writes a length-delimited field (wire type 2): strings, bytes and sub-messages.
func (b *pbuf) Bytes(field int, v []byte) {
	b.tag(field, 2)
	b.varint(uint64(len(v)))
	*b = append(*b, v...)
}

func (b *pbuf) String(field int, s string) { b.Bytes(field, []byte(s)) }

// Initializer is a constant tensor of the graph: raw little-endian bytes of a data type and shape.
type Initializer struct {
	Name     string
	DataType int
	Dims     []int64
	Raw      []byte
}

func (t Initializer) encode() []byte {
	var b pbuf
	for _, d := range t.Dims {
		b.Int(1, d)
	}
	b.Int(2, int64(t.DataType))
	b.String(8, t.Name)
	b.Bytes(9, t.Raw)
	return b
}

// Dim is one dimension of a graph input or output: a size, or a symbolic name (Param).
type Dim struct {
	Value int64
	Param string
}

// ValueInfo is a graph input or output.
type ValueInfo struct {
	Name     string
	ElemType int
	Dims     []Dim
}

func (v ValueInfo) encode() []byte {
	var shape pbuf
	for _, d := range v.Dims {
		var dim pbuf
		if d.Param != "" {
			dim.String(2, d.Param)
		} else {
			dim.Int(1, d.Value)
		}
		shape.Bytes(1, dim)
	}
	var tensor pbuf
	tensor.Int(1, int64(v.ElemType))
	tensor.Bytes(2, shape)
	var typ pbuf
	typ.Bytes(1, tensor)
	var vi pbuf
	vi.String(1, v.Name)
	vi.Bytes(2, typ)
	return vi
}

// Attribute is a node attribute: one of Int, Float or Ints, as Type says.
type Attribute struct {
	Name  string
	Type  int
	Int   int64
	Float float32
	Ints  []int64
}

func (a Attribute) encode() []byte {
	var b pbuf
	b.String(1, a.Name)
	switch a.Type {
	case attrFloat:
		b.Float(2, a.Float)
	case attrInt:
		b.Int(3, a.Int)
	case attrInts:
		for _, v := range a.Ints {
			b.Int(8, v)
		}
	}
	b.Int(20, int64(a.Type))
	return b
}

// IntAttr, FloatAttr and IntsAttr make attributes.
func IntAttr(name string, v int64) Attribute { return Attribute{Name: name, Type: attrInt, Int: v} }
func FloatAttr(name string, v float32) Attribute {
	return Attribute{Name: name, Type: attrFloat, Float: v}
}
func IntsAttr(name string, v ...int64) Attribute {
	return Attribute{Name: name, Type: attrInts, Ints: v}
}

// Attr returns n's attribute name.
func (n *Node) Attr(name string) (Attribute, bool) {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// Node is one operator of the graph.
type Node struct {
	Op      string
	Domain  string // "" for the standard domain, Microsoft for contrib ops
	Name    string
	Inputs  []string // "" for an absent optional input
	Outputs []string
	Attrs   []Attribute
}

func (n *Node) encode() []byte {
	var b pbuf
	for _, in := range n.Inputs {
		b.String(1, in)
	}
	for _, out := range n.Outputs {
		b.String(2, out)
	}
	b.String(3, n.Name)
	b.String(4, n.Op)
	for _, a := range n.Attrs {
		b.Bytes(5, a.encode())
	}
	if n.Domain != "" {
		b.String(7, n.Domain)
	}
	return b
}

// Model is a decoded (or to be encoded) ModelProto with one graph.
type Model struct {
	IRVersion    int64
	Producer     string
	Opsets       map[string]int64 // domain → version
	GraphName    string
	Nodes        []Node
	Initializers []Initializer
	Inputs       []ValueInfo
	Outputs      []ValueInfo
}

// Encode writes m as a ModelProto.
func (m *Model) Encode() []byte {
	var graph pbuf
	for i := range m.Nodes {
		graph.Bytes(1, m.Nodes[i].encode())
	}
	graph.String(2, m.GraphName)
	for _, t := range m.Initializers {
		graph.Bytes(5, t.encode())
	}
	for _, v := range m.Inputs {
		graph.Bytes(11, v.encode())
	}
	for _, v := range m.Outputs {
		graph.Bytes(12, v.encode())
	}
	var model pbuf
	model.Int(1, m.IRVersion)
	model.String(2, m.Producer)
	model.Bytes(7, graph)
	for _, d := range []string{"", Microsoft} { // a fixed order: the bytes are reproducible
		if v, ok := m.Opsets[d]; ok {
			var b pbuf
			b.String(1, d)
			b.Int(2, v)
			model.Bytes(8, b)
		}
	}
	return model
}

// WeightBytes is the size of the initializers' data: what the model hands the runtime.
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, t := range m.Initializers {
		n += int64(len(t.Raw))
	}
	return n
}

// MatMulNBitsModel returns a complete ModelProto computing Y[M,N] = A[M,K] · dequant(B)ᵀ with one
// com.microsoft MatMulNBits node whose B, scales and (when present) zero_points are initializers.
func MatMulNBitsModel(w *ORTWeight, m int) []byte {
	inputs := []string{"A", "B", "scales"}
	inits := []Initializer{
		{Name: "B", DataType: Uint8, Dims: []int64{int64(w.N), int64(w.Blocks), int64(w.BlobSize)}, Raw: w.B},
		{Name: "scales", DataType: Float, Dims: []int64{int64(w.N) * int64(w.Blocks)}, Raw: Float32Bytes(w.Scales)},
	}
	if w.ZeroPoints != nil {
		inputs = append(inputs, "zero_points")
		inits = append(inits, Initializer{Name: "zero_points", DataType: Uint8, Dims: []int64{int64(len(w.ZeroPoints))}, Raw: w.ZeroPoints})
	}
	model := Model{
		IRVersion: IRVersion, Producer: "nibble tools/bench", GraphName: "nibble_bench",
		Opsets: map[string]int64{"": Opset, Microsoft: MicrosoftOpset},
		Nodes: []Node{{Op: "MatMulNBits", Domain: Microsoft, Name: "matmul_nbits", Inputs: inputs, Outputs: []string{"Y"},
			Attrs: []Attribute{IntAttr("K", int64(w.K)), IntAttr("N", int64(w.N)), IntAttr("bits", int64(w.Bits)), IntAttr("block_size", int64(w.BlockSize))}}},
		Initializers: inits,
		Inputs:       []ValueInfo{{Name: "A", ElemType: Float, Dims: []Dim{{Value: int64(m)}, {Value: int64(w.K)}}}},
		Outputs:      []ValueInfo{{Name: "Y", ElemType: Float, Dims: []Dim{{Value: int64(m)}, {Value: int64(w.N)}}}},
	}
	return model.Encode()
}

// Float32Bytes returns f as little-endian bytes (a copy: the host may be big-endian).
func Float32Bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// BytesFloat32 reads little-endian float32s.
func BytesFloat32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// field is one decoded protobuf field.
type field struct {
	num, wire int
	v         uint64 // varint and fixed32
	b         []byte // length-delimited
}

func decode(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("onnx: bad tag %d bytes from the end", len(b))
		}
		b = b[n:]
		f := field{num: int(tag >> 3), wire: int(tag & 7)}
		switch f.wire {
		case 0:
			f.v, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("onnx: field %d: bad varint", f.num)
			}
			b = b[n:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, fmt.Errorf("onnx: field %d: bad length", f.num)
			}
			f.b = b[n : n+int(l)]
			b = b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return nil, fmt.Errorf("onnx: field %d: short fixed32", f.num)
			}
			f.v = uint64(binary.LittleEndian.Uint32(b))
			b = b[4:]
		default:
			return nil, fmt.Errorf("onnx: field %d: wire type %d is never written", f.num, f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

// Parse decodes a ModelProto as Encode writes it (the fields listed above; others are skipped).
func Parse(b []byte) (*Model, error) {
	top, err := decode(b)
	if err != nil {
		return nil, err
	}
	m := &Model{Opsets: map[string]int64{}}
	for _, f := range top {
		switch f.num {
		case 1:
			m.IRVersion = int64(f.v)
		case 2:
			m.Producer = string(f.b)
		case 7:
			if err := m.parseGraph(f.b); err != nil {
				return nil, err
			}
		case 8:
			fs, err := decode(f.b)
			if err != nil {
				return nil, err
			}
			var d string
			var v int64
			for _, g := range fs {
				switch g.num {
				case 1:
					d = string(g.b)
				case 2:
					v = int64(g.v)
				}
			}
			m.Opsets[d] = v
		}
	}
	return m, nil
}

func (m *Model) parseGraph(b []byte) error {
	fs, err := decode(b)
	if err != nil {
		return err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			n, err := parseNode(f.b)
			if err != nil {
				return err
			}
			m.Nodes = append(m.Nodes, n)
		case 2:
			m.GraphName = string(f.b)
		case 5:
			t, err := parseTensor(f.b)
			if err != nil {
				return err
			}
			m.Initializers = append(m.Initializers, t)
		case 11, 12:
			v, err := parseValueInfo(f.b)
			if err != nil {
				return err
			}
			if f.num == 11 {
				m.Inputs = append(m.Inputs, v)
			} else {
				m.Outputs = append(m.Outputs, v)
			}
		}
	}
	return nil
}

func parseNode(b []byte) (Node, error) {
	var n Node
	fs, err := decode(b)
	if err != nil {
		return n, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			n.Inputs = append(n.Inputs, string(f.b))
		case 2:
			n.Outputs = append(n.Outputs, string(f.b))
		case 3:
			n.Name = string(f.b)
		case 4:
			n.Op = string(f.b)
		case 5:
			a, err := parseAttr(f.b)
			if err != nil {
				return n, err
			}
			n.Attrs = append(n.Attrs, a)
		case 7:
			n.Domain = string(f.b)
		}
	}
	return n, nil
}

func parseAttr(b []byte) (Attribute, error) {
	var a Attribute
	fs, err := decode(b)
	if err != nil {
		return a, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			a.Name = string(f.b)
		case 2:
			a.Float = math.Float32frombits(uint32(f.v))
		case 3:
			a.Int = int64(f.v)
		case 8:
			a.Ints = append(a.Ints, int64(f.v))
		case 20:
			a.Type = int(f.v)
		}
	}
	return a, nil
}

func parseTensor(b []byte) (Initializer, error) {
	var t Initializer
	fs, err := decode(b)
	if err != nil {
		return t, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			t.Dims = append(t.Dims, int64(f.v))
		case 2:
			t.DataType = int(f.v)
		case 8:
			t.Name = string(f.b)
		case 9:
			t.Raw = f.b
		}
	}
	return t, nil
}

func parseValueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	fs, err := decode(b)
	if err != nil {
		return v, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			v.Name = string(f.b)
		case 2: // TypeProto → tensor_type → elem_type, shape → dim
			typ, err := decode(f.b)
			if err != nil {
				return v, err
			}
			for _, t := range typ {
				if t.num != 1 {
					continue
				}
				tensor, err := decode(t.b)
				if err != nil {
					return v, err
				}
				for _, g := range tensor {
					switch g.num {
					case 1:
						v.ElemType = int(g.v)
					case 2:
						dims, err := decode(g.b)
						if err != nil {
							return v, err
						}
						for _, d := range dims {
							fd, err := decode(d.b)
							if err != nil {
								return v, err
							}
							var dim Dim
							for _, x := range fd {
								if x.num == 1 {
									dim.Value = int64(x.v)
								} else if x.num == 2 {
									dim.Param = string(x.b)
								}
							}
							v.Dims = append(v.Dims, dim)
						}
					}
				}
			}
		}
	}
	return v, nil
}
