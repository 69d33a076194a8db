//go:build js && wasm

// The demo bundle: the JS API (package jsapi, shared with the library bundle wasm/cmd/nibble-lib)
// as globalThis.nibble, and the demo UI.
package main

import (
	"syscall/js"

	"github.com/nibble-ml/nibble/site"
	"github.com/nibble-ml/nibble/wasm/internal/jsapi"
)

func main() {
	js.Global().Set("nibble", jsapi.New())
	// Pages wait for this event instead of polling for globalThis.nibble.
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("nibble-ready"))
	site.Mount()
	select {}
}
