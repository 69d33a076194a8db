//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "nibble-lib is the WebAssembly of the npm package @nibble-ml/nibble: make package")
	os.Exit(2)
}
