package faultserve

import (
	"net/http"
	"strconv"
	"strings"
)

// RangeStart is the file offset of a response's first body byte: the start of a "bytes=N-" or
// "bytes=N-M" request (the loader's form), 0 otherwise. tools/worker/e2e/cutproxy counts the
// bytes it passes with it too (this file has no build constraint so that it builds everywhere).
func RangeStart(r *http.Request) int64 {
	v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok {
		return 0
	}
	v, _, _ = strings.Cut(v, "-")
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}
