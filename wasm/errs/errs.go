// Package errs is the small set of error kinds every nibble failure wraps, so that a caller (the
// JS API above all) can tell what went wrong, and what to do about it, without reading messages:
//
//	kind            JS code             what the user can do
//	ErrNotFound     NOT_FOUND           check the model URL (404, no such file or tensor)
//	ErrFormat       UNSUPPORTED_FORMAT  the file is damaged or not what its manifest says (corrupt,
//	                                    truncated, wrong size or sha256, NaN/Inf weights)
//	ErrUnsupported  UNSUPPORTED_FORMAT  well-formed, but a version, data type or API this build or
//	                                    browser does not have
//	ErrModel        UNSUPPORTED_MODEL   the weights load, but nibble cannot run this architecture
//	                                    whole (embed on a model it does not know); also ErrUnsupported
//	ErrTooLarge     OUT_OF_MEMORY       over a limit or a memory budget: a smaller model or format
//	ErrNetwork      NETWORK             the server or the connection failed; retrying may help
//	ErrAborted      ABORTED             cancelled, released or timed out by the caller
//	ErrDeviceLost   DEVICE_LOST         the GPU or WebNN device went away: load the model again
//	ErrBadArgument  BAD_ARGUMENT        the caller asked for something invalid (a format name...)
//
// Packages keep their own, finer sentinels (format.ErrTruncated, stream.ErrChecksum...) and make
// each of them one of these kinds with New, so errors.Is works at both levels.
//
// The package is pure Go and imports nothing of nibble: every package may use it.
package errs

import (
	"context"
	"errors"
)

// The kinds. Their messages are short because they end the chain ("…: not found").
var (
	ErrNotFound    = errors.New("not found")
	ErrFormat      = errors.New("bad model file")
	ErrUnsupported = errors.New("unsupported")
	ErrTooLarge    = errors.New("too large")
	ErrNetwork     = errors.New("network error")
	ErrAborted     = errors.New("aborted")
	ErrDeviceLost  = errors.New("device lost")
	ErrBadArgument = errors.New("bad argument")
	// ErrModel is also ErrUnsupported, so callers that test for that still match.
	ErrModel = New(ErrUnsupported, "unsupported model")
)

// kinds is the order Kind looks in: an error that wraps several kinds (a read cut by a cancel,
// errors.Join of two failures) reports the one the user must act on first.
var kinds = []struct {
	kind error
	code string
}{
	{ErrDeviceLost, "DEVICE_LOST"},
	{ErrAborted, "ABORTED"},
	{ErrTooLarge, "OUT_OF_MEMORY"},
	{ErrNotFound, "NOT_FOUND"},
	{ErrModel, "UNSUPPORTED_MODEL"},
	{ErrUnsupported, "UNSUPPORTED_FORMAT"},
	{ErrFormat, "UNSUPPORTED_FORMAT"},
	{ErrBadArgument, "BAD_ARGUMENT"},
	{ErrNetwork, "NETWORK"},
}

// Kind returns the kind err wraps, nil if it wraps none. A context's Canceled or
// DeadlineExceeded counts as ErrAborted: the caller ended the work.
func Kind(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			return k.kind
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ErrAborted
	}
	return nil
}

// Code returns the JS API's error code for err: "" for nil, "INTERNAL" for an error of no kind
// (a bug: every failure should have one).
func Code(err error) string {
	if err == nil {
		return ""
	}
	k := Kind(err)
	for _, c := range kinds {
		if c.kind == k {
			return c.code
		}
	}
	return "INTERNAL"
}

// New returns a sentinel error whose message is msg and which is also kind: errors.Is finds
// both the sentinel itself and its kind.
func New(kind error, msg string) error { return &kindError{msg: msg, kind: kind} }

type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Mark returns err wrapped so that it is also kind, with err's message unchanged; nil stays
// nil, and an error that already has a kind keeps it.
func Mark(err, kind error) error {
	if err == nil || Kind(err) != nil {
		return err
	}
	return &markedError{err: err, kind: kind}
}

type markedError struct{ err, kind error }

func (e *markedError) Error() string   { return e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.err, e.kind} }
