//go:build js && wasm

package site

// Mount builds the demo UI inside #nibble-demo, if the page has one.
func Mount() {}
