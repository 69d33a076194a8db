//go:build js && wasm

package stream

import (
	"errors"
	"fmt"
	"io"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// Looked up once, like fetch's.
var (
	jsReadableStream = js.Global().Get("ReadableStream")
	jsResponse       = js.Global().Get("Response")
)

// cacheChunk is the size of the pieces Put hands the browser: big enough that the per-chunk
// crossing into JS is noise, small enough that the stream's queue holds little.
const cacheChunk = 1 << 20

// BrowserCache returns a Cache kept in the browser's Cache API under the cache name (one
// caches.open(name) for all entries; an entry is a Response under the URL /nibble-cache/<key>).
//
// Why the Cache API and not the Origin Private File System: it is there on the main thread and
// in workers alike (OPFS's fast createSyncAccessHandle needs a dedicated worker; its
// createWritable is async and per write), cache.put consumes a streamed Response body and stores
// it only if the stream ends cleanly (so a failed load leaves nothing behind, as Cache.Put
// requires), and a stored Response reads back as a ReadableStream, the same adapter Fetch uses.
// Both share the origin's storage quota; entries can be seen and cleared in DevTools (Application
// → Cache storage) or with caches.delete(name). Needs a secure context (https or localhost).
func BrowserCache(name string) (Cache, error) {
	caches := js.Global().Get("caches")
	if !caches.Truthy() {
		return nil, errors.New("stream: the Cache API is not available (it needs a secure context: https or localhost)")
	}
	p, err := jsutil.Call(caches, "open", name)
	if err != nil {
		return nil, fmt.Errorf("stream: caches.open(%q): %w", name, err)
	}
	c, err := jsutil.Await(p, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("stream: caches.open(%q): %w", name, err)
	}
	return &browserCache{cache: c}, nil
}

// DeleteBrowserCache removes the whole named cache (every entry BrowserCache(name) stored).
func DeleteBrowserCache(name string) error {
	caches := js.Global().Get("caches")
	if !caches.Truthy() {
		return nil
	}
	p, err := jsutil.Call(caches, "delete", name)
	if err == nil {
		_, err = jsutil.Await(p, 30*time.Second)
	}
	return err
}

type browserCache struct{ cache js.Value }

var _ Cache = (*browserCache)(nil)

func cacheURL(key string) string { return "/nibble-cache/" + key }

// Get streams the stored Response's body.
func (c *browserCache) Get(key string) (io.ReadCloser, error) {
	p, err := jsutil.Call(c.cache, "match", cacheURL(key))
	if err != nil {
		return nil, fmt.Errorf("stream: cache match: %w", err)
	}
	resp, err := jsutil.Await(p, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("stream: cache match: %w", err)
	}
	if !resp.Truthy() {
		return nil, fmt.Errorf("%q: %w", key, ErrCacheMiss)
	}
	body := resp.Get("body")
	if !body.Truthy() {
		return nil, fmt.Errorf("stream: cache entry %q has no body", key)
	}
	reader, err := jsutil.Call(body, "getReader")
	if err != nil {
		return nil, fmt.Errorf("stream: cache entry %q: %w", key, err)
	}
	return &bodyReader{reader: reader, abort: jsAbortController.New()}, nil
}

// Put hands cache.put a Response whose body is a ReadableStream pulling from r, a chunk at a
// time: the entry is never whole in memory, on either side. If r fails, the stream errors and
// cache.put stores nothing.
func (c *browserCache) Put(key string, r io.Reader) error {
	var resolve js.Value
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve = args[0]
		return nil
	})
	buf := make([]byte, cacheChunk)
	done := false
	// pull must not block (it runs on the JS event loop): it returns a promise that a goroutine
	// settles once it has read the next chunk.
	pull := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ctrl := args[0]
		p := jsutil.PromiseClass.New(executor)
		res := resolve
		go func() {
			defer res.Invoke()
			if done {
				return
			}
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				ctrl.Call("enqueue", jsutil.BytesToJS(buf[:n]))
			}
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				done = true
				ctrl.Call("close")
			case err != nil:
				done = true
				ctrl.Call("error", jsutil.NewError(err.Error()))
			}
		}()
		return p
	})
	stream := jsReadableStream.New(map[string]any{"pull": pull}, map[string]any{"highWaterMark": 1})
	resp := jsResponse.New(stream, map[string]any{
		"headers": map[string]any{"Content-Type": "application/octet-stream"},
	})
	p, err := jsutil.Call(c.cache, "put", cacheURL(key), resp)
	if err == nil {
		_, err = jsutil.Await(p, 0)
	}
	if err != nil {
		// The stream may still be pulled once more: keep its functions (a few bytes) alive.
		return fmt.Errorf("stream: cache put: %w", err)
	}
	pull.Release()
	executor.Release()
	return nil
}

func (c *browserCache) Delete(key string) error {
	p, err := jsutil.Call(c.cache, "delete", cacheURL(key))
	if err == nil {
		_, err = jsutil.Await(p, 30*time.Second)
	}
	if err != nil {
		return fmt.Errorf("stream: cache delete: %w", err)
	}
	return nil
}
