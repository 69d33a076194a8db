// Package store is where the model-serving Worker reads model files from: a directory on disk
// (native, for local development and `make serve`) or an R2 bucket binding (in a Cloudflare
// Worker, js/wasm only).
//
// A key is always "model/file": exactly two segments, each drawn from a small safe alphabet
// (see ValidSegment). Every implementation checks keys itself, so a caller that forgets to
// cannot reach outside the directory or the bucket prefix. The package knows nothing of HTTP:
// ranges, conditions and status codes are decided in tools/worker/serve.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var (
	// ErrNotFound: no object with that key (also for keys that are not valid keys).
	ErrNotFound = errors.New("store: no such object")
	// ErrChanged: the object no longer has the entity tag the caller asked for; it was replaced
	// between the caller's Head and Get. Look it up again.
	ErrChanged = errors.New("store: object changed since it was looked up")
)

// Info describes one stored object.
type Info struct {
	Key      string    // "model/file", relative to the store's root or prefix
	Size     int64     // bytes
	ETag     string    // strong entity tag, quoted as in HTTP: "\"…\""
	SHA256   string    // lowercase hex of the whole object; "" where the store has no cheap way to know it
	Modified time.Time // last write or upload; zero if unknown
}

// Range is a byte range inside an object, already checked against its size by the caller:
// 0 <= Offset, 0 < Length, Offset+Length <= Size.
type Range struct {
	Offset, Length int64
}

// Object is an open object body: exactly Range.Length bytes, or Size bytes without a range.
// Body must be closed. On js/wasm the R2 body can hand its ReadableStream to the response
// without a copy through Go when copied with io.Copy to the Worker's http.ResponseWriter.
type Object struct {
	Info
	Body io.ReadCloser
}

// Store is the one storage interface the handler uses.
type Store interface {
	// Head returns what is known about key without reading it.
	Head(ctx context.Context, key string) (Info, error)
	// Get opens key, or only r of it when r is not nil. When etag is not empty and the object's
	// entity tag differs, Get fails with ErrChanged instead of returning other bytes.
	Get(ctx context.Context, key string, r *Range, etag string) (*Object, error)
	// List returns the objects directly inside one model ("model/"), sorted by key, each with
	// its SHA256 where the store knows it.
	List(ctx context.Context, model string) ([]Info, error)
}

// MaxSegment is the longest model or file name accepted.
const MaxSegment = 200

// ValidSegment reports whether s may be a model or file name: 1 to MaxSegment bytes of
// [A-Za-z0-9._-], not starting with a dot. The alphabet is deliberately small: it excludes
// "/", "\", "%", NUL, spaces and every non-ASCII byte, and with the leading-dot rule also
// "." and "..", so no spelling of a traversal survives it, encoded or not.
func ValidSegment(s string) bool {
	if len(s) == 0 || len(s) > MaxSegment || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Key joins a model and a file name into a key, checking both.
func Key(model, file string) (string, error) {
	if !ValidSegment(model) || !ValidSegment(file) {
		return "", fmt.Errorf("store: invalid model %q or file %q: names are [A-Za-z0-9._-], not starting with a dot", model, file)
	}
	return model + "/" + file, nil
}

// SplitKey checks a key and returns its two segments.
func SplitKey(key string) (model, file string, err error) {
	model, file, ok := strings.Cut(key, "/")
	if !ok || !ValidSegment(model) || !ValidSegment(file) {
		return "", "", fmt.Errorf("store: invalid key %q: want model/file with names of [A-Za-z0-9._-]: %w", key, ErrNotFound)
	}
	return model, file, nil
}
