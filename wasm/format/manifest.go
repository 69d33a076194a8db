package format

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// Manifest is a model's manifest.json: every file of the model with its size and sha256. The
// server (tools/worker) writes and serves it; the loader (wasm/stream) checks each file it
// streams against it. One type, so the two sides cannot drift apart.
type Manifest struct {
	Model string         `json:"model"`
	Files []ManifestFile `json:"files"`
}

// ManifestFile is one file of a Manifest. SHA256 is lowercase hex; it is empty only where the
// server could not know it (an R2 object without the "sha256" custom metadata).
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// ManifestName is the file name a manifest is stored and served under.
const ManifestName = "manifest.json"

// maxManifestBytes bounds a manifest: a few hundred shards fit in a few tens of KB.
const maxManifestBytes = 4 << 20

// ParseManifest reads and validates a manifest.json (at most 4 MiB).
func ParseManifest(r io.Reader) (*Manifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("format: manifest: %w", errs.Mark(err, errs.ErrNetwork))
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("format: manifest: %w: over %d bytes", ErrLimit, maxManifestBytes)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("format: manifest: %w: %v", ErrCorrupt, err)
	}
	for _, f := range m.Files {
		if f.Size < 0 || (f.SHA256 != "" && !isHex64(f.SHA256)) {
			return nil, fmt.Errorf("format: manifest: file %q: %w: size %d, sha256 %q: want a size ≥ 0 and 64 lowercase hex digits", f.Name, ErrCorrupt, f.Size, f.SHA256)
		}
	}
	return &m, nil
}

// File returns the entry for name.
func (m *Manifest) File(name string) (ManifestFile, error) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, nil
		}
	}
	return ManifestFile{}, fmt.Errorf("format: manifest of %q has no file %q: %w", m.Model, name, errs.ErrNotFound)
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
