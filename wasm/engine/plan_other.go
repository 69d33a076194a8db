//go:build !(js && wasm)

package engine

// deviceMemory is unknown natively: no budget but the caller's.
func deviceMemory() int64 { return 0 }
