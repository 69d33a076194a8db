//go:build !(js && wasm)

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A model directory written without its trailing slash is still a directory, and once resolved
// a model resolves again with the server unreachable (its manifest and model.json kept), unless
// the load asked for no cache.
func TestResolveNoSlashAndOffline(t *testing.T) {
	shard := string(make([]byte, 16))
	sum := sha256.Sum256([]byte(shard))
	files := map[string]string{
		"/models/m/model.json":    `{"weightsManifest":[{"paths":["w.bin"],"weights":[{"name":"w","shape":[4],"dtype":"float32"}]}]}`,
		"/models/m/manifest.json": fmt.Sprintf(`{"model":"m","files":[{"name":"model.json","size":1},{"name":"w.bin","size":16,"sha256":%q}]}`, hex.EncodeToString(sum[:])),
		"/models/m/w.bin":         shard,
	}
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			// The connection dies with no answer: what fetch sees with the network down.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if b, ok := files[r.URL.Path]; ok {
			w.Write([]byte(b))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	ctx := context.Background()

	s, err := Resolve(ctx, srv.URL+"/models/m")
	if err != nil || s.Kind != KindTFJS {
		t.Fatalf("/models/m without its slash: %+v, %v; want the TF.js model its manifest lists", s, err)
	}
	if _, err := Resolve(ctx, srv.URL+"/models/m/"); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	if s, err := Resolve(ctx, srv.URL+"/models/m/"); err != nil || s.Kind != KindTFJS {
		t.Errorf("offline, after one resolve: %+v, %v; want the kept manifest and model.json", s, err)
	}
	if _, err := Resolve(withoutFileCache(ctx), srv.URL+"/models/m/"); Code(err) != "NETWORK" {
		t.Errorf("offline with cache: false: %v, want a NETWORK error", err)
	}
}
