// Package jsutil is the one place nibble and its tools cross into JavaScript for generic
// chores: awaiting promises with a timeout or a context, turning thrown exceptions into Go
// errors, the Promise, Error and Object constructors looked up once, and copying typed arrays
// without one syscall per element. It sits outside internal/ so that tools (the Cloudflare
// Worker's R2 store) use it too. Everything here is js && wasm only; this file exists so the
// package is visible to native tooling.
package jsutil
