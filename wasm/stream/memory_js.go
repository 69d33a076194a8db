//go:build js && wasm

package stream

import (
	"syscall/js"
)

// memorySpy is a Uint8Array subclass whose set() keeps the buffer of the array it is given.
// syscall/js's CopyBytesToJS calls dst.set(view of Go's memory), so copying one byte into a spy
// reveals the WebAssembly.Memory buffer, which wasm_exec.js does not expose otherwise.
var memorySpy = func() js.Value {
	ctor := js.Global().Get("Function").New(`
class NibbleMemorySpy extends Uint8Array {
  set(src) { this.memory = src.buffer; }
}
return new NibbleMemorySpy(1);`).Invoke()
	return ctor
}()

// LinearMemoryBytes returns the size of this module's WebAssembly linear memory: what the Go
// heap, stacks and runtime have ever claimed from the browser. It never shrinks (wasm memory
// cannot), so its growth during a load is that load's true peak cost in wasm memory.
func LinearMemoryBytes() int64 {
	js.CopyBytesToJS(memorySpy, []byte{0})
	buf := memorySpy.Get("memory")
	if !buf.Truthy() {
		return 0
	}
	return int64(buf.Get("byteLength").Int())
}
