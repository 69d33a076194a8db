//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "this is tools/quanttest's page, a js/wasm program that runs in a browser: go run ./tools/quanttest run -h")
	os.Exit(2)
}
