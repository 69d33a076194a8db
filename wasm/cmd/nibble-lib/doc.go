// Command nibble-lib is the WebAssembly inside the npm package @nibble-ml/nibble (npm/): the JS
// API of package jsapi and nothing else (no demo UI, no globalThis.nibble). The package's
// runtime (npm/src/runtime.js) starts it with NIBBLE_BOOT naming a one-off global function,
// which it calls once with the API object.
//
// Build it with make package, which also packs the npm tarball.
package main
