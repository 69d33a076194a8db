package stream

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Cache keeps quantized tensors between page loads, so a reload skips both the download and the
// quantization. An entry is one file's tensors in nibble's own format (see cachefile.go); the
// loader streams it in and out and checks it on every read, so a Cache only moves bytes.
//
// In the browser [BrowserCache] stores entries in the Cache API; [MemCache] keeps them in memory
// (tests, and native programs that load a model more than once).
type Cache interface {
	// Get opens the entry stored under key, or returns an error wrapping ErrCacheMiss.
	Get(key string) (io.ReadCloser, error)
	// Put stores what r yields under key, replacing any entry there. It must store the entry only
	// if r reads to io.EOF: when r fails (the load failed or was cancelled) nothing is stored
	// and the old entry, if any, may be gone. Put reads r as it goes; it must not need the whole
	// entry in memory at once where the storage can stream.
	Put(key string, r io.Reader) error
	// Delete removes the entry under key; deleting a missing entry is not an error.
	Delete(key string) error
}

// ErrCacheMiss: the cache has no entry under the key.
var ErrCacheMiss = errors.New("stream: not in the cache")

// CacheKey is the key a file's tensors are cached under: a hash of the file's identity (its
// SHA256, else its Version and Size), the quantization options and tag (Options.CacheTag: bump
// it when the plan or the reader changes in a way the stored formats would not show). "" means
// the file cannot be cached: with neither a hash nor a version the loader could not tell a
// changed file from the one it cached.
//
// The plan is not in the key: every entry records each tensor's format, and a reader that finds
// a format its plan would not choose today treats the entry as stale (and the load overwrites
// it).
func CacheKey(src Source, opt Options) string {
	id := ""
	switch {
	case src.SHA256 != "":
		id = "sha256:" + src.SHA256
	case src.Version != "":
		id = fmt.Sprintf("version:%q size:%d", src.Version, src.Size)
	default:
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "nibble stream cache v%d\n%s\nquant %+v\ntag %q\n", cacheVersion, id, opt.Quant, opt.CacheTag)
	return "nbq1-" + hex.EncodeToString(h.Sum(nil))[:40]
}

// MemCache is a Cache in memory. The zero value is ready; it is safe for concurrent use.
type MemCache struct {
	mu      sync.Mutex
	entries map[string][]byte
	// Gets, Puts count calls (tests check that a reload read the cache).
	Gets, Puts int
}

var _ Cache = (*MemCache)(nil)

func (c *MemCache) Get(key string) (io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Gets++
	b, ok := c.entries[key]
	if !ok {
		return nil, fmt.Errorf("%q: %w", key, ErrCacheMiss)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (c *MemCache) Put(key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Puts++
	if err != nil {
		delete(c.entries, key)
		return err
	}
	if c.entries == nil {
		c.entries = map[string][]byte{}
	}
	c.entries[key] = b
	return nil
}

func (c *MemCache) Delete(key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
	return nil
}

// Entry returns the bytes stored under key (nil if none); tests damage entries through it.
func (c *MemCache) Entry(key string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[key]
}

// SetEntry stores b under key as it is.
func (c *MemCache) SetEntry(key string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string][]byte{}
	}
	c.entries[key] = b
}
