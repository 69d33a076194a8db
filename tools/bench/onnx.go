//go:build !(js && wasm)

package main

import (
	"encoding/binary"
	"math"
)

// A minimal ONNX writer: just enough of onnx.proto (proto2) to express one MatMulNBits node with
// its initializers, hand-encoded so the harness needs no protobuf dependency. Field numbers are
// those of onnx/onnx.proto; each message below lists the ones it writes.
//
//	ModelProto          ir_version=1 (int64) · producer_name=2 · graph=7 · opset_import=8
//	OperatorSetIdProto  domain=1 · version=2 (int64)
//	GraphProto          node=1 · name=2 · initializer=5 · input=11 · output=12
//	NodeProto           input=1 · output=2 · name=3 · op_type=4 · attribute=5 · domain=7
//	AttributeProto      name=1 · i=3 (int64) · type=20 (AttributeType, INT=2)
//	TensorProto         dims=1 (int64, one field each, unpacked as proto2 writes them) ·
//	                    data_type=2 · name=8 · raw_data=9 (little-endian, row-major)
//	ValueInfoProto      name=1 · type=2
//	TypeProto           tensor_type=1
//	TypeProto.Tensor    elem_type=1 · shape=2
//	TensorShapeProto    dim=1
//	Dimension           dim_value=1 (int64)
const (
	onnxIRVersion      = 8  // ONNX 1.10+: every ORT 1.30 build reads it
	onnxDefaultOpset   = 17 // the standard domain is imported but no standard op is used
	onnxMicrosoftOpset = 1  // com.microsoft MatMulNBits is in version 1 of that domain

	onnxFloat = 1 // TensorProto.DataType FLOAT
	onnxUint8 = 2 // TensorProto.DataType UINT8

	attrInt = 2 // AttributeProto.AttributeType INT
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

// Bytes writes a length-delimited field (wire type 2): strings, bytes and sub-messages.
func (b *pbuf) Bytes(field int, v []byte) {
	b.tag(field, 2)
	b.varint(uint64(len(v)))
	*b = append(*b, v...)
}

func (b *pbuf) String(field int, s string) { b.Bytes(field, []byte(s)) }

// onnxTensor is an initializer: raw little-endian bytes of a given element type and shape.
type onnxTensor struct {
	Name     string
	DataType int
	Dims     []int64
	Raw      []byte
}

func (t onnxTensor) encode() []byte {
	var b pbuf
	for _, d := range t.Dims {
		b.Int(1, d)
	}
	b.Int(2, int64(t.DataType))
	b.String(8, t.Name)
	b.Bytes(9, t.Raw)
	return b
}

// valueInfo encodes a graph input or output of a fixed float tensor shape.
func valueInfo(name string, elemType int, dims []int64) []byte {
	var shape pbuf
	for _, d := range dims {
		var dim pbuf
		dim.Int(1, d)
		shape.Bytes(1, dim)
	}
	var tensor pbuf
	tensor.Int(1, int64(elemType))
	tensor.Bytes(2, shape)
	var typ pbuf
	typ.Bytes(1, tensor)
	var vi pbuf
	vi.String(1, name)
	vi.Bytes(2, typ)
	return vi
}

func intAttr(name string, v int64) []byte {
	var b pbuf
	b.String(1, name)
	b.Int(3, v)
	b.Int(20, attrInt)
	return b
}

func opset(domain string, version int64) []byte {
	var b pbuf
	b.String(1, domain)
	b.Int(2, version)
	return b
}

// MatMulNBitsModel returns a complete ModelProto computing Y[M,N] = A[M,K] · dequant(B)ᵀ with one
// com.microsoft MatMulNBits node whose B, scales and (when present) zero_points are initializers.
func MatMulNBitsModel(w *ORTWeight, m int) []byte {
	inputs := []string{"A", "B", "scales"}
	inits := []onnxTensor{
		{Name: "B", DataType: onnxUint8, Dims: []int64{int64(w.N), int64(w.Blocks), int64(w.BlobSize)}, Raw: w.B},
		{Name: "scales", DataType: onnxFloat, Dims: []int64{int64(w.N) * int64(w.Blocks)}, Raw: float32Bytes(w.Scales)},
	}
	if w.ZeroPoints != nil {
		inputs = append(inputs, "zero_points")
		inits = append(inits, onnxTensor{Name: "zero_points", DataType: onnxUint8, Dims: []int64{int64(len(w.ZeroPoints))}, Raw: w.ZeroPoints})
	}

	var node pbuf
	for _, in := range inputs {
		node.String(1, in)
	}
	node.String(2, "Y")
	node.String(3, "matmul_nbits")
	node.String(4, "MatMulNBits")
	node.Bytes(5, intAttr("K", int64(w.K)))
	node.Bytes(5, intAttr("N", int64(w.N)))
	node.Bytes(5, intAttr("bits", int64(w.Bits)))
	node.Bytes(5, intAttr("block_size", int64(w.BlockSize)))
	node.String(7, "com.microsoft")

	var graph pbuf
	graph.Bytes(1, node)
	graph.String(2, "nibble_bench")
	for _, t := range inits {
		graph.Bytes(5, t.encode())
	}
	graph.Bytes(11, valueInfo("A", onnxFloat, []int64{int64(m), int64(w.K)}))
	graph.Bytes(12, valueInfo("Y", onnxFloat, []int64{int64(m), int64(w.N)}))

	var model pbuf
	model.Int(1, onnxIRVersion)
	model.String(2, "nibble tools/bench")
	model.Bytes(7, graph)
	model.Bytes(8, opset("", onnxDefaultOpset))
	model.Bytes(8, opset("com.microsoft", onnxMicrosoftOpset))
	return model
}

// float32Bytes returns f as little-endian bytes (a copy: the host may be big-endian).
func float32Bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
