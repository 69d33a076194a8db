//go:build js && wasm

package main

import (
	"os"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/internal/jsapi"
)

func main() {
	// The runtime names a one-off global to receive the API (and deletes it): the page, or the
	// worker, keeps no nibble global of ours.
	boot := os.Getenv("NIBBLE_BOOT")
	if boot == "" {
		js.Global().Get("console").Call("error", "nibble: started without NIBBLE_BOOT; use the @nibble-ml/nibble module, which starts it")
		return
	}
	js.Global().Get(boot).Invoke(jsapi.New())
	select {}
}
