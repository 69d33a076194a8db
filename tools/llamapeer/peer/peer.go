// Package peer is what tools/llamapeer's two halves share: the prompt both runtimes prefill and
// the result each page function returns as JSON.
package peer

// Prompt is the text nibble and wllama prefill.
const Prompt = "The quick brown fox jumps over the lazy dog, and the model"

// Result is one runtime's run: times in milliseconds, the greedy text.
type Result struct {
	Runtime    string  `json:"runtime"`
	LoadMS     float64 `json:"loadMs"`
	PrefillN   int     `json:"prefillN"`
	PrefillMS  float64 `json:"prefillMs"`
	DecodeN    int     `json:"decodeN"`
	DecodeMS   float64 `json:"decodeMs"`
	KVPerToken int64   `json:"kvBytesPerToken"`
	WasmMiB    float64 `json:"wasmMiB"`
	Text       string  `json:"text"`
	Error      string  `json:"error,omitempty"`
	Layers     int     `json:"layers"`
	Isolated   bool    `json:"isolated"`
	// Tokens are nibble's greedy tokens. With reference tokens given, each decode step is fed
	// the reference's token instead (teacher forcing) and Agree counts the steps whose own most
	// likely token equals it.
	Tokens []int32 `json:"tokens,omitempty"`
	Agree  int     `json:"agree"`
	Forced bool    `json:"forced"`
}
