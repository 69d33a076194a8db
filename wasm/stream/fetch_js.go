//go:build js && wasm

package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/jsutil"
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
//
// In an engine whose body stream does not push back on the network (see coalescing), the body
// is fetched as a chain of segmentBytes ranges instead, so the browser holds at most one segment.
func Fetch(url string, opt FetchOptions) Opener {
	if opt.HeaderTimeout <= 0 {
		opt.HeaderTimeout = 30 * time.Second
	}
	var mu sync.Mutex
	var etag string
	var request requestFunc
	request = func(ctx context.Context, off, end int64, abort js.Value) (*bodyReader, error) {
		mu.Lock()
		tag := etag
		mu.Unlock()
		headers := jsHeaders.New()
		if end > off {
			headers.Call("set", "Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end-1, 10))
		} else if off > 0 {
			headers.Call("set", "Range", RangeHeader(off))
		}
		if off > 0 && tag != "" {
			headers.Call("set", "If-Range", tag)
		}
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
		status := resp.Get("status").Int()
		contentRange := jsString(rh.Call("get", "Content-Range"))
		if err := CheckResponse(status, contentRange, off, tag, got); err != nil {
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
		b := &bodyReader{reader: reader, abort: abort, ctx: ctx, off: off, request: request}
		// Only a 206's Content-Range total gives the file's length: a 200's Content-Length is
		// that of the encoded body, and a cross-origin page cannot read Content-Encoding to know.
		if status == 206 {
			b.size = FileSize(status, contentRange, -1, false)
			b.segmented = end > off
			b.ranges = true
		} else {
			b.ranges = strings.Contains(jsString(rh.Call("get", "Accept-Ranges")), "bytes")
		}
		return b, nil
	}
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		end := int64(-1)
		if coalescing.Load() {
			end = off + segmentBytes
		}
		b, err := request(ctx, off, end, jsAbortController.New())
		if err != nil {
			return nil, err
		}
		return withSize(b, b.size), nil
	}
}

// requestFunc opens url from byte off to end (exclusive; end ≤ off: to the end of the file)
// under the AbortController abort.
type requestFunc func(ctx context.Context, off, end int64, abort js.Value) (*bodyReader, error)

const (
	// coalescedChunk: a body chunk larger than this means the engine queued the body without
	// backpressure and handed over everything queued in one chunk. WebKit does (a 115 MB chunk
	// from a 130 MB loopback body while Go quantized); Chromium's peaked at 2 MiB and Firefox's at
	// 3 MiB on that test (either would only fetch in segments, at no cost but requests).
	coalescedChunk = 4 << 20
	// segmentBytes is the range each request asks for once coalescing is known: what such an
	// engine may then hold besides Go's own buffers, at one request (one round trip) per 4 MiB.
	segmentBytes = 4 << 20
)

// coalescing is set once a body arrived in a coalescedChunk: from then on every Fetch in this
// page asks for segmentBytes ranges. Feature detection from the chunks themselves: no API says
// whether a fetch body stream applies backpressure.
var coalescing atomic.Bool

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

	// Set by Fetch, not for a Cache API body: how to go on with ranges. off is the file offset of
	// the next byte Read returns; size the file's length (0: unknown); segmented says this body
	// is one bounded range, so its end is not the file's; ranges that the server serves ranges;
	// switching that the current chunk is the last one read from this body (see coalescing).
	ctx       context.Context
	request   requestFunc
	off, size int64
	segmented bool
	ranges    bool
	switching bool

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
	for b.pos >= b.length {
		if b.switching {
			if err := b.nextSegment(); err != nil {
				return 0, b.failLocked(err)
			}
			continue
		}
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
			if b.segmented && (b.size == 0 || b.off < b.size) {
				if err := b.nextSegment(); err != nil {
					return 0, b.failLocked(err)
				}
				continue
			}
			b.eof = true
			b.chunk, b.pos, b.length = js.Undefined(), 0, 0
			b.mu.Unlock()
			return 0, io.EOF
		}
		b.chunk = res.Get("value")
		b.pos, b.length = 0, b.chunk.Get("byteLength").Int()
		if b.length > coalescedChunk && b.request != nil && b.ranges && !b.segmented {
			coalescing.Store(true)
			b.switching = true // after this chunk
		}
	}
	src := b.chunk
	if b.pos > 0 {
		src = b.chunk.Call("subarray", b.pos)
	}
	n := jsutil.CopyBytesToGo(p, src)
	b.pos += n
	b.off += int64(n)
	if b.pos >= b.length {
		b.chunk, b.pos, b.length = js.Undefined(), 0, 0 // let the JS garbage collector have it
	}
	b.mu.Unlock()
	return n, nil
}

// failLocked ends a Read whose next segment could not be opened; io.EOF ends the body.
func (b *bodyReader) failLocked(err error) error {
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	b.mu.Unlock()
	return err
}

// nextSegment drops the current body and opens the range of segmentBytes at b.off. Called with
// b.mu held; returns with it held. With the file's size unknown, a 416 there is its end: io.EOF.
func (b *bodyReader) nextSegment() error {
	old, oldAbort, off := b.reader, b.abort, b.off
	abort := jsAbortController.New()
	b.abort = abort // so Close aborts the request under way
	b.switching = false
	b.chunk, b.pos, b.length = js.Undefined(), 0, 0
	b.mu.Unlock()
	if p, err := jsutil.Call(old, "cancel"); err == nil {
		p.Call("catch", jsIgnore)
	}
	oldAbort.Call("abort")
	next, err := b.request(b.ctx, off, off+segmentBytes, abort)
	b.mu.Lock()
	if b.closed {
		if next != nil {
			if p, err := jsutil.Call(next.reader, "cancel"); err == nil {
				p.Call("catch", jsIgnore)
			}
		}
		abort.Call("abort")
		return errClosed
	}
	if err != nil {
		if b.size == 0 && errors.Is(err, ErrSize) {
			return io.EOF
		}
		return err
	}
	b.reader, b.segmented = next.reader, next.segmented
	if next.size > 0 {
		b.size = next.size
	}
	return nil
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
	reader, abort := b.reader, b.abort // nextSegment may swap them once we unlock
	b.mu.Unlock()
	// cancel() returns a promise; its outcome does not matter (the stream may have errored).
	if p, err := jsutil.Call(reader, "cancel"); err == nil {
		p.Call("catch", jsIgnore)
	}
	abort.Call("abort")
	return nil
}
