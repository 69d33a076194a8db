package engine

import (
	"fmt"
	"strings"

	"github.com/nibble-ml/nibble/wasm/stream"
)

// OpenCache returns the cache loads keep quantized tensors in: the Cache API in the browser
// (cache_js.go), one MemCache for the process natively. Tests may replace it.
var OpenCache = openCache

// cacheFor decides whether a load uses the cache (want: the JS option, nil when not given) and
// says why not when it does not. A file is cacheable only with a sha256 or a version: without one
// the loader could not tell a changed file from the one it stored (stream.CacheKey).
func cacheFor(spec *Spec, want *bool) (stream.Cache, []string) {
	if want != nil && !*want {
		return nil, []string{"cache: false: not read from the cache, nothing stored"}
	}
	var unkeyed []string
	for _, src := range spec.Sources {
		if stream.CacheKey(src, stream.Options{}) == "" {
			unkeyed = append(unkeyed, src.Name)
		}
	}
	if len(unkeyed) == len(spec.Sources) {
		if want == nil {
			return nil, nil // the spec's notes already say there is no hash
		}
		return nil, []string{"not cached: " + strings.Join(unkeyed, ", ") + " has no sha256 or version to key it by"}
	}
	c, err := OpenCache()
	if err != nil {
		return nil, []string{fmt.Sprintf("not cached: %v", err)}
	}
	if len(unkeyed) > 0 {
		return c, []string{"not cached (no sha256 or version): " + strings.Join(unkeyed, ", ")}
	}
	return c, nil
}
