//go:build js && wasm

package stream

import (
	"context"
	"errors"
	"syscall/js"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// TestFetchNeverSettles: a fetch whose headers never come, and a body whose next chunk never
// comes, are promises that never settle. Each ends the load with a NETWORK error after its
// timeout (FetchOptions.HeaderTimeout, Options.StallTimeout), retried once, never a hang.
func TestFetchNeverSettles(t *testing.T) {
	orig := js.Global().Get("fetch")
	defer js.Global().Set("fetch", orig)
	never := js.Global().Get("Function").New(`return new Promise(() => {})`)
	// A 200 whose body stream delivers nothing, ever.
	silent := js.Global().Get("Function").New(`return Promise.resolve(new Response(new ReadableStream({pull() { return new Promise(() => {}) }}), {status: 200}))`)
	for _, c := range []struct {
		name  string
		fetch js.Value
		want  error
	}{
		{"headers never come", never, nil},
		{"body never delivers", silent, ErrStalled},
	} {
		t.Run(c.name, func(t *testing.T) {
			js.Global().Set("fetch", c.fetch)
			src := Source{Name: "hang", Open: Fetch("https://models.test/hang.safetensors", FetchOptions{HeaderTimeout: 150 * time.Millisecond})}
			opt := Options{StallTimeout: 150 * time.Millisecond, MaxRetries: 1, RetryDelay: time.Millisecond}
			start := time.Now()
			_, err := Start(context.Background(), newRecorder(), opt, src).Result(context.Background())
			took := time.Since(start)
			t.Logf("%s after %v: %v", errs.Code(err), took, err)
			if errs.Kind(err) != errs.ErrNetwork || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v, want a NETWORK error", err)
			}
			if took > 3*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}
