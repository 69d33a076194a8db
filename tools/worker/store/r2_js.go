//go:build js && wasm

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// R2 serves model files from an R2 bucket binding, under a key prefix: key "m/f" is the
// object prefix+"m/f". Nothing outside the prefix can be named: keys are checked by SplitKey.
//
// syumai/workers' r2.Bucket.Get has no range option, so the binding's get, head and list
// are called here directly (https://developers.cloudflare.com/r2/api/workers/workers-api-reference/).
type R2 struct {
	bucket js.Value
	prefix string
}

var _ Store = (*R2)(nil)

// NewR2 wraps an R2 bucket binding. prefix is "" or a path ending in "/" ("models/").
func NewR2(bucket js.Value, prefix string) (*R2, error) {
	if bucket.Type() != js.TypeObject || bucket.Get("get").Type() != js.TypeFunction {
		return nil, errors.New("store: the R2 binding is missing: add an r2_buckets entry (binding MODELS) to wrangler.jsonc")
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return &R2{bucket: bucket, prefix: prefix}, nil
}

// Head implements Store: one R2 head operation.
func (b *R2) Head(ctx context.Context, key string) (Info, error) {
	if _, _, err := SplitKey(key); err != nil {
		return Info{}, err
	}
	v, err := b.call(ctx, "head", b.prefix+key)
	if err != nil {
		return Info{}, err
	}
	if v.IsNull() || v.IsUndefined() {
		return Info{}, ErrNotFound
	}
	return b.info(v), nil
}

// Get implements Store: one R2 get operation, with the range and an etagMatches condition,
// so the bytes always belong to the version the caller looked up.
func (b *R2) Get(ctx context.Context, key string, r *Range, etag string) (*Object, error) {
	if _, _, err := SplitKey(key); err != nil {
		return nil, err
	}
	opts := jsutil.ObjectClass.New()
	if r != nil {
		if r.Offset < 0 || r.Length <= 0 {
			return nil, fmt.Errorf("store: invalid range %d+%d of %s", r.Offset, r.Length, key)
		}
		rng := jsutil.ObjectClass.New()
		// Offsets are JS numbers: exact up to 2^53 bytes, far beyond R2's object size limit.
		rng.Set("offset", float64(r.Offset))
		rng.Set("length", float64(r.Length))
		opts.Set("range", rng)
	}
	if etag != "" {
		cond := jsutil.ObjectClass.New()
		cond.Set("etagMatches", strings.Trim(etag, `"`)) // R2 compares the bare etag
		opts.Set("onlyIf", cond)
	}
	v, err := b.call(ctx, "get", b.prefix+key, opts)
	if err != nil {
		return nil, err
	}
	if v.IsNull() || v.IsUndefined() {
		return nil, ErrNotFound
	}
	body := v.Get("body")
	if body.IsUndefined() || body.IsNull() {
		// R2 answers a failed onlyIf with the object's metadata and no body.
		return nil, ErrChanged
	}
	info := b.info(v)
	n := info.Size
	if r != nil {
		n = r.Length
	}
	return &Object{Info: info, Body: &streamBody{stream: body, size: n}}, nil
}

// List implements Store, with as many list operations as pages of 1000 objects.
func (b *R2) List(ctx context.Context, model string) ([]Info, error) {
	if !ValidSegment(model) {
		return nil, ErrNotFound
	}
	var out []Info
	cursor := ""
	for {
		opts := jsutil.ObjectClass.New()
		opts.Set("prefix", b.prefix+model+"/")
		opts.Set("delimiter", "/")
		// customMetadata carries the sha256 (see README); R2 leaves it out unless asked.
		opts.Set("include", js.ValueOf([]any{"customMetadata"}))
		if cursor != "" {
			opts.Set("cursor", cursor)
		}
		v, err := b.call(ctx, "list", opts)
		if err != nil {
			return nil, err
		}
		objs := v.Get("objects")
		for i, n := 0, objs.Length(); i < n; i++ {
			info := b.info(objs.Index(i))
			if _, _, err := SplitKey(info.Key); err != nil {
				continue // a name the handler could never serve
			}
			out = append(out, info)
		}
		if !v.Get("truncated").Truthy() {
			break
		}
		cursor = v.Get("cursor").String()
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// info reads an R2Object. Its sha256 comes from the custom metadata "sha256" set at upload
// (R2's own checksums hold only what the uploader sent, and only on head/get).
func (b *R2) info(v js.Value) Info {
	info := Info{
		Key:  strings.TrimPrefix(v.Get("key").String(), b.prefix),
		Size: int64(v.Get("size").Float()),
		ETag: v.Get("httpEtag").String(),
	}
	if up := v.Get("uploaded"); up.Type() == js.TypeObject {
		info.Modified = time.UnixMilli(int64(up.Call("getTime").Float()))
	}
	if md := v.Get("customMetadata"); md.Type() == js.TypeObject {
		if s := md.Get("sha256"); s.Type() == js.TypeString && isSHA256Hex(s.String()) {
			info.SHA256 = s.String()
		}
	}
	return info
}

// call invokes a bucket method and awaits its promise. A synchronous throw (a bad argument)
// and a rejection both come back as errors naming the method. The caller is a goroutine, never
// a js.FuncOf callback, so awaiting does not block the JS event loop.
func (b *R2) call(ctx context.Context, method string, args ...any) (js.Value, error) {
	p, err := jsutil.Call(b.bucket, method, args...)
	if err == nil {
		p, err = jsutil.AwaitContext(ctx, p)
	}
	if err != nil {
		return js.Value{}, fmt.Errorf("store: R2 %s: %w", method, err)
	}
	return p, nil
}

// streamBody is an R2 body: a ReadableStream. Copied with io.Copy to a syumai/workers
// ResponseWriter, WriteTo hands the stream itself to the Response, so the bytes go from R2 to
// the client inside workerd and never through Go (a copy through Go is about 20× slower).
// Read exists for other destinations and is the slow path.
type streamBody struct {
	stream js.Value
	size   int64
	reader js.Value // ReadableStreamDefaultReader once Read was called
	buf    []byte
	handed bool
}

var (
	_ io.ReadCloser = (*streamBody)(nil)
	_ io.WriterTo   = (*streamBody)(nil)
)

// rawJSBodyWriter is the method syumai/workers' ResponseWriter offers (jsutil.RawJSBodyWriter,
// in an internal package, so named here by its method set).
type rawJSBodyWriter interface {
	WriteRawJSBody(body js.Value)
}

func (s *streamBody) WriteTo(w io.Writer) (int64, error) {
	if rw, ok := w.(rawJSBodyWriter); ok && s.reader.IsUndefined() && !s.handed {
		rw.WriteRawJSBody(s.stream)
		s.handed = true
		return s.size, nil
	}
	return io.Copy(w, struct{ io.Reader }{s})
}

func (s *streamBody) Read(p []byte) (int, error) {
	if s.handed {
		return 0, errors.New("store: body already handed to the response")
	}
	if len(s.buf) == 0 {
		if s.reader.IsUndefined() {
			s.reader = s.stream.Call("getReader")
		}
		res, err := jsutil.Await(s.reader.Call("read"), 0)
		if err != nil {
			return 0, fmt.Errorf("store: read R2 body: %w", err)
		}
		if res.Get("done").Bool() {
			return 0, io.EOF
		}
		chunk := res.Get("value")
		s.buf = make([]byte, chunk.Get("byteLength").Int())
		js.CopyBytesToGo(s.buf, chunk)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close cancels the stream unless the response now owns it, so R2 stops sending bytes
// nobody will read (a 304 or an aborted request).
func (s *streamBody) Close() error {
	if s.handed {
		return nil
	}
	s.handed = true
	if !s.reader.IsUndefined() {
		s.reader.Call("cancel")
	} else {
		s.stream.Call("cancel")
	}
	return nil
}
