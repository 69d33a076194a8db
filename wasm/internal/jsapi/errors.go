package jsapi

import (
	"net/url"
	"path"
	"strings"

	"github.com/nibble-ml/nibble/wasm/engine"
)

// Failure is what a rejected call carries to JS: a stable code, one line a person can act on,
// and the whole Go chain for the bug report.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Chain   string `json:"chain"`
}

// advice says what to do about each code. BAD_ARGUMENT and UNSUPPORTED_FORMAT add the Go
// error's own words: only they say which argument, or which feature, was wrong.
var advice = map[string]string{
	"NOT_FOUND":          "not found (HTTP 404): check the URL",
	"UNSUPPORTED_FORMAT": "nibble cannot read this",
	"UNSUPPORTED_MODEL":  "nibble loads this model's weights but cannot run it whole (embed runs Universal Sentence Encoder Lite, generate Llama-family GGUF)",
	"OUT_OF_MEMORY":      "too large for this device or for memoryBudget: choose a smaller policy (small, tiny) or model, or raise memoryBudget",
	"DEVICE_LOST":        "the GPU or WebNN device was lost: load the model again",
	"ABORTED":            "aborted",
	"NETWORK":            "network error: check the connection and the server, then retry",
	"INTERNAL":           "internal error in nibble: please report it with the error's cause",
}

// Describe turns err from what (a call, e.g. `load("…/models/m")`) into its Failure. modelURL,
// if not "", is the URL the call was given: a directory written without its trailing slash
// gets a hint.
func Describe(what, modelURL string, err error) Failure {
	code := engine.Code(err)
	f := Failure{Code: code, Chain: err.Error()}
	msg := advice[code]
	switch code {
	case "BAD_ARGUMENT":
		// The chain says which argument and why; the code already says it was one.
		msg = strings.TrimPrefix(withoutKind(f.Chain), what+": ")
	case "UNSUPPORTED_FORMAT":
		msg += ": " + withoutKind(f.Chain)
	case "NOT_FOUND":
		if u, perr := url.Parse(modelURL); modelURL != "" && perr == nil && !strings.HasSuffix(u.Path, "/") && path.Ext(u.Path) == "" {
			msg += "; a model directory's URL ends with a slash (" + modelURL + "/)"
		}
	}
	f.Message = what + ": " + strings.ReplaceAll(msg, "\n", " ")
	return f
}

// withoutKind drops the kind's own words from a chain ("bad argument: …", "…: unsupported"):
// the code says them.
func withoutKind(chain string) string {
	for _, k := range []string{"bad argument", "unsupported", "bad model file"} {
		chain = strings.ReplaceAll(chain, k+": ", "")
		chain = strings.TrimSuffix(chain, ": "+k)
	}
	return chain
}
