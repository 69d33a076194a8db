// Package quanteval is what one run of tools/quanttest measures in a browser: the Job the CLI
// hands its page (wasm/cmd/quanttest), the Result the page reports for each configuration, and
// how two sets of embeddings are compared. The CLI (native) and the page (js/wasm) share these
// types so that the JSON a user reads with -json is the one the page wrote.
//
// It is pure Go and holds no model: it must not import the engine or any backend, so that the
// engine's own browser tests can use its comparisons.
package quanteval

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Job is what the page runs: every platform × format on one model.
type Job struct {
	Model     string `json:"model"`     // URL the engine loads
	ModelName string `json:"modelName"` // as the user named it (-model)
	// Vendor is TF.js's vendor base URL (tools/streamserve's layout), set with -compare tfjs.
	Vendor string `json:"vendor,omitempty"`
	// Platforms are engine backends ("cpu", "webgpu", "webnn", "auto") or "all": every one the
	// browser offers. A platform named explicitly that the browser lacks is an error row.
	Platforms []string `json:"platforms"`
	// Formats are engine format names (engine.ParseFormat); the page loads "f32" first on each
	// platform as the reference, whether or not it is listed.
	Formats []string `json:"formats"`
	// Policies are precision planner policies (plan.Policies: "mixed", "balanced"…), each one
	// more configuration per platform after the formats; its row's Format is "policy:NAME".
	Policies []string `json:"policies,omitempty"`
	// Prompt and Tokens drive a decoder (Arch "llama"): Tokens greedy tokens are generated after
	// Prompt.
	// PromptTokens is Prompt's length in tokens as the model's tokenizer encodes it (BOS
	// included), counted natively: the engine does not say, and prefill speed needs it.
	Prompt       string   `json:"prompt,omitempty"`
	Tokens       int      `json:"tokens,omitempty"`
	PromptTokens int      `json:"promptTokens,omitempty"`
	Runs         int      `json:"runs"`    // timed single-text runs after one warm-up
	Texts        []string `json:"texts"`   // the accuracy set (embeddings); Texts[0] is the timed text
	Compare      []string `json:"compare"` // peers: "tfjs", "ort"
	// ORT are the ONNX exports of the model ONNX Runtime Web runs with -compare ort (USE-lite
	// only), from ORTVendor (onnxruntime-web's dist/ files); MaxLength is the model's token
	// limit, for tokenizing as the engine does.
	ORT       []ORTModel `json:"ort,omitempty"`
	ORTVendor string     `json:"ortVendor,omitempty"`
	MaxLength int        `json:"maxLength,omitempty"`
	// Need is what each format needs, read natively from the model's headers before the browser
	// starts; the page refuses a configuration that does not fit before loading a byte.
	Need map[string]Need `json:"need"`
	// MemoryLimit, when positive, is the most weight bytes a configuration may hold (-memory-limit).
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
}

// ORTModel is one ONNX export of the model (wasm/graph/onnx), made natively from the same file
// and the same quantized codes as the engine's format of that name.
type ORTModel struct {
	Format      string `json:"format"`      // "f32", or the engine's 4-bit format ("q4-sym-g32")
	URL         string `json:"url"`         // the .onnx file
	WeightBytes int64  `json:"weightBytes"` // its initializers' bytes
	Ops         string `json:"ops"`         // its operators, counted ("14×MatMul, …")
}

// Need is the weight memory a model needs in one format.
type Need struct {
	TotalBytes   int64  `json:"totalBytes"`   // every tensor as the format's plan holds it
	LargestBytes int64  `json:"largestBytes"` // the largest single tensor (one GPU buffer)
	Largest      string `json:"largest"`      // its name
}

// Fits says why need does not fit a platform whose largest buffer binding is maxBind bytes
// (0: no such limit) under limit total bytes (0: none); "" when it fits.
func Fits(need Need, maxBind, limit int64) string {
	if limit > 0 && need.TotalBytes > limit {
		return fmt.Sprintf("needs %s (%d bytes) of weights, more than -memory-limit %s (%d bytes)", Bytes(need.TotalBytes), need.TotalBytes, Bytes(limit), limit)
	}
	if maxBind > 0 && need.LargestBytes > maxBind {
		return fmt.Sprintf("tensor %s needs %d bytes in one buffer, more than this adapter's largest storage binding (%d bytes, %s)", need.Largest, need.LargestBytes, maxBind, Bytes(maxBind))
	}
	return ""
}

// Bytes writes n with a binary unit.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Result is one configuration (runtime × platform × format) as measured in the browser. Every
// figure comes from the page: bytes from what the backend holds, times from the page's clock,
// errors against the fp32 run of the same model on the same platform in the same browser.
type Result struct {
	Model    string `json:"model"`
	Browser  string `json:"browser"`  // filled by the CLI: "chromium", "firefox"
	Runtime  string `json:"runtime"`  // "nibble", or the peer and its version ("tfjs 4.22.0")
	Platform string `json:"platform"` // the backend that ran: cpu, webgpu, webnn (a peer's own name in PeerBackend)
	// PeerBackend is the peer's backend (TF.js "webgpu", "wasm"); empty for nibble.
	PeerBackend string `json:"peerBackend,omitempty"`
	Format      string `json:"format"` // weight matrices' format as the engine names it ("q4-sym-g32", "f32"), or "policy:NAME"
	// Policy is the planner policy of a "policy:NAME" row; PlanPolicy what the plan says it is
	// ("mixed", or "auto" resolved to its tier), with its predicted worst loss when it has one.
	Policy        string  `json:"policy,omitempty"`
	PlanPolicy    string  `json:"planPolicy,omitempty"`
	PredictedLoss float64 `json:"predictedLoss,omitempty"`
	Bits          int     `json:"bits"`
	GroupSize     int     `json:"groupSize"` // 0: per channel or not quantized
	Scheme        string  `json:"scheme"`    // "sym", "asym", "" for floats

	F32Bytes     int64   `json:"f32Bytes"`     // every tensor as float32
	WeightBytes  int64   `json:"weightBytes"`  // what the backend holds (Weight.Bytes summed)
	ReductionPct float64 `json:"reductionPct"` // 100·(1 − weightBytes/f32Bytes)
	PeakHeldMiB  float64 `json:"peakHeldMiB"`  // the loader's in-flight peak

	LoadMS        float64 `json:"loadMs"`        // Load until every weight is resident
	FirstOutputMS float64 `json:"firstOutputMs"` // Load until the first output (embedding started during the load)
	// LatencyMedianMS and LatencyP90MS time one call on Texts[0] (input in, output read back)
	// over Runs runs after one warm-up; BatchMS one call on all BatchTexts, warm.
	LatencyMedianMS float64 `json:"latencyMedianMs"`
	LatencyP90MS    float64 `json:"latencyP90Ms"`
	Runs            int     `json:"runs"`
	BatchMS         float64 `json:"batchMs"`
	BatchTexts      int     `json:"batchTexts"`

	// Error against Reference, per text then pooled: cosine (mean and worst), rel RMS over all
	// values, and the share of texts whose nearest other text is the one the reference picks.
	Reference        string  `json:"reference"`
	CosineMean       float64 `json:"cosineMean"`
	CosineMin        float64 `json:"cosineMin"`
	RelRMS           float64 `json:"relRms"`
	RankingAgreement float64 `json:"rankingAgreement"`
	// A peer's row with the same weights as a nibble row (ONNX Runtime's 4-bit export holds the
	// codes nibble's format holds): the cosine of this row's embeddings to that row's.
	SameWeights           string  `json:"sameWeights,omitempty"`
	SameWeightsCosineMean float64 `json:"sameWeightsCosineMean,omitempty"`
	SameWeightsCosineMin  float64 `json:"sameWeightsCosineMin,omitempty"`

	// A decoder's figures (Arch "llama"): PromptTokens prefilled then GeneratedTokens decoded
	// greedily; prefill is time to the first token, decode the rest. Top1Agreement is the share
	// of the reference's greedy tokens this configuration predicts too, teacher-forced (each
	// position re-prompted with the reference's text before it: the engine exposes tokens, not
	// logits, so there is no logit error). KVCacheBytes is the cache the decoder held.
	PromptTokens    int     `json:"promptTokens,omitempty"`
	GeneratedTokens int     `json:"generatedTokens,omitempty"`
	PrefillTokPerS  float64 `json:"prefillTokPerS,omitempty"`
	DecodeTokPerS   float64 `json:"decodeTokPerS,omitempty"`
	Top1Agreement   float64 `json:"top1Agreement,omitempty"`
	Top1Positions   int     `json:"top1Positions,omitempty"`
	KVCacheBytes    int64   `json:"kvCacheBytes,omitempty"`

	Adapter string `json:"adapter"` // what the backend says runs it
	// Hardware is false on a software adapter (SwiftShader, lavapipe) and on CPU runtimes; Verdict
	// says which in words.
	Hardware bool     `json:"hardware"`
	Verdict  string   `json:"verdict"`
	Features []string `json:"features"` // what the run could use: f16, subgroups, int4 weights…
	Plan     []Group  `json:"plan"`     // tensors by the format they are held in
	Notes    []string `json:"notes,omitempty"`
	Error    string   `json:"error,omitempty"`
	// NotRun says why a configuration asked for was not measured by design (a peer that cannot
	// run this model); unlike Error it does not fail the run.
	NotRun string `json:"notRun,omitempty"`
}

// Group is one line of a plan: how many tensors are held in a format, and their bytes.
type Group struct {
	Format  string `json:"format"`
	Tensors int    `json:"tensors"`
	Bytes   int64  `json:"bytes"`
}

// PlanString writes a plan in one line: "11×q4-sym-g32-f32 3.42 MiB, 40×f32 26.1 KiB".
func PlanString(p []Group) string {
	parts := make([]string, len(p))
	for i, g := range p {
		parts[i] = fmt.Sprintf("%d×%s %s", g.Tensors, g.Format, Bytes(g.Bytes))
	}
	return strings.Join(parts, ", ")
}

// Agreement compares embeddings got with ref, text by text.
type Agreement struct {
	CosineMean, CosineMin, RelRMS, Ranking float64
}

// Compare measures got against ref (one vector per text, same order).
func Compare(ref, got [][]float32) (Agreement, error) {
	if len(ref) != len(got) || len(ref) == 0 {
		return Agreement{}, fmt.Errorf("compare: %d reference vectors, %d to compare", len(ref), len(got))
	}
	a := Agreement{CosineMin: 1}
	var noise, sig float64
	for i := range ref {
		if len(ref[i]) != len(got[i]) {
			return Agreement{}, fmt.Errorf("compare: text %d: reference has %d values, got %d", i, len(ref[i]), len(got[i]))
		}
		c := Cosine(ref[i], got[i])
		a.CosineMean += c / float64(len(ref))
		a.CosineMin = min(a.CosineMin, c)
		for j, r := range ref[i] {
			d := float64(got[i][j]) - float64(r)
			noise += d * d
			sig += float64(r) * float64(r)
		}
	}
	if sig > 0 {
		a.RelRMS = math.Sqrt(noise / sig)
	}
	rn, gn := Neighbours(ref), Neighbours(got)
	same := 0
	for i := range rn {
		if rn[i] == gn[i] {
			same++
		}
	}
	a.Ranking = float64(same) / float64(len(rn))
	return a, nil
}

// Cosine is the cosine similarity of a and b, summed in float64.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 && bb == 0 {
		return 1
	}
	return ab / math.Sqrt(aa*bb)
}

// LogSoftmax is log softmax(logits), computed in float64: a decoder's log-probabilities.
func LogSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - mx)
	}
	lz := mx + math.Log(s)
	out := make([]float64, len(logits))
	for i, v := range logits {
		out[i] = float64(v) - lz
	}
	return out
}

// KL is KL(softmax(p) ‖ softmax(q)) in nats: how far a decoder's next-token distribution q
// (logits) is from the reference's p.
func KL(p, q []float32) float64 {
	lp, lq := LogSoftmax(p), LogSoftmax(q)
	var s float64
	for i := range lp {
		s += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return max(s, 0)
}

// Neighbours gives each vector's nearest other vector by cosine (-1 for a set of one).
func Neighbours(v [][]float32) []int {
	out := make([]int, len(v))
	for i := range v {
		best, bi := -2.0, -1
		for j := range v {
			if j != i {
				if c := Cosine(v[i], v[j]); c > best {
					best, bi = c, j
				}
			}
		}
		out[i] = bi
	}
	return out
}

// Percentile is the p-th percentile (0…100) of ms by nearest rank; 0 for none.
func Percentile(ms []float64, p float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Sentences are the default accuracy set: pairs that mean the same, so that nearest-neighbour
// ranking means something, and a few awkward inputs (Unicode, blank, over-long).
var Sentences = []string{
	"How old are you?", "What is your age?",
	"The weather is lovely today.", "It is sunny and warm outside.",
	"I love eating pizza with friends.", "Pizza is my favourite food.",
	"The stock market fell sharply this morning.", "Shares dropped at the opening bell.",
	"She plays the violin beautifully.", "Her music performance was wonderful.",
	"Where is the nearest train station?", "How do I get to the railway station?",
	"The cat sat on the mat.", "A dog is sleeping on the rug.",
	"Machine learning models run in the browser.", "Neural networks can execute on a web page.",
	"I forgot my password again.", "How can I reset my login credentials?",
	"The movie was boring and far too long.", "That film was dull and overlong.",
	"Please close the window, it is cold.", "Could you shut the window? I'm freezing.",
	"Quantum computers use qubits.", "The recipe needs two eggs and some flour.",
	"He ran the marathon in under three hours.", "Our team won the championship last night.",
	"Ünïcödé façade — “quotes”, ﬁligree and Ｆｕｌｌ-width!", "   ",
	"A very long sentence" + strings.Repeat(" that keeps going and going", 40) + ".",
	"The last sentence of the set.",
}
