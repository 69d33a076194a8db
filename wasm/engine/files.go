package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// The small files a load reads before any weight (manifest.json, model.json, vocab.json) are
// kept in the load cache beside the quantized tensors: without them a model whose tensors are
// all cached could still not be resolved with the network down. A kept copy is read only when
// the network fails, never instead of an answer from the server, so it cannot hide a change.

type noFileCacheKey struct{}

// withoutFileCache marks a load that must neither read nor write the cache (cache: false).
func withoutFileCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, noFileCacheKey{}, true)
}

func fileCacheKey(u string) string {
	h := sha256.Sum256([]byte("nibble small file v1\n" + u))
	return "file-" + hex.EncodeToString(h[:20])
}

// rememberFile keeps b as u's body; failures only cost the offline copy.
func rememberFile(ctx context.Context, u string, b []byte) {
	if ctx.Value(noFileCacheKey{}) != nil {
		return
	}
	if c, err := OpenCache(); err == nil {
		_ = c.Put(fileCacheKey(u), bytes.NewReader(b))
	}
}

// recallFile returns the kept body of u when fetching it failed for want of a network.
func recallFile(ctx context.Context, u string, cause error) ([]byte, bool) {
	if ctx.Value(noFileCacheKey{}) != nil || !errors.Is(cause, errs.ErrNetwork) || errs.Kind(cause) == errs.ErrAborted {
		return nil, false
	}
	c, err := OpenCache()
	if err != nil {
		return nil, false
	}
	rc, err := c.Get(fileCacheKey(u))
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxJSONBytes+1))
	if err != nil || len(b) > maxJSONBytes {
		return nil, false
	}
	return b, true
}
