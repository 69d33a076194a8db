//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "nibble is a WebAssembly bundle: GOOS=js GOARCH=wasm go build -o site/nibble.wasm ./wasm/cmd/nibble")
	os.Exit(2)
}
