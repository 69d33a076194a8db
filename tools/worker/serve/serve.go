// Package serve is the model-serving HTTP handler: all of the Worker's HTTP logic, run on
// Cloudflare Workers (through syumai/workers' workers.Serve, with an R2 store) and natively
// (through net/http, with a directory store) alike.
//
// Routes:
//
//	GET, HEAD /models/{model}/{file}        the file; one byte range at most (206, or 416)
//	GET, HEAD /models/{model}/manifest.json the stored manifest.json, else one generated from List
//	OPTIONS   /models/...                   CORS preflight
//
// Anything else under /models/ is a 4xx; other paths go to Handler.Site, or 404.
// The handler never names a store key it has not checked with store.Key.
package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/format"
)

const (
	// DefaultMaxHeaderBytes bounds the request headers (names and values) the handler accepts.
	DefaultMaxHeaderBytes = 16 << 10
	// maxPath bounds the request path: two names of store.MaxSegment and the route.
	maxPath = 2*store.MaxSegment + 64

	// ManifestName is the file name under which a model's manifest is served.
	ManifestName = format.ManifestName

	// ImmutableCacheControl is sent for content-addressed files (see ContentAddressed).
	ImmutableCacheControl = "public, max-age=31536000, immutable"
	// RevalidateCacheControl is sent for every other file: caches keep it, but ask (cheaply,
	// with If-None-Match → 304) before each use, since a name like model.safetensors can be
	// overwritten in place.
	RevalidateCacheControl = "public, no-cache"

	allowMethods = "GET, HEAD, OPTIONS"
)

// Handler serves model files from Store. The zero value is not usable: set Store.
type Handler struct {
	Store store.Store
	// Site, if set, serves every path outside /models/ (the demo site under `make serve`).
	Site http.Handler
	// MaxHeaderBytes bounds the request headers; 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logf reports storage failures (never client mistakes); nil means log.Printf.
	Logf func(format string, args ...any)
}

// New returns a Handler for s.
func New(s store.Store) *Handler { return &Handler{Store: s} }

// ServeHTTP implements http.Handler. It never wraps w: on js/wasm the R2 body reaches the
// Response only when io.Copy sees syumai/workers' own ResponseWriter.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// EscapedPath keeps %2F, %2e and friends as written, so they fail ValidSegment below
	// instead of being decoded into separators or dots.
	p := r.URL.EscapedPath()
	if p != "/models" && !strings.HasPrefix(p, "/models/") {
		if h.Site != nil {
			h.Site.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag, Accept-Ranges, Last-Modified")
	hdr.Set("X-Content-Type-Options", "nosniff")

	if len(p) > maxPath {
		http.Error(w, "path too long", http.StatusRequestURITooLong)
		return
	}
	if max := h.maxHeaderBytes(); headerBytes(r.Header) > max {
		http.Error(w, "request headers larger than "+strconv.Itoa(max)+" bytes", http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		hdr.Set("Allow", allowMethods)
		http.Error(w, "method "+strconv.Quote(r.Method)+" not allowed: use GET, HEAD or OPTIONS", http.StatusMethodNotAllowed)
		return
	}
	segs := strings.Split(strings.TrimPrefix(p, "/models/"), "/")
	if p == "/models" || len(segs) != 2 || segs[0] == "" || segs[1] == "" {
		// An empty name ("/models/m/") is a path of another shape, not a bad name: 404, as the
		// README says.
		http.Error(w, "not found: paths are /models/{model}/{file}", http.StatusNotFound)
		return
	}
	model, file := segs[0], segs[1]
	key, err := store.Key(model, file)
	if err != nil {
		http.Error(w, "bad model or file name: names are [A-Za-z0-9._-] and do not start with a dot", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodOptions {
		hdr.Set("Access-Control-Allow-Methods", allowMethods)
		hdr.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Range, If-Modified-Since")
		hdr.Set("Access-Control-Max-Age", "86400")
		hdr.Set("Allow", allowMethods)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if file == ManifestName {
		h.serveManifest(w, r, key, model)
		return
	}
	h.serveStored(w, r, key, nil)
}

// serveStored serves one stored object: one Head (unless the caller has just done it), then,
// for a GET that wants bytes, one Get conditional on the entity tag the Head saw.
func (h *Handler) serveStored(w http.ResponseWriter, r *http.Request, key string, known *store.Info) {
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		var info store.Info
		var err error
		if known != nil && attempt == 0 {
			info = *known
		} else if info, err = h.Store.Head(ctx, key); err != nil {
			h.storeError(w, key, err)
			return
		}
		err = respond(w, r, info, cacheControl(key), "", func(rng *store.Range) (io.ReadCloser, error) {
			obj, err := h.Store.Get(ctx, key, rng, info.ETag)
			if err != nil {
				return nil, err
			}
			return obj.Body, nil
		})
		if errors.Is(err, store.ErrChanged) && attempt == 0 {
			continue // replaced between Head and Get: once more with the new version
		}
		if err != nil {
			h.storeError(w, key, err)
		}
		return
	}
}

// Manifest is the JSON a model's manifest.json holds; the type lives in wasm/format, shared
// with the loader that checks what it streams against it.
type Manifest = format.Manifest

// ManifestFile is one file of a Manifest.
type ManifestFile = format.ManifestFile

// BuildManifest lists model in s. On a directory store it hashes every file (cached by size
// and mtime); on R2 it reads the sha256 custom metadata.
func BuildManifest(ctx context.Context, s store.Store, model string) (*Manifest, error) {
	infos, err := s.List(ctx, model)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Model: model, Files: []ManifestFile{}}
	for _, in := range infos {
		_, file, err := store.SplitKey(in.Key)
		if err != nil || file == ManifestName {
			continue
		}
		m.Files = append(m.Files, ManifestFile{Name: file, Size: in.Size, SHA256: in.SHA256})
	}
	return m, nil
}

// serveManifest serves a stored manifest.json as any other file (on R2 that is the one the
// deployer uploaded; see README), and otherwise one generated by BuildManifest.
func (h *Handler) serveManifest(w http.ResponseWriter, r *http.Request, key, model string) {
	ctx := r.Context()
	if info, err := h.Store.Head(ctx, key); err == nil {
		h.serveStored(w, r, key, &info)
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		h.storeError(w, key, err)
		return
	}
	m, err := BuildManifest(ctx, h.Store, model)
	if err != nil {
		h.storeError(w, model+"/", err)
		return
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		h.storeError(w, key, err)
		return
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	info := store.Info{Key: key, Size: int64(len(body)), ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	err = respond(w, r, info, RevalidateCacheControl, "application/json", func(rng *store.Range) (io.ReadCloser, error) {
		b := body
		if rng != nil {
			b = b[rng.Offset : rng.Offset+rng.Length]
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		h.storeError(w, key, err)
	}
}

// respond writes the response for an object described by info, calling open for the bytes
// only when a body is due. It returns open's error before anything is written, so the
// caller can still answer with an error status.
func respond(w http.ResponseWriter, r *http.Request, info store.Info, cache, ctype string, open func(*store.Range) (io.ReadCloser, error)) error {
	hdr := w.Header()
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("ETag", info.ETag)
	hdr.Set("Cache-Control", cache)
	if !info.Modified.IsZero() {
		hdr.Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	}
	if ctype == "" {
		ctype = contentType(info.Key)
	}
	hdr.Set("Content-Type", ctype)

	if notModified(r, info) {
		hdr.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		endWithoutBody(w)
		return nil
	}

	var rng *store.Range
	// Range applies to GET only (RFC 9110 §14.2); HEAD describes the whole object.
	if ranges := r.Header.Values("Range"); r.Method == http.MethodGet && len(ranges) > 0 && ifRangeHolds(r, info) {
		var err error
		if len(ranges) > 1 {
			err = errBadRange // several Range fields, or one with commas split by the Worker
		} else {
			rng, err = parseRange(ranges[0], info.Size)
		}
		if err != nil {
			hdr.Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
			hdr.Del("ETag")
			hdr.Del("Cache-Control")
			http.Error(w, "range not satisfiable: send one range bytes=first-last, first- or -suffix inside "+strconv.FormatInt(info.Size, 10)+" bytes", http.StatusRequestedRangeNotSatisfiable)
			return nil
		}
	}

	if r.Method == http.MethodHead {
		hdr.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		endWithoutBody(w)
		return nil
	}
	body, err := open(rng)
	if err != nil {
		return err
	}
	defer body.Close()
	status, n := http.StatusOK, info.Size
	if rng != nil {
		status, n = http.StatusPartialContent, rng.Length
		hdr.Set("Content-Range", "bytes "+strconv.FormatInt(rng.Offset, 10)+"-"+strconv.FormatInt(rng.Offset+rng.Length-1, 10)+"/"+strconv.FormatInt(info.Size, 10))
	}
	hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	io.Copy(w, body) // an error here is the client going away; the status is already sent
	return nil
}

// notModified evaluates If-None-Match, or If-Modified-Since when there is no If-None-Match
// (RFC 9110 §13.2.2).
func notModified(r *http.Request, info store.Info) bool {
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 {
		return etagMatches(strings.Join(inm, ","), info.ETag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || info.Modified.IsZero() {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !info.Modified.Truncate(time.Second).After(t)
}

// ifRangeHolds: a Range is honoured only if If-Range is absent or names the current entity
// tag exactly (strong comparison). A date or a weak tag never matches, and the whole object
// is sent: a resuming loader then learns the file changed under it.
func ifRangeHolds(r *http.Request, info store.Info) bool {
	v := r.Header.Values("If-Range")
	if len(v) == 0 {
		return true
	}
	return len(v) == 1 && strings.TrimSpace(v[0]) == info.ETag && !strings.HasPrefix(info.ETag, "W/")
}

// ContentAddressed reports whether a file name carries its content's hash: a run of exactly
// 64 lowercase hex digits (a sha256), as in "model-<sha256>.safetensors". Such a file never
// changes under its name, so it is served immutable for a year.
func ContentAddressed(file string) bool {
	run := 0
	for i := 0; i <= len(file); i++ {
		if i < len(file) && ('0' <= file[i] && file[i] <= '9' || 'a' <= file[i] && file[i] <= 'f') {
			run++
			continue
		}
		if run == 64 {
			return true
		}
		run = 0
	}
	return false
}

func cacheControl(key string) string {
	if _, file, err := store.SplitKey(key); err == nil && ContentAddressed(file) {
		return ImmutableCacheControl
	}
	return RevalidateCacheControl
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	case strings.HasSuffix(key, ".txt"):
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

func (h *Handler) maxHeaderBytes() int {
	if h.MaxHeaderBytes > 0 {
		return h.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func headerBytes(hdr http.Header) int {
	n := 0
	for k, vs := range hdr {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}

func (h *Handler) storeError(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	logf := h.Logf
	if logf == nil {
		logf = log.Printf
	}
	logf("serve: %s: %v", key, err)
	if errors.Is(err, store.ErrChanged) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the file is being replaced; retry", http.StatusServiceUnavailable)
		return
	}
	http.Error(w, "storage error", http.StatusBadGateway)
}
