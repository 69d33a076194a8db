//go:build !(js && wasm)

package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/nibble-ml/nibble/wasm/engine"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/graph/onnx"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// errNotUSELite: the model has no ONNX export (the page says so in a not-run row).
var errNotUSELite = errors.New("not USE-lite: no ONNX export")

func readConfig(shapes map[string][]int, values map[string][]float32, names []string) (*uselite.Config, error) {
	return uselite.ReadConfig(func(n string) ([]int, bool) { s, ok := shapes[n]; return s, ok },
		func(n string) ([]float32, bool) { v, ok := values[n]; return v, ok }, uselite.LayerCount(names))
}

// ortExport is one ONNX model of USE-lite for -compare ort, and what the page is told of it.
type ortExport struct {
	format string
	model  *onnx.Model
	bytes  []byte
}

// ortFormats are the formats ONNX Runtime gets a model for: f32, and each 4-bit format asked
// for whose group MatMulNBits can take (a power of two ≥ 16); 8-bit and 2-bit weights have no
// ORT row (MatMulNBits' 8-bit kernels are not in every ORT Web path).
func ortFormats(formats []string) []string {
	out := []string{"f32"}
	for _, f := range formats {
		q, err := engine.ParseFormat(f)
		if err == nil && q.Bits == 4 && q.GroupSize >= 16 && q.GroupSize&(q.GroupSize-1) == 0 && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// exportUSELite reads the USE-lite model in dir and writes it as ONNX once per format, with
// symbolic batch and length (the graph built at two bucket sizes, wasm/graph/onnx's dynamic
// export): the f32 model's matrices are float32 MatMuls; a 4-bit model's are MatMulNBits (and
// the embedding table GatherBlockQuantized), holding the codes and scales quant.Quantize gives
// for the engine's plan of that format (no scale search: the engine's default), so ORT's 4-bit
// row and nibble's hold the same weights.
func exportUSELite(dir string, formats []string) (exports []ortExport, maxLength int, err error) {
	m, err := format.OpenTFJSDir(dir)
	if err != nil {
		return nil, 0, err
	}
	defer m.Close()
	infos := map[string]format.TensorInfo{}
	for _, t := range m.Tensors() {
		infos[t.Name] = t
	}
	type arranged struct {
		n, k int
		rows []float32
	}
	tensors := map[string]arranged{}
	shapes := map[string][]int{}
	values := map[string][]float32{}
	var names []string
	for {
		t, err := m.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		data, err := t.Float32()
		if err != nil {
			return nil, 0, err
		}
		names = append(names, t.Name)
		shapes[t.Name] = t.Shape
		values[t.Name] = data
		n, k, rows := uselite.Arrange(t.Name, t.Shape, data)
		tensors[t.Name] = arranged{n, k, rows}
	}
	if !uselite.Detect(names) {
		return nil, 0, errNotUSELite
	}
	cfg, err := readConfig(shapes, values, names)
	if err != nil {
		return nil, 0, err
	}
	// Two builds whose batch and length differ (and equal no width of the model): every
	// dimension that follows them becomes symbolic. The second length is past MaxLength, so the
	// timing-signal table is written long enough for every length the tokenizer gives.
	ga, err := cfg.Build(3, 17)
	if err != nil {
		return nil, 0, err
	}
	gb, err := cfg.Build(5, cfg.MaxLength+3)
	if err != nil {
		return nil, 0, err
	}
	for _, name := range ortFormats(formats) {
		plan, err := engine.PlanFor(name)
		if err != nil {
			return nil, 0, err
		}
		weight := func(w string) (onnx.Weight, error) {
			t, ok := tensors[w]
			if !ok {
				return onnx.Weight{}, fmt.Errorf("no tensor %q in the model", w)
			}
			info := infos[w]
			f := plan(&info)
			if !f.Quantized() {
				return onnx.Weight{F32: t.rows}, nil
			}
			q, err := quant.Quantize(w, t.rows, t.n, t.k, f, quant.Options{})
			return onnx.Weight{Q: q}, err
		}
		model, err := onnx.Export(onnx.Options{Producer: "nibble tools/quanttest (" + name + ")", Weight: weight,
			DimNames: map[string]string{uselite.InputIDs + ".0": "batch", uselite.InputIDs + ".1": "length"}}, ga, gb)
		if err != nil {
			return nil, 0, fmt.Errorf("exporting use-lite at %s: %w", name, err)
		}
		exports = append(exports, ortExport{format: name, model: model, bytes: model.Encode()})
	}
	return exports, cfg.MaxLength, nil
}

// opsSummary counts a model's operators, most frequent first: "14×MatMul, 10×Reshape, …".
func opsSummary(m *onnx.Model) string {
	count := map[string]int{}
	for _, n := range m.Nodes {
		count[n.Op]++
	}
	ops := make([]string, 0, len(count))
	for op := range count {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if count[ops[i]] != count[ops[j]] {
			return count[ops[i]] > count[ops[j]]
		}
		return ops[i] < ops[j]
	})
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = fmt.Sprintf("%d×%s", count[op], op)
	}
	return strings.Join(parts, ", ")
}
