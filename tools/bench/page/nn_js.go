//go:build js && wasm

package main

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/nn"
)

// nibble-webnn: the WebNN backend on a cpu context, the same device type as ORT's WebNN EP here
// (TFLite CPU in Chromium 153), with its default (fastest measured) graph shape.
func init() {
	backends["nibble-webnn"] = func() (backend.Backend, error) { return nn.New(nn.Options{}) }
	describers = append(describers, func(w backend.Weight) (string, string, bool) {
		nw, ok := w.(*nn.Weight)
		if !ok {
			return "", "", false
		}
		return fmt.Sprintf("webnn %v", nw.Path()), nw.Note(), true
	})
}
