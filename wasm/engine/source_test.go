//go:build !(js && wasm)

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// Issue 16: a model.json naming "../other/w.bin" loaded another model's bytes, with no size or
// sha256 check, and an absolute path sent the request wherever it pointed. Every file a
// manifest or model.json names must now resolve inside the model's directory, and is refused
// before anything is requested otherwise.
func TestURLConfinement(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	files := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.EscapedPath())
		mu.Unlock()
		if b, ok := files[r.URL.Path]; ok {
			w.Write([]byte(b))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	modelJSON := func(paths ...string) string {
		return fmt.Sprintf(`{"weightsManifest":[{"paths":["%s"],"weights":[{"name":"w","shape":[4],"dtype":"float32"}]}]}`, strings.Join(paths, `","`))
	}
	shard := strings.Repeat("\x00", 16)
	sum := sha256.Sum256([]byte(shard))
	manifest := func(names ...string) string {
		var fs []string
		for _, n := range names {
			fs = append(fs, fmt.Sprintf(`{"name":%q,"size":16,"sha256":%q}`, n, hex.EncodeToString(sum[:])))
		}
		return `{"model":"m","files":[` + strings.Join(fs, ",") + `]}`
	}
	files["/models/other/w.bin"] = shard
	for _, c := range []struct {
		name, url string
		files     map[string]string
		ok        bool
	}{
		{"parent dir", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("../other/w.bin")}, false},
		{"absolute path", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("/models/other/w.bin")}, false},
		{"other host", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("http://evil.example/w.bin")}, false},
		{"scheme-relative", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("//evil.example/w.bin")}, false},
		{"encoded dots", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("%2e%2e/other/w.bin")}, false},
		{"backslashes", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON(`..\\other\\w.bin`)}, false},
		{"dots inside", "/models/m/model.json", map[string]string{"/models/m/model.json": modelJSON("sub/../../other/w.bin")}, false},
		{"manifest file outside", "/models/m/", map[string]string{"/models/m/manifest.json": manifest("../other/x.safetensors")}, false},
		{"manifest model.json, shard outside", "/models/m/", map[string]string{
			"/models/m/manifest.json": manifest("model.json"), "/models/m/model.json": modelJSON("../other/w.bin")}, false},
		{"inside, ./ prefix, checked by the manifest", "/models/m/model.json", map[string]string{
			"/models/m/model.json": modelJSON("./w.bin"), "/models/m/manifest.json": manifest("w.bin"), "/models/m/w.bin": shard}, true},
		{"inside, a subdirectory", "/models/m/model.json", map[string]string{
			"/models/m/model.json": modelJSON("weights/w.bin"), "/models/m/weights/w.bin": shard}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			for k, v := range c.files {
				files[k] = v
			}
			asked = nil
			mu.Unlock()
			defer func() {
				for k := range c.files {
					delete(files, k)
				}
			}()
			spec, err := Resolve(context.Background(), srv.URL+c.url)
			if !c.ok {
				if !errors.Is(err, stream.ErrOutside) || errs.Kind(err) != errs.ErrFormat {
					t.Fatalf("resolved (%v), want stream.ErrOutside", err)
				}
				t.Log(err)
				for _, p := range asked {
					if strings.Contains(p, "other") || strings.Contains(p, "evil") {
						t.Errorf("requested %s", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res, err := stream.Start(context.Background(), cpu.New(), stream.Options{Reader: spec.Reader}, spec.Sources...).Result(context.Background())
			if err != nil || len(res) != 1 {
				t.Fatalf("load: %v, %d tensors", err, len(res))
			}
			if c.files["/models/m/manifest.json"] != "" && (spec.Sources[0].Size != 16 || !strings.Contains(strings.Join(spec.Notes, " "), "each checked")) {
				t.Errorf("the shard was not checked against the manifest: %+v %q", spec.Sources[0], spec.Notes)
			}
		})
	}
}

// TestResolveErrorKinds: what Resolve refuses says why in one of wasm/errs's kinds.
func TestResolveErrorKinds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad/manifest.json":
			w.Write([]byte(`{"files":[{"name":"x","size":-1}]}`))
		case "/none/manifest.json":
			w.Write([]byte(`{"files":[{"name":"readme.txt","size":1}]}`))
		case "/tf/model.json":
			w.Write([]byte(`{"format":"graph-model"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		url  string
		want error
	}{
		{"", errs.ErrBadArgument},
		{"http://[::1", errs.ErrBadArgument},
		{srv.URL + "/missing/", errs.ErrNotFound},
		{srv.URL + "/bad/", errs.ErrFormat},
		{srv.URL + "/none/", errs.ErrUnsupported},
		{srv.URL + "/tf/model.json", errs.ErrFormat},
		{"http://127.0.0.1:1/m/", errs.ErrNetwork},
	} {
		_, err := Resolve(context.Background(), c.url)
		if errs.Kind(err) != c.want {
			t.Errorf("Resolve(%q): %v (kind %v), want %v", c.url, err, errs.Kind(err), c.want)
		}
	}
	if _, err := NewBackend("tpu"); Code(err) != "BAD_ARGUMENT" {
		t.Errorf("NewBackend(tpu): %v", err)
	}
	if _, err := NewBackend("webgpu"); Code(err) != "UNSUPPORTED_FORMAT" {
		t.Errorf("NewBackend(webgpu) natively: %v", err)
	}
}
