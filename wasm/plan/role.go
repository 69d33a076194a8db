package plan

import (
	"regexp"
	"strconv"
	"strings"
)

// Role says what a tensor does in the model; policies choose precision by role.
type Role string

const (
	RoleEmbedding Role = "embedding" // token embeddings (a lookup table, read one row at a time)
	RoleAttnQ     Role = "attn_q"
	RoleAttnK     Role = "attn_k"
	RoleAttnV     Role = "attn_v"
	RoleAttnQKV   Role = "attn_qkv" // q, k and v in one matrix
	RoleAttnOut   Role = "attn_out"
	RoleFFNUp     Role = "ffn_up"
	RoleFFNGate   Role = "ffn_gate"
	RoleFFNDown   Role = "ffn_down"
	RoleDense     Role = "dense" // another matrix inside a layer (USE-lite's residual adjustment)
	RoleHead      Role = "head"  // the last projection: logits, or a pooler
	RoleNorm      Role = "norm"
	RoleBias      Role = "bias"
	RoleOther     Role = "other"
)

// Attention reports whether r is one of attention's projections.
func (r Role) Attention() bool { return strings.HasPrefix(string(r), "attn_") }

// FFN reports whether r is one of the feed-forward block's matrices.
func (r Role) FFN() bool { return strings.HasPrefix(string(r), "ffn_") }

// Matches reports whether r is named by sel: a role, or "attention", "ffn", "*".
func (r Role) Matches(sel string) bool {
	switch sel {
	case "*":
		return true
	case "attention":
		return r.Attention()
	case "ffn":
		return r.FFN()
	}
	return string(r) == sel
}

// roleRules map name fragments to roles, first match wins. They cover GGUF's llama names
// (blk.N.attn_q.weight), Hugging Face's (model.layers.N.self_attn.q_proj.weight) and
// USE-lite's TF names; norms and biases come first because their names contain the others'.
var roleRules = []struct {
	re   *regexp.Regexp
	role Role
}{
	{regexp.MustCompile(`norm`), RoleNorm},
	{regexp.MustCompile(`(^|[./_])bias($|/|\.)|/bias/`), RoleBias},
	{regexp.MustCompile(`token_embd|embed_tokens|wte\.|Embeddings_`), RoleEmbedding},
	{regexp.MustCompile(`attn_qkv|qkv_proj|c_attn|qkv_transform`), RoleAttnQKV},
	{regexp.MustCompile(`attn_q\.|q_proj`), RoleAttnQ},
	{regexp.MustCompile(`attn_k\.|k_proj`), RoleAttnK},
	{regexp.MustCompile(`attn_v\.|v_proj`), RoleAttnV},
	{regexp.MustCompile(`attn_output|o_proj|attn\.c_proj|output_transform`), RoleAttnOut},
	{regexp.MustCompile(`ffn_gate|gate_proj`), RoleFFNGate},
	{regexp.MustCompile(`ffn_up|up_proj|mlp\.c_fc|FFN/conv1/`), RoleFFNUp},
	{regexp.MustCompile(`ffn_down|down_proj|mlp\.c_proj|FFN/conv2/`), RoleFFNDown},
	{regexp.MustCompile(`^output\.weight$|lm_head|tanh_layer|pooler`), RoleHead},
	{regexp.MustCompile(`AdjustResidualInput|TransformerLayer/dense/kernel|Layer_\d+/TransformerLayer/dense/`), RoleDense},
}

var layerRe = regexp.MustCompile(`(?:^|[./])(?:blk|layers|h|layer)[._](\d+)[./]|Layer_(\d+)/`)

// InferRole guesses a tensor's role and layer index (−1 when it belongs to none) from its name.
func InferRole(name string) (Role, int) {
	layer := -1
	if m := layerRe.FindStringSubmatch(name); m != nil {
		d := m[1] + m[2]
		if n, err := strconv.Atoi(d); err == nil {
			layer = n
		}
	}
	for _, r := range roleRules {
		if r.re.MatchString(name) {
			return r.role, layer
		}
	}
	return RoleOther, layer
}
