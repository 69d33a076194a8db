package shaders

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// OpFamily is a kernel family of whole-graph execution: one ops_*.wgsl file, with the variants
// its Variants list. Every family's file follows ops_common.wgsl (the flat-index helpers); the
// gather family of a weight table also follows decode.wgsl, so quantized rows are read by the
// same code the matmul kernels use.
type OpFamily uint8

const (
	OpUnary      OpFamily = iota // y = f(x) per element
	OpBinary                     // broadcast a∘b, SiLU(a)·b, and the in-place bias add of Linear
	OpNorm                       // one workgroup per row: layer norm, RMS norm, L2 normalize
	OpSoftmax                    // one workgroup per row, optional broadcast mask
	OpMatMul                     // batched a·b or a·bᵀ of two activations
	OpCopy                       // strided copy: transpose, slice, concat, Linear's zero-padded x
	OpGather                     // rows of a table by int32 ids (weight chunks or an f32 value)
	OpPool                       // masked mean over T
	OpRoPE                       // rotary position embedding
	OpStateWrite                 // rows into a graph.State at a run-time row, in its storage format
	OpStateRead                  // a graph.State's first rows as f32
	OpArgMax                     // one workgroup per row: index of the largest element (graph.ArgMax)
	OpAttention                  // one workgroup per query row: q·kᵀ, its softmax and p·v of one token
	numOpFamilies
)

var opFamilies = [numOpFamilies]struct {
	name     string
	variants []string
}{
	OpUnary:      {"unary", []string{"relu", "gelu", "silu", "tanh", "scale"}},
	OpBinary:     {"binary", []string{"add", "sub", "mul", "div", "bias", "silu_mul"}},
	OpNorm:       {"norm", []string{"layernorm", "rmsnorm", "l2"}},
	OpSoftmax:    {"softmax", []string{"plain", "masked"}},
	OpMatMul:     {"matmul", []string{"ab", "abt", "ab_split", "abt_split", "abt_group", "ab_chunks", "ab_merge", "ab_short", "abt_preload", "ab_short_ahead"}},
	OpCopy:       {"copy", []string{"strided"}},
	OpGather:     {"gather", []string{"weight", "value"}},
	OpPool:       {"pool", []string{"mean"}},
	OpRoPE:       {"rope", []string{"halves", "interleaved", "table"}},
	OpStateWrite: {"state_write", []string{"f32", "f16", "int8"}},
	OpStateRead:  {"state_read", []string{"f32", "f16", "int8"}},
	OpArgMax:     {"argmax", []string{"last"}},
	OpAttention:  {"attn", []string{"decode", "split"}},
}

func (f OpFamily) String() string {
	if f < numOpFamilies {
		return opFamilies[f].name
	}
	return fmt.Sprintf("OpFamily(%d)", uint8(f))
}

// Variants lists the variant names a family accepts.
func (f OpFamily) Variants() []string {
	if f < numOpFamilies {
		return opFamilies[f].variants
	}
	return nil
}

// OpKey selects one op kernel. It is comparable, so it keys a pipeline cache directly.
type OpKey struct {
	Family  OpFamily
	Variant string // one of Family.Variants()
	WG      int    // threads per workgroup (power of two ≤ 1024, and the device's limit)
	// Gather of a weight: the table's storage, as Key's fields of the same names.
	Bits           int
	Asym, ScaleF16 bool
	// State is, for a product (OpMatMul), the storage of a graph.State whose buffer its b is,
	// read in place (ops_state_load.wgsl): "f16" or "int8"; "" when b is f32 (a value, or an
	// f32 state, whose buffer holds plain floats). For OpAttention, the keys' and the values'.
	State string
	// Softmax is, for a·b (variants ab, ab_split, ab_chunks), the softmax a's rows are normalized by as the
	// product reads them (ops_matmul.wgsl SOFTMAX): "plain", or "masked" (the mask at binding
	// 4); "" when a holds the weights themselves.
	Softmax string
	// Pair is, for a state write, two states of one shape and format written at the same row by
	// one dispatch (ops_state_write.wgsl PAIR: the second's x and state at bindings 4 and 5).
	Pair bool
	// Rope is a table rotation made as its input is read (ops_state_rope.wgsl): of the first
	// state's x for a state write (cos and sin at bindings 6 and 7), of a for a product without
	// Softmax (at 5 and 6), of q for OpAttention (at 5 and 6).
	Rope bool
	// Keys is, for OpAttention, how many scores a workgroup holds (ops_attn.wgsl KEYS): a power
	// of two, at least the keys of the rows it computes (variant "decode", a workgroup a row),
	// or the keys of a chunk (variant "split", a workgroup a chunk of a row, the chunks merged by
	// the row's last workgroup through a handoff at binding 8). Its Softmax is "plain" or
	// "masked".
	Keys int
	// Aligned is, for OpAttention over an f16 state, that its keys and values lie along words
	// (ops_attn.wgsl ALIGNED: element strides 1, the others even, K and the outputs multiples of
	// 4), read two words at a time with no branch around the loads.
	Aligned bool
	// Warm is, for OpAttention's variant "decode", that the workgroups past the rows read a
	// weight into the L2 for the GEMV after the attention (ops_attn.wgsl WARM: its codes at
	// binding 9, its scales at 10, a store that never happens at 11).
	Warm bool
}

// attnWorkgroupBytes is ops_attn.wgsl's workgroup memory: the scores, a round's partial sums
// (2 floats a thread), half the output groups' max and Σe, and the split variant's flag.
func attnWorkgroupBytes(wg, keys int) int { return 4*keys + 8*wg + 8*(wg/64) + 4 }

// portableWorkgroupBytes is WebGPU's default maxComputeWorkgroupStorageSize, which every device
// offers.
const portableWorkgroupBytes = 16384

// StateFormats are the OpKey.State values a product reads in place.
var StateFormats = []string{"f16", "int8"}

// Normalize zeroes the fields the variant does not use.
func (k OpKey) Normalize() OpKey {
	if k.Family != OpGather || k.Variant != "weight" {
		k.Bits, k.Asym, k.ScaleF16 = 0, false, false
	}
	if k.Bits == 16 || k.Bits == 32 {
		k.Asym, k.ScaleF16 = false, false
	}
	if k.Family != OpMatMul && k.Family != OpAttention {
		k.State, k.Softmax = "", ""
	}
	if k.Family != OpStateWrite {
		k.Pair = false
	}
	if k.Family != OpStateWrite && k.Family != OpMatMul && k.Family != OpAttention {
		k.Rope = false
	}
	if k.Family != OpAttention || k.State != "f16" {
		k.Aligned = false
	}
	if k.Family != OpAttention {
		k.Keys = 0
	}
	if k.Family != OpAttention || k.Variant != "decode" {
		k.Warm = false
	}
	if k.Family == OpMatMul && k.Variant == "ab_merge" {
		k.State, k.Softmax, k.Rope = "", "", false // it reads the chunks' partials alone
	}
	return k
}

// Name is a short stable variant name, the label of the module and the pipeline.
func (k OpKey) Name() string {
	s := fmt.Sprintf("op-%s-%s-wg%d", k.Family, k.Variant, k.WG)
	if k.Bits != 0 {
		s += fmt.Sprintf("-b%d", k.Bits)
		if k.Asym {
			s += "-asym"
		}
		if k.ScaleF16 {
			s += "-f16s"
		}
	}
	if k.State != "" {
		s += "-state-" + k.State
	}
	if k.Softmax != "" {
		s += "-softmax-" + k.Softmax
	}
	if k.Pair {
		s += "-pair"
	}
	if k.Rope {
		s += "-rope"
	}
	if k.Keys != 0 {
		s += fmt.Sprintf("-keys%d", k.Keys)
	}
	if k.Aligned {
		s += "-aligned"
	}
	if k.Warm {
		s += "-warm"
	}
	return s
}

// Validate says why a key cannot be compiled.
func (k OpKey) Validate() error {
	if !slices.Contains(k.Family.Variants(), k.Variant) {
		return fmt.Errorf("shaders: %s: variant %q of %v (want one of %v)", k.Name(), k.Variant, k.Family, k.Family.Variants())
	}
	if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 1024 {
		return fmt.Errorf("shaders: %s: WG %d must be a power of two ≤ 1024", k.Name(), k.WG)
	}
	if k.Family == OpGather && k.Variant == "weight" {
		return k.base().Validate()
	}
	if k.Family == OpAttention {
		return k.validateAttention()
	}
	if k.State != "" && (k.Family != OpMatMul || !slices.Contains(StateFormats, k.State)) {
		return fmt.Errorf("shaders: %s: a %s kernel reads no state stored as %q (products read %v)", k.Name(), k.Family, k.State, StateFormats)
	}
	if k.Family == OpMatMul && (k.Variant == "abt_group" || k.Variant == "abt_preload") && k.WG > 512 {
		// Its partial sums take WG·16.5 bytes of workgroup memory, beside red's WG·4: within
		// the 16 KiB every device has up to 512 threads.
		return fmt.Errorf("shaders: %s: WG %d: abt_group takes at most 512", k.Name(), k.WG)
	}
	if k.Family == OpMatMul && (k.Variant == "ab_chunks" || k.Variant == "ab_merge") && (k.WG < 32 || k.WG > 512) {
		// 32 lanes a group; their sums take WG·16 bytes of workgroup memory, beside WG·8.
		return fmt.Errorf("shaders: %s: WG %d: %s takes 32 to 512", k.Name(), k.WG, k.Variant)
	}
	if k.Family == OpMatMul && (k.Variant == "ab_short" || k.Variant == "ab_short_ahead") && (k.WG < 32 || k.WG > 512 || k.Softmax == "") {
		// A softmax product; groups of up to 32 lanes, whose partials take WG·24 bytes of
		// workgroup memory, beside WG·4.
		return fmt.Errorf("shaders: %s: ab_short is a softmax product of 32 to 512 threads", k.Name())
	}
	if k.Family == OpMatMul && k.Variant == "ab_chunks" && k.Softmax == "" {
		return fmt.Errorf("shaders: %s: ab_chunks splits K of a softmax product only (its merge rescales each chunk's Σe)", k.Name())
	}
	if k.Rope && k.Softmax != "" {
		return fmt.Errorf("shaders: %s: a is either a softmax's input or a rotation's, not both", k.Name())
	}
	if k.Softmax != "" && (k.Family != OpMatMul || !strings.HasPrefix(k.Variant, "ab") || strings.HasPrefix(k.Variant, "abt") ||
		!slices.Contains(OpSoftmax.Variants(), k.Softmax)) {
		return fmt.Errorf("shaders: %s: softmax %q fuses into a·b (ab, ab_split) only, as one of %v", k.Name(), k.Softmax, OpSoftmax.Variants())
	}
	return nil
}

// validateAttention says why an OpAttention key cannot be compiled.
func (k OpKey) validateAttention() error {
	switch {
	case k.WG < 64:
		// Its output groups of 32 lanes merge in halves: two groups at least.
		return fmt.Errorf("shaders: %s: WG %d: attention takes 64 to 1024", k.Name(), k.WG)
	case k.Keys < 1 || k.Keys&(k.Keys-1) != 0:
		return fmt.Errorf("shaders: %s: Keys %d must be a power of two", k.Name(), k.Keys)
	case attnWorkgroupBytes(k.WG, k.Keys) > portableWorkgroupBytes:
		return fmt.Errorf("shaders: %s: %d keys and %d threads take %d bytes of workgroup memory, over the %d every device has",
			k.Name(), k.Keys, k.WG, attnWorkgroupBytes(k.WG, k.Keys), portableWorkgroupBytes)
	case k.State != "" && !slices.Contains(StateFormats, k.State):
		return fmt.Errorf("shaders: %s: attention reads no state stored as %q (%v)", k.Name(), k.State, StateFormats)
	case !slices.Contains(OpSoftmax.Variants(), k.Softmax):
		return fmt.Errorf("shaders: %s: attention's softmax %q: want one of %v", k.Name(), k.Softmax, OpSoftmax.Variants())
	}
	return nil
}

// base is the matmul key whose header and #if names decode.wgsl expects, for a weight gather.
func (k OpKey) base() Key {
	return Key{Kernel: GEMV, Bits: k.Bits, Asym: k.Asym, ScaleF16: k.ScaleF16, WG: k.WG, Rows: 1}.Normalize()
}

// Source returns the WGSL of the variant with its line map.
func (k OpKey) Source() (webgpu.ShaderSource, error) {
	k = k.Normalize()
	if err := k.Validate(); err != nil {
		return webgpu.ShaderSource{}, err
	}
	src := webgpu.ShaderSource{Variant: k.Name()}
	defs := map[string]bool{}
	for _, v := range k.Family.Variants() {
		defs[strings.ToUpper(v)] = v == k.Variant
	}
	lines := []string{fmt.Sprintf("const WG: u32 = %du;", k.WG)}
	fs := []string{"ops_common.wgsl", "ops_" + k.Family.String() + ".wgsl"}
	if k.Family == OpMatMul {
		defs["SPLIT"] = strings.HasSuffix(k.Variant, "_split")                 // either product with K split
		defs["PLAIN"] = k.Variant == "ab" || k.Variant == "abt"                // one invocation per output
		defs["KEYSPLIT"] = k.Variant == "ab_chunks" || k.Variant == "ab_merge" // K over workgroups
		// abt_preload is ABT_GROUP with a round's rows loaded before any is used.
		defs["ABT_GROUP"] = k.Variant == "abt_group" || k.Variant == "abt_preload"
		defs["AB_SHORT"] = k.Variant == "ab_short" || k.Variant == "ab_short_ahead" // ahead: two rounds in flight
	}
	if k.Family == OpMatMul || k.Family == OpAttention {
		// b (attention: the keys and values) a state's buffer: ops_state_load.wgsl's names, as
		// the state read's variants set them.
		defs["STATE"] = k.State != ""
		defs["SOFTMAX"], defs["SMASK"] = k.Softmax != "", k.Softmax == "masked"
		for _, f := range OpStateRead.Variants() {
			defs[strings.ToUpper(f)] = f == k.State
		}
	}
	if k.Family == OpStateWrite {
		defs["PAIR"] = k.Pair
	}
	if k.Family == OpStateWrite || k.Family == OpMatMul || k.Family == OpAttention {
		defs["ROPE"] = k.Rope
	}
	switch k.Family {
	case OpMatMul, OpAttention:
		fs = []string{"ops_common.wgsl", "ops_state_load.wgsl", "state_store.wgsl", "ops_state_rope.wgsl", "ops_mask.wgsl", fs[1]}
		if k.Family == OpAttention {
			fs = append(fs[:len(fs)-1], "handoff.wgsl", fs[len(fs)-1]) // SPLIT's handoff
			lines = append(lines, fmt.Sprintf("const KEYS: u32 = %du;", k.Keys))
			defs["ALIGNED"], defs["WARM"] = k.Aligned, k.Warm
		}
	case OpStateRead:
		fs = []string{"ops_common.wgsl", "ops_state_load.wgsl", fs[1]}
	case OpStateWrite:
		fs = []string{"ops_common.wgsl", "state_store.wgsl", "ops_state_rope.wgsl", fs[1]}
	}
	if k.Family == OpGather {
		// decode.wgsl's names are known to both variants: the value variant's #if WEIGHT block
		// holds them too, and Preprocess rejects unknown names even in dropped blocks.
		b := k.base()
		for name, v := range b.Defines() {
			defs[name] = v
		}
		if k.Variant == "weight" {
			lines = b.header()
			fs = append([]string{"decode.wgsl"}, fs...)
		}
	}
	return assemble(src, lines, fs, defs)
}
