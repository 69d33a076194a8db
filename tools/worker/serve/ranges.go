package serve

import (
	"errors"
	"math"
	"strings"

	"github.com/nibble-ml/nibble/tools/worker/store"
)

// maxRangeHeader bounds the Range header we parse at all; a single byte range of two int64s
// needs fewer than 50 bytes.
const maxRangeHeader = 100

// errBadRange is a Range we will not serve: malformed, several ranges, or outside the object.
// All of them are answered 416 with "Content-Range: bytes */size" (RFC 9110 §15.5.17 lets a
// server reject invalid ranges that way). Answering 200 with the whole shard instead would
// send a loader that asked for the tail of a 1 GB file the whole of it.
var errBadRange = errors.New("unsatisfiable range")

// parseRange resolves one Range header value against an object of size bytes.
// It returns nil, nil when the header is to be ignored (no header, or a unit other than
// bytes, which RFC 9110 §14.2 says to ignore) and the whole object is served.
func parseRange(header string, size int64) (*store.Range, error) {
	if header == "" {
		return nil, nil
	}
	if len(header) > maxRangeHeader {
		return nil, errBadRange
	}
	unit, spec, ok := strings.Cut(header, "=")
	if !ok {
		return nil, errBadRange
	}
	if !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		if validToken(strings.TrimSpace(unit)) {
			return nil, nil // another unit: ignore the header
		}
		return nil, errBadRange
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return nil, errBadRange // multipart/byteranges is not served
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return nil, errBadRange
	}
	if first == "" {
		// Suffix range: the last n bytes (all of them when n is longer than the object).
		n, ok := parseBound(last)
		if !ok || n == 0 || size == 0 {
			return nil, errBadRange
		}
		n = min(n, size)
		return &store.Range{Offset: size - n, Length: n}, nil
	}
	start, ok := parseDigits(first)
	if !ok || start >= size {
		return nil, errBadRange
	}
	end := size - 1
	if last != "" {
		// A last byte past the end, however many digits it has, means the end (RFC 9110
		// §14.1.2): a client may ask for "everything up to n" without knowing the size.
		e, ok := parseBound(last)
		if !ok || e < start {
			return nil, errBadRange
		}
		end = min(e, size-1)
	}
	return &store.Range{Offset: start, Length: end - start + 1}, nil
}

// parseDigits reads a non-empty decimal of at most 18 digits: no sign, no spaces, no
// overflow (an 18-digit number fits int64 with room to add).
func parseDigits(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseBound is parseDigits for a value that only bounds a range from above (a last byte, a
// suffix length): any longer run of digits is just larger than every object, and saturates.
func parseBound(s string) (int64, bool) {
	if len(s) > 18 && strings.Trim(s, "0123456789") == "" {
		return math.MaxInt64, true
	}
	return parseDigits(s)
}

// validToken reports whether s is an RFC 9110 token (a plausible range unit).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// etagMatches is the weak comparison of If-None-Match (RFC 9110 §13.1.2) against a list
// like `"a", W/"b"` or `*`. The Worker's request adapter splits header values at commas,
// so the caller joins them back first.
func etagMatches(list, etag string) bool {
	if etag == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}
