// Package site is nibble's demo page, written in Go with honnef.co/go/js/dom/v2 and mounted by
// the bundle (wasm/cmd/nibble) when the page has an element with id "nibble-demo". It shows
// what this browser offers (and says so when the WebGPU adapter is software), lets one pick a
// model served by tools/worker, a backend and a format, streams the model with a live progress
// bar, and then shows memory before/after and per-layer matmul latency and error against a
// float32 reference. Every figure on the page is measured in the page by package engine;
// none is typed in.
//
// The UI is js && wasm only (ui_js.go); style.css is plain CSS. Natively this package holds
// the end-to-end browser test of the bundle (bundle_test.go).
package site
