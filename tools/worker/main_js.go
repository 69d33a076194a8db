//go:build js && wasm

package main

import (
	"context"
	"io"
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
	bucket, err := store.NewR2(cloudflare.GetBinding("MODELS"), prefix)
	if err != nil {
		msg := "worker misconfigured: " + err.Error()
		workers.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, msg, http.StatusInternalServerError)
		}))
		return
	}
	var models store.Store = bucket
	if v := cloudflare.GetBinding("MODELS_COPY_THROUGH_GO"); v.Type() == js.TypeString && v.String() == "1" {
		// Only for bench.sh: measures what streaming R2 bodies straight to the Response saves.
		models = copyThroughGo{models}
	}
	workers.Serve(serve.New(models))
}

// copyThroughGo hides the R2 body's WriteTo, so io.Copy moves every byte through Go:
// ReadableStream → Go []byte → syumai/workers' FixedLengthStream.
type copyThroughGo struct{ store.Store }

func (c copyThroughGo) Get(ctx context.Context, key string, r *store.Range, etag string) (*store.Object, error) {
	obj, err := c.Store.Get(ctx, key, r, etag)
	if err == nil {
		obj.Body = struct{ io.ReadCloser }{obj.Body}
	}
	return obj, err
}
