//go:build !(js && wasm)

package stream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// HTTP returns an Opener that GETs url with net/http (nil client means http.DefaultClient),
// resuming with Range and If-Range. In the browser use Fetch.
func HTTP(client *http.Client, url string) Opener {
	if client == nil {
		client = http.DefaultClient
	}
	var mu sync.Mutex
	var etag string
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, Permanent(err)
		}
		mu.Lock()
		tag := etag
		mu.Unlock()
		if off > 0 {
			req.Header.Set("Range", RangeHeader(off))
			if tag != "" {
				req.Header.Set("If-Range", tag)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, errs.Mark(err, errs.ErrNetwork) // worth a retry; a cancel stays ErrAborted
		}
		got := resp.Header.Get("ETag")
		if err := CheckResponse(resp.StatusCode, resp.Header.Get("Content-Range"), off, tag, got); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if off == 0 {
			mu.Lock()
			etag = got
			mu.Unlock()
		}
		return withSize(resp.Body, FileSize(resp.StatusCode, resp.Header.Get("Content-Range"), resp.ContentLength, resp.Uncompressed)), nil
	}
}
