package plan

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/quant"
)

func TestInferRole(t *testing.T) {
	for _, c := range []struct {
		name  string
		role  Role
		layer int
	}{
		{"token_embd.weight", RoleEmbedding, -1},
		{"blk.3.attn_q.weight", RoleAttnQ, 3},
		{"blk.3.attn_k.weight", RoleAttnK, 3},
		{"blk.3.attn_v.weight", RoleAttnV, 3},
		{"blk.12.attn_output.weight", RoleAttnOut, 12},
		{"blk.0.attn_norm.weight", RoleNorm, 0},
		{"blk.0.ffn_gate.weight", RoleFFNGate, 0},
		{"blk.0.ffn_up.weight", RoleFFNUp, 0},
		{"blk.0.ffn_down.weight", RoleFFNDown, 0},
		{"blk.0.ffn_norm.weight", RoleNorm, 0},
		{"output_norm.weight", RoleNorm, -1},
		{"output.weight", RoleHead, -1},
		{"model.layers.7.self_attn.q_proj.weight", RoleAttnQ, 7},
		{"model.layers.7.mlp.down_proj.weight", RoleFFNDown, 7},
		{"model.layers.7.self_attn.q_proj.bias", RoleBias, 7},
		{"lm_head.weight", RoleHead, -1},
		{"module/Embeddings_en", RoleEmbedding, -1},
		{"module/Encoder_en/KonaTransformer/Encode/Layer_0/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0", RoleAttnQKV, 0},
		{"module/Encoder_en/KonaTransformer/Encode/Layer_1/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0", RoleAttnOut, 1},
		{"module_apply_default/Encoder_en/KonaTransformer/Encode/Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat", RoleDense, 0},
		{"module_apply_default/Encoder_en/KonaTransformer/Encode/Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat", RoleBias, 0},
		{"module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/Layer_1/TransformerLayer/FFN/conv1/Tensordot/Reshape_1", RoleFFNUp, 1},
		{"module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/Layer_1/TransformerLayer/FFN/conv2/Tensordot/Reshape_1", RoleFFNDown, 1},
		{"module_apply_default/Encoder_en/KonaTransformer/Encode/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat", RoleNorm, 1},
		{"module/Encoder_en/hidden_layers/tanh_layer_0/weights", RoleHead, -1},
		{"something/else", RoleOther, -1},
	} {
		role, layer := InferRole(c.name)
		if role != c.role || layer != c.layer {
			t.Errorf("%s: %s layer %d, want %s layer %d", c.name, role, layer, c.role, c.layer)
		}
	}
}

// llama is a two-layer decoder's tensor list with Llama-7B's layer shapes, GGUF names.
func llama() []Tensor {
	ts := []Tensor{NewTensor("token_embd.weight", []int{32000, 4096})}
	for i := range 2 {
		p := "blk." + string(rune('0'+i)) + "."
		ts = append(ts,
			NewTensor(p+"attn_norm.weight", []int{4096}),
			NewTensor(p+"attn_q.weight", []int{4096, 4096}),
			NewTensor(p+"attn_k.weight", []int{4096, 4096}),
			NewTensor(p+"attn_v.weight", []int{4096, 4096}),
			NewTensor(p+"attn_output.weight", []int{4096, 4096}),
			NewTensor(p+"ffn_norm.weight", []int{4096}),
			NewTensor(p+"ffn_gate.weight", []int{11008, 4096}),
			NewTensor(p+"ffn_up.weight", []int{11008, 4096}),
			NewTensor(p+"ffn_down.weight", []int{4096, 11008}),
		)
	}
	return append(ts, NewTensor("output_norm.weight", []int{4096}), NewTensor("output.weight", []int{32000, 4096}))
}

func mustMake(t *testing.T, r Request) *Plan {
	t.Helper()
	p, err := Make(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func formatOf(t *testing.T, p *Plan, name string) string {
	t.Helper()
	c, ok := p.Lookup(name)
	if !ok {
		t.Fatalf("no %s in the plan", name)
	}
	return c.Format.String()
}

func TestNamedPolicies(t *testing.T) {
	ts := llama()
	want := map[string]map[string]string{
		"quality":  {"blk.0.attn_q.weight": "q8-sym-g32-f32", "blk.0.ffn_up.weight": "q8-sym-g32-f32", "token_embd.weight": "q8-sym-g32-f32"},
		"balanced": {"blk.0.attn_q.weight": "q8-sym-g32-f32", "blk.0.ffn_up.weight": "q4-sym-g32-f32", "output.weight": "q8-sym-g32-f32"},
		"small":    {"blk.0.attn_q.weight": "q4-sym-g16-f16", "token_embd.weight": "q4-sym-g16-f16", "output.weight": "q4-sym-g16-f16"},
		"tiny":     {"blk.1.ffn_down.weight": "q4-sym-g32-f16", "blk.1.attn_v.weight": "q4-sym-g32-f16"},
	}
	var last int64
	for _, name := range []string{"quality", "balanced", "small", "tiny"} {
		pol, err := PolicyByName(name)
		if err != nil {
			t.Fatal(err)
		}
		p := mustMake(t, Request{Tensors: ts, Policy: pol})
		for tn, f := range want[name] {
			if got := formatOf(t, p, tn); got != f {
				t.Errorf("%s: %s is %s, want %s", name, tn, got, f)
			}
		}
		if got := formatOf(t, p, "blk.0.attn_norm.weight"); got != "f32" {
			t.Errorf("%s: a norm is %s", name, got)
		}
		if last > 0 && p.Bytes >= last {
			t.Errorf("%s: %d bytes, not fewer than the tier above (%d)", name, p.Bytes, last)
		}
		last = p.Bytes
	}
	if _, err := PolicyByName("fastest"); errs.Kind(err) != errs.ErrBadArgument {
		t.Errorf("unknown policy: %v", err)
	}
}

func TestBudgetAndAdaptive(t *testing.T) {
	ts := llama()
	quality := mustMake(t, Request{Tensors: ts, Policy: Policies["quality"]})
	small := mustMake(t, Request{Tensors: ts, Policy: Policies["small"]})
	tiny := mustMake(t, Request{Tensors: ts, Policy: Policies["tiny"]})

	// A fixed policy over budget fails, saying by how much.
	_, err := Make(Request{Tensors: ts, Policy: Policies["quality"], Budget: small.Bytes})
	if !errors.Is(err, ErrNoFit) || errs.Kind(err) != errs.ErrTooLarge || !strings.Contains(err.Error(), "over the") {
		t.Errorf("quality under small's budget: %v", err)
	}
	// Adaptive takes the most accurate tier that fits.
	for _, c := range []struct {
		budget int64
		tier   string
	}{{0, "quality"}, {quality.Bytes, "quality"}, {quality.Bytes - 1, "balanced"}, {small.Bytes, "small"}, {tiny.Bytes, "tiny"}} {
		p := mustMake(t, Request{Tensors: ts, Policy: Policies["auto"], Budget: c.budget})
		if p.Policy != "auto:"+c.tier {
			t.Errorf("budget %d: %s, want auto:%s", c.budget, p.Policy, c.tier)
		}
		if c.budget > 0 && p.Bytes > c.budget {
			t.Errorf("budget %d: plan takes %d", c.budget, p.Bytes)
		}
	}
	// Nothing fits: a clear error naming the smallest plan.
	_, err = Make(Request{Tensors: ts, Policy: Policies["auto"], Budget: tiny.Bytes - 1})
	if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "no tier fits") || !strings.Contains(err.Error(), "tiny") {
		t.Errorf("budget below tiny: %v", err)
	}
	// The device's memory is a budget when the caller gives none.
	p := mustMake(t, Request{Tensors: ts, Policy: Policies["auto"], DeviceMemory: 2 * small.Bytes})
	if p.Policy != "auto:small" || !strings.Contains(strings.Join(p.Notes, " "), "device memory") {
		t.Errorf("device memory %d: %s %v", 2*small.Bytes, p.Policy, p.Notes)
	}
}

func TestMissingFeatures(t *testing.T) {
	ts := llama()
	webnn := Caps{Backend: "webnn", WeightBits: []int{8}}
	p := mustMake(t, Request{Tensors: ts, Policy: Policies["small"], Backends: []Caps{webnn}})
	c, _ := p.Lookup("blk.0.attn_q.weight")
	if c.Format.Bits != 8 || c.Backend != "webnn" || !strings.Contains(c.Reason, "no int4 weights") {
		t.Errorf("int4 on a backend without int4: %s on %s (%s)", c.Format, c.Backend, c.Reason)
	}
	// A second backend that holds int4 takes the tensor instead of widening it.
	gpu := Caps{Backend: "webgpu", WeightBits: []int{2, 4, 8, 16, 32}}
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["balanced"], Backends: []Caps{webnn, gpu}})
	if c, _ := p.Lookup("blk.0.ffn_up.weight"); c.Format.Bits != 4 || c.Backend != "webgpu" {
		t.Errorf("hybrid: int4 FFN %s on %s (%s)", c.Format, c.Backend, c.Reason)
	}
	if c, _ := p.Lookup("blk.0.attn_q.weight"); c.Backend != "webnn" {
		t.Errorf("int8 attention on %s, want the preferred webnn", c.Backend)
	}
	// A buffer limit below the int8 embeddings (147 MB), above int4's (82 MB).
	small := Caps{Backend: "webgpu", WeightBits: []int{2, 4, 8}, MaxBufferSize: 128 << 20}
	_, err := Make(Request{Tensors: ts, Policy: Policies["quality"], Backends: []Caps{small}})
	if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "token_embd.weight") || !strings.Contains(err.Error(), "largest buffer") {
		t.Errorf("embeddings over the buffer limit: %v", err)
	}
	// Adaptive moves down to the first tier whose embeddings are int4.
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["auto"], Backends: []Caps{small}})
	if p.Policy != "auto:small" {
		t.Errorf("adaptive under a 64 MiB buffer: %s", p.Policy)
	}
}

func TestOverrides(t *testing.T) {
	ts := llama()
	ov, err := ParseOverrides("blk.*.attn_v.weight=q8-sym-g32, role:ffn_down=q4-asym-g64@cpu ,output.weight=f16")
	if err != nil {
		t.Fatal(err)
	}
	p := mustMake(t, Request{Tensors: ts, Policy: Policies["tiny"], Overrides: ov})
	for name, f := range map[string]string{
		"blk.1.attn_v.weight": "q8-sym-g32-f32", "blk.0.ffn_down.weight": "q4-asym-g64-f32", "output.weight": "f16",
		"blk.1.attn_k.weight": "q4-sym-g32-f16", // untouched
	} {
		if got := formatOf(t, p, name); got != f {
			t.Errorf("%s: %s, want %s", name, got, f)
		}
	}
	if c, _ := p.Lookup("blk.0.ffn_down.weight"); c.Backend != "cpu" || !strings.HasPrefix(c.Reason, "override") {
		t.Errorf("override's backend/reason: %q %q", c.Backend, c.Reason)
	}
	ov, _ = ParseOverrides("nothing.*=q8-sym-g32")
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["small"], Overrides: ov})
	if !strings.Contains(strings.Join(p.Notes, " "), "matched no tensor") {
		t.Errorf("an override that matches nothing is not noted: %v", p.Notes)
	}
	for _, bad := range []string{"noequals", "x=q5-sym-g32", "=q4-sym-g32"} {
		ov, err := ParseOverrides(bad)
		if err == nil {
			_, err = Make(Request{Tensors: ts, Policy: Policies["small"], Overrides: ov})
		}
		if errs.Kind(err) != errs.ErrBadArgument {
			t.Errorf("override %q: %v", bad, err)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	ov, _ := ParseOverrides("output.weight=f16")
	p := mustMake(t, Request{Tensors: llama(), Policy: Policies["balanced"], Budget: 1 << 40, Overrides: ov,
		Backends: []Caps{{Backend: "webgpu", WeightBits: []int{2, 4, 8}}}})
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"format":"q4-sym-g32-f32"`, `"bits":4`, `"groupSize":32`, `"scheme":"sym"`, `"scales":"f32"`, `"backend":"webgpu"`, `"role":"ffn_up"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("JSON lacks %s", field)
		}
	}
	var back Plan
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, &back) {
		t.Errorf("round trip differs:\n%+v\n%+v", p, &back)
	}
	if err := json.Unmarshal([]byte(`{"tensors":[{"name":"x","format":"q3-sym-g32"}]}`), &back); errs.Kind(err) != errs.ErrBadArgument {
		t.Errorf("bad format in JSON: %v", err)
	}
	if tab := p.Table(); !strings.Contains(tab, "blk.0.ffn_gate.weight") || !strings.Contains(tab, "q4-sym-g32-f32") || !strings.Contains(tab, "balanced") {
		t.Errorf("table:\n%s", tab)
	}
}

// synthetic sensitivity: the embeddings and attention matter, the FFN hardly.
func sensitivity(ts []Tensor) *Sensitivity {
	s := &Sensitivity{Model: "test", Metric: "loss", Samples: 2}
	for _, t := range ts {
		if !t.Matrix {
			continue
		}
		scale := 0.001
		switch {
		case t.Role == RoleEmbedding:
			scale = 0.02
		case t.Role.Attention():
			scale = 0.005
		}
		ts := TensorSensitivity{Name: t.Name, Shape: t.Shape}
		for i, f := range Candidates {
			l := scale / float64(int(1)<<(3*i)) // each step up divides the loss by 8
			ts.Formats = append(ts.Formats, Loss{Format: f, Bytes: t.Bytes(mustFormat(f)), Mean: l, Worst: 1.5 * l, PerSample: []float64{0.5 * l, 1.5 * l}})
		}
		s.Tensors = append(s.Tensors, ts)
	}
	return s
}

func TestMixed(t *testing.T) {
	ts := llama()
	sens := sensitivity(ts)
	if p := mustMake(t, Request{Tensors: ts, Policy: Uniform(quant.Q4), Sensitivity: sens}); p.Predicted != nil {
		t.Errorf("q4-sym-g32-f32 was not measured, yet a prediction: %+v", p.Predicted)
	}
	uniform := mustMake(t, Request{Tensors: ts, Policy: Uniform(mustFormat(Candidates[1])), Sensitivity: sens})
	int4 := mustMake(t, Request{Tensors: ts, Policy: Uniform(quant.Q4)})
	// Under int4's bytes, mixed spends what f16 scales save on the sensitive tensors.
	p := mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, Budget: int4.Bytes})
	if p.Bytes > int4.Bytes || p.Predicted == nil || p.Predicted.WorstLoss >= uniform.Predicted.WorstLoss {
		t.Fatalf("mixed: %d bytes (budget %d), prediction %+v, uniform q4-sym-g32-f16's %+v", p.Bytes, int4.Bytes, p.Predicted, uniform.Predicted)
	}
	// 2-bit formats enter only when the budget leaves no other way: at the uniform int4 plan's
	// own bytes mixed is that plan, however cheap int2's measured loss looks; below, it must.
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, Budget: uniform.Bytes})
	if n := countBits(p, 2); n != 0 || p.Bytes != uniform.Bytes {
		t.Errorf("mixed at uniform int4's bytes: %d tensors at 2 bits, %d bytes (uniform %d)", n, p.Bytes, uniform.Bytes)
	}
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, Budget: uniform.Bytes - 1})
	if n := countBits(p, 2); n == 0 || p.Bytes >= uniform.Bytes {
		t.Errorf("mixed a byte under uniform int4: %d tensors at 2 bits, %d bytes", n, p.Bytes)
	}
	emb, _ := p.Lookup("token_embd.weight")
	ffn, _ := p.Lookup("blk.0.ffn_up.weight")
	if emb.Bytes*int64(ffn.Shape[0]*ffn.Shape[1]) < ffn.Bytes*int64(emb.Shape[0]*emb.Shape[1]) {
		t.Errorf("embeddings %s below the FFN's %s", emb.Format, ffn.Format)
	}
	// With no budget: the smallest plan whose predicted worst is within MaxLoss.
	pol := Policies["mixed"]
	pol.MaxLoss = 0.01
	p = mustMake(t, Request{Tensors: ts, Policy: pol, Sensitivity: sens})
	if p.Predicted.WorstLoss > 0.01 {
		t.Errorf("predicted worst %.4g > 0.01", p.Predicted.WorstLoss)
	}
	// Without sensitivity data it falls back to its rules and says so.
	p = mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"]})
	if !strings.Contains(strings.Join(p.Notes, " "), "no sensitivity") || formatOf(t, p, "token_embd.weight") != "q8-sym-g32-f32" || formatOf(t, p, "blk.0.ffn_up.weight") != "q4-sym-g32-f32" {
		t.Errorf("mixed without data: %v", p.Notes)
	}
	// A budget below every cheapest format fails.
	if _, err := Make(Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, Budget: 1 << 20}); !errors.Is(err, ErrNoFit) {
		t.Errorf("1 MiB budget: %v", err)
	}
	// The file round-trips and is checked.
	raw, _ := json.Marshal(sens)
	if _, err := ParseSensitivity(raw); err != nil {
		t.Error(err)
	}
	sens.Tensors[0].Formats[0].PerSample = []float64{1}
	raw, _ = json.Marshal(sens)
	if _, err := ParseSensitivity(raw); err == nil {
		t.Error("a per-sample list of the wrong length is accepted")
	}
}

func TestPinnedBackend(t *testing.T) {
	ov, _ := ParseOverrides("role:ffn=q4-sym-g32@webnn")
	webnn := Caps{Backend: "webnn", WeightBits: []int{8}}
	gpu := Caps{Backend: "webgpu", WeightBits: []int{2, 4, 8}}
	_, err := Make(Request{Tensors: llama(), Policy: Policies["small"], Backends: []Caps{gpu, webnn}, Overrides: ov})
	if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "pinned to webnn") {
		t.Errorf("int4 pinned to a backend without int4: %v", err)
	}
	ov, _ = ParseOverrides("role:ffn=q8-sym-g32@webnn")
	p := mustMake(t, Request{Tensors: llama(), Policy: Policies["small"], Backends: []Caps{gpu, webnn}, Overrides: ov})
	if c, _ := p.Lookup("blk.1.ffn_gate.weight"); c.Backend != "webnn" {
		t.Errorf("pinned FFN on %s", c.Backend)
	}
	if c, _ := p.Lookup("blk.1.attn_q.weight"); c.Backend != "webgpu" {
		t.Errorf("attention on %s", c.Backend)
	}
}

// TestMixedDeviceBudget: a budget from the device's memory bounds the mixed plan but does not
// turn it into "spend everything": only the caller's budget does.
func TestMixedDeviceBudget(t *testing.T) {
	ts := llama()
	sens := sensitivity(ts)
	target := mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens})
	device := mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, DeviceMemory: 1 << 40})
	if device.Bytes != target.Bytes {
		t.Errorf("with 1 TiB of device memory: %d bytes, with none %d", device.Bytes, target.Bytes)
	}
	caller := mustMake(t, Request{Tensors: ts, Policy: Policies["mixed"], Sensitivity: sens, Budget: 1 << 40})
	if caller.Bytes <= target.Bytes || caller.Predicted.WorstLoss >= target.Predicted.WorstLoss {
		t.Errorf("a 1 TiB caller budget: %d bytes (worst %.3g), the target's %d (%.3g)", caller.Bytes, caller.Predicted.WorstLoss, target.Bytes, target.Predicted.WorstLoss)
	}
}

func countBits(p *Plan, bits int) int {
	n := 0
	for _, c := range p.Tensors {
		if c.Format.Bits == bits {
			n++
		}
	}
	return n
}
