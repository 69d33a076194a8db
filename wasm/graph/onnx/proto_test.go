package onnx

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// The MatMulNBits model tools/bench writes, read back field by field.
func TestMatMulNBitsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, scheme := range []quant.Scheme{quant.Symmetric, quant.Asymmetric} {
		q := randomTensor(t, rng, 12, 96, quant.Format{Bits: 4, Scheme: scheme, GroupSize: 32})
		o, err := ToORT(q)
		if err != nil {
			t.Fatal(err)
		}
		const m = 3
		model, err := Parse(MatMulNBitsModel(o, m))
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(model); err != nil {
			t.Fatal(err)
		}
		if model.IRVersion != IRVersion || model.Opsets[""] != Opset || model.Opsets[Microsoft] != 1 {
			t.Errorf("ir_version %d, opsets %v", model.IRVersion, model.Opsets)
		}
		if len(model.Nodes) != 1 {
			t.Fatalf("%d nodes", len(model.Nodes))
		}
		n := model.Nodes[0]
		wantInputs := []string{"A", "B", "scales"}
		if scheme == quant.Asymmetric {
			wantInputs = append(wantInputs, "zero_points")
		}
		if n.Op != "MatMulNBits" || n.Domain != Microsoft || !slices.Equal(n.Inputs, wantInputs) || !slices.Equal(n.Outputs, []string{"Y"}) {
			t.Errorf("node %+v", n)
		}
		attrs := map[string]int64{}
		for _, a := range n.Attrs {
			if a.Type != attrInt {
				t.Errorf("attribute %s: type %d", a.Name, a.Type)
			}
			attrs[a.Name] = a.Int
		}
		if attrs["K"] != 96 || attrs["N"] != 12 || attrs["bits"] != 4 || attrs["block_size"] != 32 {
			t.Errorf("attributes %v", attrs)
		}
		inits := map[string]Initializer{}
		for _, in := range model.Initializers {
			inits[in.Name] = in
		}
		check := func(name string, typ int, dims []int64, raw []byte) {
			in, ok := inits[name]
			if !ok {
				t.Errorf("initializer %s missing", name)
				return
			}
			if !slices.Equal(in.Dims, dims) || in.DataType != typ || !bytes.Equal(in.Raw, raw) {
				t.Errorf("initializer %s: dims %v type %d, want %v %d (or raw data differs)", name, in.Dims, in.DataType, dims, typ)
			}
		}
		check("B", Uint8, []int64{12, 3, 16}, o.B)
		check("scales", Float, []int64{36}, Float32Bytes(o.Scales))
		if scheme == quant.Asymmetric {
			check("zero_points", Uint8, []int64{12 * 2}, o.ZeroPoints)
		} else if len(inits) != 2 {
			t.Errorf("%d initializers, want B and scales", len(inits))
		}
		if len(model.Inputs) != 1 || len(model.Outputs) != 1 ||
			!slices.Equal(model.Inputs[0].Dims, []Dim{{Value: m}, {Value: 96}}) || model.Inputs[0].Name != "A" || model.Inputs[0].ElemType != Float ||
			!slices.Equal(model.Outputs[0].Dims, []Dim{{Value: m}, {Value: 12}}) || model.Outputs[0].Name != "Y" {
			t.Errorf("inputs %+v outputs %+v", model.Inputs, model.Outputs)
		}
	}
}
