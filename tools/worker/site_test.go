//go:build !(js && wasm)

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestSiteServesWasm(t *testing.T) {
	dir := t.TempDir()
	wasm := bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00 nibble "), 4096)
	if err := os.MkdirAll(filepath.Join(dir, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site/nibble.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<!doctype html><p>hi</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newSiteHandler(dir)
	for _, tc := range []siteCase{
		{"wasm gzip", "/site/nibble.wasm", "gzip, deflate, br", "GET", 200, "application/wasm", "gzip", true},
		{"wasm gzip q", "/site/nibble.wasm", "br;q=1.0, gzip;q=0.5", "GET", 200, "application/wasm", "gzip", true},
		{"wasm star", "/site/nibble.wasm", "*", "GET", 200, "application/wasm", "gzip", true},
		{"wasm gzip refused", "/site/nibble.wasm", "gzip;q=0, *", "GET", 200, "application/wasm", "", true},
		{"wasm identity", "/site/nibble.wasm", "identity", "GET", 200, "application/wasm", "", true},
		{"wasm no header", "/site/nibble.wasm", "", "GET", 200, "application/wasm", "", true},
		{"wasm head", "/site/nibble.wasm", "gzip", "HEAD", 200, "application/wasm", "gzip", true},
		{"wasm missing", "/site/other.wasm", "gzip", "GET", 404, "", "", true},
		{"html untouched", "/", "gzip", "GET", 200, "text/html; charset=utf-8", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.accept != "" {
				req.Header.Set("Accept-Encoding", tc.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			checkSiteResponse(t, rec, tc, wasm)
		})
	}
	// Through a real server, the way a browser gets it: Go's transport asks for gzip and
	// decodes it transparently.
	srv := httptest.NewServer(h)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/site/nibble.wasm")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Uncompressed || !bytes.Equal(got, wasm) {
		t.Errorf("over HTTP: uncompressed by the transport %v, %d bytes, want the file's %d", res.Uncompressed, len(got), len(wasm))
	}
}

// siteCase is one request to the site handler and what its answer must be.
type siteCase struct {
	name, path, accept string
	method             string
	wantStatus         int
	wantType           string
	wantEncoding       string
	wantVary           bool
}

// checkSiteResponse checks the answer to tc: status, Vary, and for a 200 the Content-Type,
// Content-Encoding and (for a GET of the wasm) the body, which gunzipped where gzip is said
// must be the file wasm.
func checkSiteResponse(t *testing.T, rec *httptest.ResponseRecorder, tc siteCase, wasm []byte) {
	t.Helper()
	res := rec.Result()
	if res.StatusCode != tc.wantStatus {
		t.Fatalf("status %d, want %d", res.StatusCode, tc.wantStatus)
	}
	if got := res.Header.Get("Vary"); (got == "Accept-Encoding") != tc.wantVary {
		t.Errorf("Vary %q, want it set: %v", got, tc.wantVary)
	}
	if tc.wantStatus != 200 {
		return
	}
	if got := res.Header.Get("Content-Type"); got != tc.wantType {
		t.Errorf("Content-Type %q, want %q", got, tc.wantType)
	}
	if got := res.Header.Get("Content-Encoding"); got != tc.wantEncoding {
		t.Fatalf("Content-Encoding %q, want %q", got, tc.wantEncoding)
	}
	if tc.method == "HEAD" || tc.path != "/site/nibble.wasm" {
		return
	}
	body := rec.Body.Bytes()
	if tc.wantEncoding == "gzip" {
		if len(body) >= len(wasm) {
			t.Errorf("gzip body %d bytes, not smaller than %d", len(body), len(wasm))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(body, wasm) {
		t.Errorf("body (%d bytes decoded) is not the file (%d bytes)", len(body), len(wasm))
	}
}
