//go:build !(js && wasm)

// The page only runs in a browser; this stub keeps native builds of ./... whole.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "stresspage runs in a browser: build it with GOOS=js GOARCH=wasm (tools/worker/stress.sh does)")
	os.Exit(2)
}
