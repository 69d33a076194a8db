// Package smoke holds the first browser tests, written straight against navigator.gpu and
// navigator.ml with no nibble bindings in between. When one of these fails, the browser set-up
// is at fault (a flag, a package, the launcher), not the backends: the failure says which.
package smoke
