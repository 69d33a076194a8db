//go:build !(js && wasm)

package main

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// siteHandler serves the demo site's directory. The wasm bundle (tens of MB, compressing to
// about a quarter) goes out as application/wasm, gzip-encoded when the request accepts gzip,
// with Vary: Accept-Encoding either way; the compressed bytes are cached per file and
// modification time. Everything else is http.FileServer. (No brotli: go.sum has no Go
// brotli encoder and the server adds no dependency for one.)
type siteHandler struct {
	dir   string
	files http.Handler

	mu sync.Mutex
	gz map[string]gzEntry
}

type gzEntry struct {
	mod  time.Time
	size int64
	body []byte
}

func newSiteHandler(dir string) *siteHandler {
	return &siteHandler{dir: dir, files: http.FileServer(http.Dir(dir)), gz: map[string]gzEntry{}}
}

func (s *siteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, ".wasm") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		s.files.ServeHTTP(w, r)
		return
	}
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", "application/wasm")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		s.files.ServeHTTP(w, r)
		return
	}
	name := path.Clean("/" + r.URL.Path)
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	st, err := os.Stat(p)
	if err != nil || st.IsDir() {
		s.files.ServeHTTP(w, r) // its 404 or redirect
		return
	}
	body, err := s.compressed(p, st)
	if err != nil {
		s.files.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	// An ETag of the encoded bytes, so that a Range or If-None-Match request names them.
	w.Header().Set("ETag", `"gz-`+strconv.FormatInt(st.ModTime().UnixNano(), 36)+`-`+strconv.FormatInt(st.Size(), 36)+`"`)
	http.ServeContent(w, r, name, st.ModTime(), bytes.NewReader(body))
}

func (s *siteHandler) compressed(p string, st os.FileInfo) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.gz[p]; ok && e.mod.Equal(st.ModTime()) && e.size == st.Size() {
		return e.body, nil
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestSpeed+4)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	s.gz[p] = gzEntry{mod: st.ModTime(), size: st.Size(), body: b.Bytes()}
	return b.Bytes(), nil
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip: "gzip" or "*" with a
// q-value above zero (an explicit gzip entry wins over "*").
func acceptsGzip(header string) bool {
	star, gz := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		fields := strings.Split(part, ";")
		coding := strings.ToLower(strings.TrimSpace(fields[0]))
		q := 1.0
		for _, f := range fields[1:] {
			f = strings.TrimSpace(f)
			if v, ok := strings.CutPrefix(strings.ToLower(f), "q="); ok {
				if x, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = x
				} else {
					q = 0
				}
			}
		}
		switch coding {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}
