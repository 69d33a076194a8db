package stream

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// Manifest is a model's manifest.json as tools/worker serves it (the type lives in wasm/format,
// shared with the server); ManifestSource turns one of its files into a Source.
type Manifest = format.Manifest

// ManifestSource returns the Source for file name with the manifest's size and sha256.
func ManifestSource(m *Manifest, name string, open Opener) (Source, error) {
	f, err := m.File(name)
	if err != nil {
		return Source{}, fmt.Errorf("stream: %w", err)
	}
	return Source{Name: name, Open: open, Size: f.Size, SHA256: f.SHA256}, nil
}

// RangeHeader is the Range request header for a stream opened at off ("" for the whole file).
func RangeHeader(off int64) string {
	if off == 0 {
		return ""
	}
	return "bytes=" + strconv.FormatInt(off, 10) + "-"
}

// CheckResponse decides whether an HTTP response to a request opened at off can be read as the
// file from byte off: status 200 for off 0, 206 with a Content-Range starting at off otherwise.
// etag is the entity tag of the first response (sent back as If-Range), got the one now. The
// error says whether a retry could help (see Permanent).
func CheckResponse(status int, contentRange string, off int64, etag, got string) error {
	switch {
	case status == 200 && off == 0:
		return nil
	case status == 200:
		if etag != "" && got != etag {
			return Permanent(fmt.Errorf("resuming at byte %d: ETag %s, was %s: %w", off, got, etag, ErrChanged))
		}
		return Permanent(fmt.Errorf("resuming at byte %d: the server sent the whole file (200) instead of a range: %w", off, ErrRange))
	case status == 206:
		start, ok := strings.CutPrefix(contentRange, "bytes ")
		if ok {
			start, _, ok = strings.Cut(start, "-")
		}
		n, err := strconv.ParseInt(start, 10, 64)
		if !ok || err != nil || n != off {
			return Permanent(fmt.Errorf("asked for byte %d on, got Content-Range %q: %w", off, contentRange, ErrRange))
		}
		return nil
	case status == 416:
		return Permanent(fmt.Errorf("resuming at byte %d: the file is shorter (416): %w", off, ErrSize))
	case status == 404 || status == 410:
		return Permanent(fmt.Errorf("HTTP %d: %w", status, errs.ErrNotFound))
	case status == 408 || status == 429 || status >= 500:
		return fmt.Errorf("HTTP %d: %w", status, errs.ErrNetwork)
	default:
		return Permanent(fmt.Errorf("HTTP %d: %w", status, errs.ErrNetwork))
	}
}

// FileSize is the whole file's length an HTTP response reports, 0 if it reports none: the
// total of a 206's Content-Range ("bytes a-b/total"), or a 200's Content-Length when the body
// is delivered as sent (decoded says it was decompressed on the way: the length is not the
// file's).
func FileSize(status int, contentRange string, contentLength int64, decoded bool) int64 {
	switch status {
	case 200:
		if decoded || contentLength < 0 {
			return 0
		}
		return contentLength
	case 206:
		_, total, ok := strings.Cut(contentRange, "/")
		if n, err := strconv.ParseInt(total, 10, 64); ok && err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// sizedBody is a response body that knows its file's length (a Sizer).
type sizedBody struct {
	io.ReadCloser
	size int64
}

func (b sizedBody) Size() int64 { return b.size }

// HeldBytes passes on what the body holds outside Go (see HeldReporter).
func (b sizedBody) HeldBytes() int64 {
	if h, ok := b.ReadCloser.(HeldReporter); ok {
		return h.HeldBytes()
	}
	return 0
}

// withSize returns rc as a Sizer of size, or rc itself when the size is unknown.
func withSize(rc io.ReadCloser, size int64) io.ReadCloser {
	if size <= 0 {
		return rc
	}
	return sizedBody{rc, size}
}
