//go:build js && wasm

package engine

import "syscall/js"

// deviceMemory is navigator.deviceMemory in bytes (Chromium rounds it to a power of two and
// caps it at 8 GiB; Firefox and Safari do not have it): 0 when unknown.
func deviceMemory() int64 {
	nav := js.Global().Get("navigator")
	if nav.IsUndefined() {
		return 0
	}
	gib := nav.Get("deviceMemory")
	if gib.Type() != js.TypeNumber {
		return 0
	}
	return int64(gib.Float() * (1 << 30))
}
