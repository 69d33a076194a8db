//go:build js && wasm

package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/internal/jsutil"
)

// Looked up once: every open and every chunk would otherwise walk the global object.
var (
	jsHeaders         = js.Global().Get("Headers")
	jsAbortController = js.Global().Get("AbortController")
	// jsIgnore swallows the outcome of promises nobody waits for; one function for all of them.
	jsIgnore = js.FuncOf(func(js.Value, []js.Value) any { return nil })
)

// FetchOptions tune Fetch.
type FetchOptions struct {
	// HeaderTimeout bounds the wait for the response headers; 0 means 30 s. The body's own stalls
	// are the loader's StallTimeout.
	HeaderTimeout time.Duration
}

// Fetch returns an Opener that streams url with fetch: the response body's ReadableStream is read
// chunk by chunk and copied into Go in one bulk copy per Read. A resumed open sends
// "Range: bytes=off-" with If-Range (the first response's ETag), and fails for good if the
// server answers with anything but that range of the same file. The browser's HTTP cache is
// bypassed (cache: "no-store"): ranges over a half-cached entry are where browsers differ most.
func Fetch(url string, opt FetchOptions) Opener {
	if opt.HeaderTimeout <= 0 {
		opt.HeaderTimeout = 30 * time.Second
	}
	var mu sync.Mutex
	var etag string
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		mu.Lock()
		tag := etag
		mu.Unlock()
		headers := jsHeaders.New()
		if off > 0 {
			headers.Call("set", "Range", RangeHeader(off))
			if tag != "" {
				headers.Call("set", "If-Range", tag)
			}
		}
		abort := jsAbortController.New()
		stop := context.AfterFunc(ctx, func() { abort.Call("abort") })
		p, err := jsutil.Call(js.Global(), "fetch", url, map[string]any{
			"headers": headers, "signal": abort.Get("signal"), "cache": "no-store",
		})
		var resp js.Value
		if err == nil {
			resp, err = jsutil.Await(p, opt.HeaderTimeout)
		}
		stop()
		if err != nil {
			abort.Call("abort")
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("fetch %s: %w: %w", url, errs.ErrNetwork, err) // worth a retry
		}
		rh := resp.Get("headers")
		got := jsString(rh.Call("get", "ETag"))
		if err := CheckResponse(resp.Get("status").Int(), jsString(rh.Call("get", "Content-Range")), off, tag, got); err != nil {
			abort.Call("abort")
			return nil, fmt.Errorf("fetch %s: %w", url, err)
		}
		if off == 0 {
			mu.Lock()
			etag = got
			mu.Unlock()
		}
		body := resp.Get("body")
		if !body.Truthy() {
			return nil, Permanent(fmt.Errorf("fetch %s: the response has no body stream", url))
		}
		reader, err := jsutil.Call(body, "getReader")
		if err != nil {
			return nil, Permanent(fmt.Errorf("fetch %s: %w", url, err))
		}
		// Only a 206's Content-Range total gives the file's length: a 200's Content-Length is
		// that of the encoded body, and a cross-origin page cannot read Content-Encoding to know.
		size := int64(0)
		if status := resp.Get("status").Int(); status == 206 {
			size = FileSize(status, jsString(rh.Call("get", "Content-Range")), -1, false)
		}
		return withSize(&bodyReader{reader: reader, abort: abort}, size), nil
	}
}

func jsString(v js.Value) string {
	if v.IsNull() || v.IsUndefined() {
		return ""
	}
	return v.String()
}

var errClosed = errors.New("stream: fetch body closed")

// bodyReader adapts a ReadableStreamDefaultReader to io.ReadCloser. It holds at most one chunk
// of the stream (as the browser delivered it, typically 64 KiB) and copies from it in bulk.
type bodyReader struct {
	reader, abort js.Value

	mu     sync.Mutex
	chunk  js.Value // Uint8Array being consumed; undefined when empty
	pos    int      // bytes of chunk already copied
	length int
	closed bool
	eof    bool
}

var _ io.ReadCloser = (*bodyReader)(nil)
var _ HeldReporter = (*bodyReader)(nil)

func (b *bodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errClosed
	}
	if b.eof {
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.pos >= b.length {
		b.mu.Unlock()
		// Await blocks this goroutine only; Close (from the stall timer or a cancel) cancels the
		// reader, which settles this read.
		res, err := jsutil.Await(b.reader.Call("read"), 0)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return 0, errClosed
		}
		if err != nil {
			b.mu.Unlock()
			return 0, fmt.Errorf("reading the response body: %w", err)
		}
		if res.Get("done").Bool() {
			b.eof = true
			b.chunk, b.pos, b.length = js.Undefined(), 0, 0
			b.mu.Unlock()
			return 0, io.EOF
		}
		b.chunk = res.Get("value")
		b.pos, b.length = 0, b.chunk.Get("byteLength").Int()
	}
	src := b.chunk
	if b.pos > 0 {
		src = b.chunk.Call("subarray", b.pos)
	}
	n := jsutil.CopyBytesToGo(p, src)
	b.pos += n
	if b.pos >= b.length {
		b.chunk, b.pos, b.length = js.Undefined(), 0, 0 // let the JS garbage collector have it
	}
	b.mu.Unlock()
	return n, nil
}

// HeldBytes is the size of the JS chunk being consumed.
func (b *bodyReader) HeldBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.length)
}

// Close cancels the stream and aborts the request; a pending Read returns.
func (b *bodyReader) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.chunk, b.length = js.Undefined(), 0
	b.mu.Unlock()
	// cancel() returns a promise; its outcome does not matter (the stream may have errored).
	if p, err := jsutil.Call(b.reader, "cancel"); err == nil {
		p.Call("catch", jsIgnore)
	}
	b.abort.Call("abort")
	return nil
}
