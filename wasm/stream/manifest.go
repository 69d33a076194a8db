package stream

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Manifest is the JSON tools/worker serves as manifest.json: every file of a model with its size
// and sha256. The loader checks each file it streams against it.
type Manifest struct {
	Model string         `json:"model"`
	Files []ManifestFile `json:"files"`
}

// ManifestFile is one file of a Manifest.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// maxManifestBytes bounds a manifest: a few hundred shards fit in a few tens of KB.
const maxManifestBytes = 4 << 20

// ParseManifest reads a manifest.json.
func ParseManifest(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("stream: manifest: %w", err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("stream: manifest: over %d bytes", maxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("stream: manifest: %w", err)
	}
	for _, f := range m.Files {
		if f.Size < 0 || (f.SHA256 != "" && !isHex64(f.SHA256)) {
			return nil, fmt.Errorf("stream: manifest: file %q: size %d, sha256 %q: want a size ≥ 0 and 64 lowercase hex digits", f.Name, f.Size, f.SHA256)
		}
	}
	return &m, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Source returns the Source for file name with the manifest's size and sha256.
func (m *Manifest) Source(name string, open Opener) (Source, error) {
	for _, f := range m.Files {
		if f.Name == name {
			return Source{Name: name, Open: open, Size: f.Size, SHA256: f.SHA256}, nil
		}
	}
	return Source{}, fmt.Errorf("stream: manifest of %q has no file %q", m.Model, name)
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
	case status == 408 || status == 429 || status >= 500:
		return fmt.Errorf("HTTP %d", status)
	default:
		return Permanent(fmt.Errorf("HTTP %d", status))
	}
}
