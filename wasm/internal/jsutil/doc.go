// Package jsutil is the one place nibble crosses into JavaScript for generic chores: awaiting
// promises with a timeout, turning thrown exceptions into Go errors, and copying typed arrays
// without one syscall per element. Everything here is js && wasm only; this file exists so the
// package is visible to native tooling.
package jsutil
