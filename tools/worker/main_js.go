//go:build js && wasm

package main

import (
	"net/http"
	"syscall/js"

	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
)

// main runs once per request: syumai/workers' glue starts a fresh Go instance for each
// fetch event, with that request's env (bindings and vars) as its runtime context.
func main() {
	prefix := "models/"
	if v := cloudflare.GetBinding("MODELS_PREFIX"); v.Type() == js.TypeString {
		prefix = v.String()
	}
	models, err := store.NewR2(cloudflare.GetBinding("MODELS"), prefix)
	if err != nil {
		msg := "worker misconfigured: " + err.Error()
		workers.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, msg, http.StatusInternalServerError)
		}))
		return
	}
	workers.Serve(serve.New(models))
}
