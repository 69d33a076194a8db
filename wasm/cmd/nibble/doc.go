// Command nibble is the WebAssembly bundle: built with GOOS=js GOARCH=wasm it defines
// globalThis.nibble, and mounts the demo UI (package site) when the page has an element with
// id "nibble-demo". All work happens in package engine; the JS glue is package jsapi.
//
// The JS API is package jsapi's (wasm/internal/jsapi/doc.go); the library bundle without the
// demo is wasm/cmd/nibble-lib.
//
// Built natively the command only says how to build it.
package main
