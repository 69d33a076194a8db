//go:build !(js && wasm)

package serve

import "net/http"

// endWithoutBody: net/http sends no body for HEAD and 304 by itself.
func endWithoutBody(http.ResponseWriter) {}
