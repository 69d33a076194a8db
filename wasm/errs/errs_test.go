package errs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestKinds(t *testing.T) {
	truncated := New(ErrFormat, "truncated")
	cases := []struct {
		err  error
		kind error
		code string
	}{
		{nil, nil, ""},
		{io.EOF, nil, "INTERNAL"},
		{fmt.Errorf("tensor %q: %w", "w", truncated), ErrFormat, "UNSUPPORTED_FORMAT"},
		{fmt.Errorf("load: %w", context.Canceled), ErrAborted, "ABORTED"},
		{errors.Join(fmt.Errorf("a: %w", ErrNetwork), fmt.Errorf("b: %w", ErrAborted)), ErrAborted, "ABORTED"},
		{Mark(io.ErrUnexpectedEOF, ErrNetwork), ErrNetwork, "NETWORK"},
		{Mark(fmt.Errorf("x: %w", ErrTooLarge), ErrNetwork), ErrTooLarge, "OUT_OF_MEMORY"},
		{fmt.Errorf("gpu: %w", ErrDeviceLost), ErrDeviceLost, "DEVICE_LOST"},
		{fmt.Errorf("embed: %w", ErrModel), ErrModel, "UNSUPPORTED_MODEL"},
	}
	for _, c := range cases {
		if got := Kind(c.err); got != c.kind {
			t.Errorf("Kind(%v) = %v, want %v", c.err, got, c.kind)
		}
		if got := Code(c.err); got != c.code {
			t.Errorf("Code(%v) = %q, want %q", c.err, got, c.code)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", truncated), truncated) || truncated.Error() != "truncated" {
		t.Fatal("a New sentinel must match itself and keep its message")
	}
	if m := Mark(io.ErrUnexpectedEOF, ErrNetwork); !errors.Is(m, io.ErrUnexpectedEOF) || m.Error() != io.ErrUnexpectedEOF.Error() {
		t.Fatal("Mark must keep the error's identity and message")
	}
}
