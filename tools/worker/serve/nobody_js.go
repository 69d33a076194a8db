//go:build js && wasm

package serve

import (
	"net/http"
	"syscall/js"
)

// endWithoutBody gives the Worker's Response a null body. Without it, syumai/workers turns a
// HEAD's Content-Length into a FixedLengthStream that then closes empty, short of the length
// it promised.
func endWithoutBody(w http.ResponseWriter) {
	if rw, ok := w.(interface{ WriteRawJSBody(js.Value) }); ok {
		rw.WriteRawJSBody(js.Null())
	}
}
