package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/tools/worker/store"
)

const shardSize = 100_003 // odd, so ranges near the end are not round numbers

var casName = "shard-" + strings.Repeat("ab", 32) + ".bin"

// fixture lays out a models directory with a secret beside it (outside the root) and a
// symlink inside it pointing at the secret, and returns the handler and the shard's bytes.
func fixture(t *testing.T) (*Handler, []byte) {
	t.Helper()
	top := t.TempDir()
	root := filepath.Join(top, "models")
	for _, d := range []string{"tiny", "cas", "empty", "nomanifest"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shard := make([]byte, shardSize)
	rand.NewChaCha8([32]byte{1}).Read(shard)
	write := func(p string, b []byte) {
		t.Helper()
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(top, "secret.txt"), []byte("SECRET"))
	write(filepath.Join(root, "tiny", "shard.bin"), shard)
	write(filepath.Join(root, "tiny", "config.json"), []byte(`{"dim":4}`))
	write(filepath.Join(root, "tiny", "manifest.json"), []byte(`{"model":"tiny","files":[]}`+"\n"))
	write(filepath.Join(root, "cas", casName), shard[:10])
	write(filepath.Join(root, "empty", "zero.bin"), nil)
	write(filepath.Join(root, "nomanifest", "a.bin"), []byte("abc"))
	write(filepath.Join(root, "nomanifest", ".hidden"), []byte("no"))
	if err := os.Symlink(filepath.Join(top, "secret.txt"), filepath.Join(root, "tiny", "escape.bin")); err != nil {
		t.Fatal(err)
	}
	d, err := store.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	h := New(d)
	h.Logf = t.Logf
	return h, shard
}

func do(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://models.test/", nil)
	// url.Parse keeps dot segments and escapes as sent, as a server receives them;
	// httptest.NewRequest would resolve or reject some of the hostile ones.
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	req.URL = u
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRanges(t *testing.T) {
	h, shard := fixture(t)
	n := int64(len(shard))
	cases := []struct {
		rng        string
		status     int
		first, end int64 // expected body shard[first:end] for 200/206
	}{
		{"", 200, 0, n},
		{"bytes=0-0", 206, 0, 1},
		{"bytes=0-99", 206, 0, 100},
		{"bytes=100-", 206, 100, n},
		{fmt.Sprintf("bytes=%d-%d", n-1, n-1), 206, n - 1, n}, // the last byte
		{fmt.Sprintf("bytes=%d-", n-1), 206, n - 1, n},
		{"bytes=-1", 206, n - 1, n},
		{"bytes=-4096", 206, n - 4096, n},
		{fmt.Sprintf("bytes=-%d", n+1000), 206, 0, n}, // longer suffix than the file: all of it
		{fmt.Sprintf("bytes=5000-%d", n+1000), 206, 5000, n},
		{"bytes=000010-000019", 206, 10, 20},
		{" bytes = 10-19 ", 206, 10, 20},
		{"BYTES=10-19", 206, 10, 20},
		{"items=0-5", 200, 0, n}, // unknown unit: ignored (RFC 9110 §14.2)
		{fmt.Sprintf("bytes=%d-", n), 416, 0, 0},
		{fmt.Sprintf("bytes=%d-%d", n, n+5), 416, 0, 0},
		{"bytes=-0", 416, 0, 0},
		{"bytes=20-10", 416, 0, 0},
		{"bytes=0-1,5-6", 416, 0, 0},
		{"bytes=0-1, 0-1", 416, 0, 0},
		{"bytes=", 416, 0, 0},
		{"bytes=-", 416, 0, 0},
		{"bytes=a-b", 416, 0, 0},
		{"bytes=+1-2", 416, 0, 0},
		{"bytes=1 - 2", 416, 0, 0},
		{"bytes=0x10-0x20", 416, 0, 0},
		{"bytes=99999999999999999999-", 416, 0, 0},
		{"bytes=0-99999999999999999999", 206, 0, n}, // a last byte past the end means the end
		{"bytes=-99999999999999999999", 206, 0, n},
		{"bytes=9223372036854775807-", 416, 0, 0},
		{"bytes 0-1", 416, 0, 0},
		{"garbage", 416, 0, 0},
		{"=0-1", 416, 0, 0},
		{"bytes=0-1" + strings.Repeat(" ", 200), 416, 0, 0},
		{"bytes=" + strings.Repeat("0", 500) + "1-", 416, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.rng, func(t *testing.T) {
			var rec *httptest.ResponseRecorder
			if c.rng == "" {
				rec = do(h, "GET", "/models/tiny/shard.bin")
			} else {
				rec = do(h, "GET", "/models/tiny/shard.bin", "Range", c.rng)
			}
			checkRangeResponse(t, rec, c.rng, c.status, shard, c.first, c.end)
		})
	}
	t.Run("two Range fields", func(t *testing.T) {
		if rec := do(h, "GET", "/models/tiny/shard.bin", "Range", "bytes=0-1", "Range", "bytes=2-3"); rec.Code != 416 {
			t.Errorf("status %d, want 416", rec.Code)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		if rec := do(h, "GET", "/models/empty/zero.bin", "Range", "bytes=0-"); rec.Code != 416 || rec.Header().Get("Content-Range") != "bytes */0" {
			t.Errorf("status %d Content-Range %q, want 416 bytes */0", rec.Code, rec.Header().Get("Content-Range"))
		}
		if rec := do(h, "GET", "/models/empty/zero.bin"); rec.Code != 200 || rec.Body.Len() != 0 {
			t.Errorf("status %d, %d bytes; want 200, empty", rec.Code, rec.Body.Len())
		}
	})
	t.Run("HEAD ignores Range", func(t *testing.T) {
		rec := do(h, "HEAD", "/models/tiny/shard.bin", "Range", "bytes=0-9")
		if rec.Code != 200 || rec.Header().Get("Content-Length") != fmt.Sprint(n) || rec.Body.Len() != 0 {
			t.Errorf("status %d Content-Length %q body %d", rec.Code, rec.Header().Get("Content-Length"), rec.Body.Len())
		}
	})
}

// checkRangeResponse checks the answer to Range rng: the status, Accept-Ranges, and for 206 and
// 200 the body shard[first:end] with its Content-Range and Content-Length (for 416 the
// Content-Range that names the size).
func checkRangeResponse(t *testing.T, rec *httptest.ResponseRecorder, rng string, status int, shard []byte, first, end int64) {
	t.Helper()
	n := int64(len(shard))
	if rec.Code != status {
		t.Fatalf("Range %q: status %d, want %d", rng, rec.Code, status)
	}
	hdr := rec.Header()
	if got := hdr.Get("Accept-Ranges"); got != "bytes" {
		t.Errorf("Accept-Ranges %q", got)
	}
	switch status {
	case 416:
		if got, want := hdr.Get("Content-Range"), fmt.Sprintf("bytes */%d", n); got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
		return
	case 206:
		if got, want := hdr.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", first, end-1, n); got != want {
			t.Errorf("Content-Range %q, want %q", got, want)
		}
	}
	if !bytes.Equal(rec.Body.Bytes(), shard[first:end]) {
		t.Errorf("body: %d bytes, want shard[%d:%d]", rec.Body.Len(), first, end)
	}
	if got, want := hdr.Get("Content-Length"), fmt.Sprint(end-first); got != want {
		t.Errorf("Content-Length %q, want %s", got, want)
	}
}

func TestConditional(t *testing.T) {
	h, shard := fixture(t)
	full := do(h, "GET", "/models/tiny/shard.bin")
	etag := full.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 3 {
		t.Fatalf("ETag %q is not a quoted strong tag", etag)
	}
	lm := full.Header().Get("Last-Modified")
	cases := []struct {
		name   string
		method string
		hdr    []string
		status int
	}{
		{"If-None-Match same", "GET", []string{"If-None-Match", etag}, 304},
		{"If-None-Match HEAD", "HEAD", []string{"If-None-Match", etag}, 304},
		{"If-None-Match weak", "GET", []string{"If-None-Match", "W/" + etag}, 304},
		{"If-None-Match list", "GET", []string{"If-None-Match", `"nope", ` + etag}, 304},
		{"If-None-Match star", "GET", []string{"If-None-Match", "*"}, 304},
		{"If-None-Match other", "GET", []string{"If-None-Match", `"nope"`}, 200},
		{"If-None-Match beats Range", "GET", []string{"If-None-Match", etag, "Range", "bytes=0-1"}, 304},
		{"If-Modified-Since", "GET", []string{"If-Modified-Since", lm}, 304},
		{"If-Modified-Since old", "GET", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
		{"If-Range match", "GET", []string{"If-Range", etag, "Range", "bytes=0-1"}, 206},
		{"If-Range stale", "GET", []string{"If-Range", `"old"`, "Range", "bytes=0-1"}, 200},
		{"If-Range weak", "GET", []string{"If-Range", "W/" + etag, "Range", "bytes=0-1"}, 200},
		{"If-Range date", "GET", []string{"If-Range", lm, "Range", "bytes=0-1"}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(h, c.method, "/models/tiny/shard.bin", c.hdr...)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			if c.status == 304 && (rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag) {
				t.Errorf("304 with %d body bytes, ETag %q", rec.Body.Len(), rec.Header().Get("ETag"))
			}
			if c.status == 200 && c.method == "GET" && !bytes.Equal(rec.Body.Bytes(), shard) {
				t.Errorf("200 without the whole shard")
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	h, _ := fixture(t)
	rec := do(h, "GET", "/models/cas/"+casName)
	if got := rec.Header().Get("Cache-Control"); got != ImmutableCacheControl {
		t.Errorf("content-addressed Cache-Control %q", got)
	}
	rec = do(h, "GET", "/models/tiny/shard.bin", "Origin", "https://example.org")
	hdr := rec.Header()
	for k, want := range map[string]string{
		"Cache-Control":               RevalidateCacheControl,
		"Access-Control-Allow-Origin": "*",
		"Content-Type":                "application/octet-stream",
		"X-Content-Type-Options":      "nosniff",
	} {
		if got := hdr.Get(k); got != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	for _, exp := range []string{"Content-Range", "Content-Length", "ETag", "Accept-Ranges"} {
		if !strings.Contains(hdr.Get("Access-Control-Expose-Headers"), exp) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", hdr.Get("Access-Control-Expose-Headers"), exp)
		}
	}
	rec = do(h, "OPTIONS", "/models/tiny/shard.bin", "Origin", "https://example.org", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "range")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Range") ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "HEAD") {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}
	if rec := do(h, "GET", "/models/tiny/config.json"); rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("config.json Content-Type %q", rec.Header().Get("Content-Type"))
	}
}

func TestContentAddressed(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for name, want := range map[string]bool{
		hex64:                           true,
		"model-" + hex64 + ".bin":       true,
		"model." + hex64:                true,
		"model-" + hex64 + "0.bin":      false, // 65 digits: not a sha256
		"model-" + hex64[1:] + ".bin":   false,
		strings.ToUpper(hex64) + ".bin": false,
		"model.safetensors":             false,
	} {
		if got := ContentAddressed(name); got != want {
			t.Errorf("ContentAddressed(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestManifest(t *testing.T) {
	h, shard := fixture(t)
	// A stored manifest.json is served as the file it is.
	if rec := do(h, "GET", "/models/tiny/manifest.json"); rec.Code != 200 || rec.Body.String() != `{"model":"tiny","files":[]}`+"\n" {
		t.Errorf("stored manifest: %d %q", rec.Code, rec.Body.String())
	}
	// Otherwise one is generated, with sizes and sha256, hidden files left out.
	rec := do(h, "GET", "/models/nomanifest/manifest.json")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("generated manifest: %d %q", rec.Code, rec.Body.String())
	}
	var m Manifest
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("abc"))
	want := Manifest{Model: "nomanifest", Files: []ManifestFile{{Name: "a.bin", Size: 3, SHA256: hex.EncodeToString(sum[:])}}}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("manifest %+v, want %+v", m, want)
	}
	etag := rec.Header().Get("ETag")
	if rec := do(h, "GET", "/models/nomanifest/manifest.json", "If-None-Match", etag); rec.Code != 304 {
		t.Errorf("generated manifest revalidation: %d, want 304", rec.Code)
	}
	if rec := do(h, "GET", "/models/nomanifest/manifest.json", "Range", "bytes=0-0"); rec.Code != 206 || rec.Body.String() != "{" {
		t.Errorf("generated manifest range: %d %q", rec.Code, rec.Body.String())
	}
	// BuildManifest over a directory: what -write-manifest uploads.
	m2, err := BuildManifest(t.Context(), h.Store, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(shard)
	var found bool
	for _, f := range m2.Files {
		if f.Name == ManifestName || f.Name == "escape.bin" {
			t.Errorf("manifest lists %s", f.Name)
		}
		if f.Name == "shard.bin" {
			found = f.Size == shardSize && f.SHA256 == hex.EncodeToString(sum[:])
		}
	}
	if !found {
		t.Errorf("manifest %+v lacks shard.bin with its size and sha256", m2)
	}
	if rec := do(h, "GET", "/models/absent/manifest.json"); rec.Code != 404 {
		t.Errorf("manifest of a missing model: %d, want 404", rec.Code)
	}
}

func TestHostile(t *testing.T) {
	h, _ := fixture(t)
	big := strings.Repeat("x", DefaultMaxHeaderBytes)
	cases := []struct {
		method, target string
		hdr            []string
		status         int
	}{
		{"GET", "/models/tiny/shard.bin", nil, 200}, // control
		{"GET", "/models/tiny/missing.bin", nil, 404},
		{"GET", "/models/tiny", nil, 404},
		{"GET", "/models/tiny/", nil, 404},
		{"GET", "/models/", nil, 404},
		{"GET", "/models", nil, 404},
		{"GET", "/models/tiny/a/b", nil, 404},
		{"GET", "/models/../secret.txt", nil, 400},
		{"GET", "/models/tiny/../../secret.txt", nil, 404},
		{"GET", "/models/tiny/..", nil, 400},
		{"GET", "/models/../models/tiny/shard.bin", nil, 404},
		{"GET", "/models/%2e%2e/secret.txt", nil, 400},
		{"GET", "/models/tiny/%2e%2e%2f%2e%2e%2fsecret.txt", nil, 400},
		{"GET", "/models/tiny/..%2f..%2fsecret.txt", nil, 400},
		{"GET", "/models/tiny%2fshard.bin/x", nil, 400},
		{"GET", "/models/tiny/..%5c..%5csecret.txt", nil, 400},
		{"GET", `/models/tiny/..\..\secret.txt`, nil, 400},
		{"GET", "/models/tiny/shard.bin%00", nil, 400},
		{"GET", "/models/tiny/shard.bin%00.json", nil, 400},
		{"GET", "/models/tiny/%252e%252e", nil, 400},
		{"GET", "/models/tiny/.hidden", nil, 400},
		{"GET", "/models/nomanifest/.hidden", nil, 400},
		{"GET", "/models/tiny/escape.bin", nil, 404}, // symlink out of the root
		{"GET", "/models/tiny/" + strings.Repeat("a", 201), nil, 400},
		{"GET", "/models/tiny/" + strings.Repeat("a", 2000), nil, 414},
		{"GET", "/models/tiny/sh%61rd.bin", nil, 400},
		{"GET", "/models//tiny/shard.bin", nil, 404},
		{"GET", "/models/tiny//shard.bin", nil, 404},
		{"GET", "/models/tiny/shard.bin", []string{"X-Big", big}, 431},
		{"GET", "/models/tiny/shard.bin", []string{"Range", "bytes=0-1," + strings.Repeat("2-3,", 1000)}, 416},
		{"POST", "/models/tiny/shard.bin", nil, 405},
		{"PUT", "/models/tiny/shard.bin", nil, 405},
		{"DELETE", "/models/tiny/shard.bin", nil, 405},
		{"PATCH", "/models/tiny/shard.bin", nil, 405},
		{"TRACE", "/models/tiny/shard.bin", nil, 405},
		{"PROPFIND", "/models/tiny/shard.bin", nil, 405},
		{"get", "/models/tiny/shard.bin", nil, 405},
		{"GET", "/secret.txt", nil, 404},
		{"GET", "/", nil, 404},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.target[:min(len(c.target), 60)], func(t *testing.T) {
			rec := do(h, c.method, c.target, c.hdr...)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, c.status, strings.TrimSpace(rec.Body.String()))
			}
			if strings.Contains(rec.Body.String(), "SECRET") {
				t.Fatal("served the file outside the models directory")
			}
			if c.status == 405 && rec.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("405 with Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
}

// TestSite: paths outside /models/ go to Site when set.
func TestSite(t *testing.T) {
	h, _ := fixture(t)
	h.Site = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "site") })
	if rec := do(h, "GET", "/index.html"); rec.Body.String() != "site" {
		t.Errorf("site: %q", rec.Body.String())
	}
	if rec := do(h, "GET", "/models/tiny/missing"); rec.Code != 404 {
		t.Errorf("missing model file went to the site: %d", rec.Code)
	}
}
