//go:build !(js && wasm)

package site

// Mount does nothing outside a browser.
func Mount() {}
