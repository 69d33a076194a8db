//go:build js && wasm

package jsapi

import (
	"os"
	"slices"
	"strings"
	"syscall/js"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// TestGenerateIterator drives m.generate as a page does, over a llama-tiny GGUF that
// wasm/model/llama/testdata/browser.sh serves (make test-llama-browser runs it): for await over
// the tokens equals the promise's Generation; an AbortSignal fired mid-stream stops within one
// token and the iterator rejects ABORTED; leaving the loop (return()) stops the generation too.
func TestGenerateIterator(t *testing.T) {
	base := os.Getenv("NIBBLE_STREAM_URL")
	if base == "" {
		t.Skip("NIBBLE_STREAM_URL is unset: run make test-llama-browser")
	}
	api := New()
	m, err := jsutil.Await(api.Call("load", base+"/llama/spm-f32.gguf", map[string]any{"backend": "cpu"}), 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Call("dispose")
	const prompt = "The quick brown fox"
	checkIteratorEqualsPromise(t, m, prompt)
	checkAbortStopsIterator(t, m, prompt)
	checkReturnStopsGeneration(t, m, prompt)
}

// asyncIter is p[Symbol.asyncIterator](): what for await calls.
func asyncIter(p js.Value) js.Value {
	return js.Global().Get("Reflect").Call("get", p, jsSymbolAsyncIterator).Call("call", p)
}

// nextToken awaits it.next(): the token's id, or done.
func nextToken(it js.Value) (id int, done bool, err error) {
	r, err := jsutil.Await(it.Call("next"), time.Minute)
	if err != nil || r.Get("done").Bool() {
		return 0, true, err
	}
	return r.Get("value").Get("id").Int(), false, nil
}

// checkIteratorEqualsPromise: for await over the tokens gives the promise's Generation.
func checkIteratorEqualsPromise(t *testing.T, m js.Value, prompt string) {
	p := m.Call("generate", prompt, map[string]any{"maxTokens": 12})
	it := asyncIter(p)
	var ids []int
	for {
		id, done, err := nextToken(it)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		ids = append(ids, id)
	}
	g, err := jsutil.Await(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range g.Get("tokens").Length() {
		want = append(want, g.Get("tokens").Index(i).Int())
	}
	if len(ids) != 12 || !slices.Equal(ids, want) {
		t.Errorf("for await gave %v, the promise's tokens %v", ids, want)
	}
	t.Logf("for await: %d tokens equal the promise's: %q", len(ids), g.Get("text").String())
}

// checkAbortStopsIterator aborts after 3 tokens: the generation stops within one token,
// next() and the promise reject ABORTED.
func checkAbortStopsIterator(t *testing.T, m js.Value, prompt string) {
	produced := 0
	count := js.FuncOf(func(js.Value, []js.Value) any { produced++; return nil })
	defer count.Release()
	ac := js.Global().Get("AbortController").New()
	p := m.Call("generate", prompt, map[string]any{"maxTokens": 64, "signal": ac.Get("signal"), "onToken": count})
	it := asyncIter(p)
	var got, atAbort int
	for {
		_, done, err := nextToken(it)
		if err != nil {
			if !strings.Contains(strings.ToLower(err.Error()), "abort") {
				t.Errorf("after abort: %v, want ABORTED", err)
			}
			t.Logf("abort after %d tokens taken: next() rejects (%v); %d tokens produced after the abort", got, err, produced-atAbort)
			break
		}
		if done {
			t.Fatalf("the generation ended (%d tokens) although aborted", got)
		}
		if got++; got == 3 {
			atAbort = produced
			ac.Call("abort")
		}
	}
	if _, err := jsutil.Await(p, time.Minute); err == nil || !strings.Contains(strings.ToLower(err.Error()), "abort") {
		t.Errorf("the promise after abort: %v, want ABORTED", err)
	}
	if produced-atAbort > 1 {
		t.Errorf("%d tokens produced after the abort, want ≤ 1", produced-atAbort)
	}
}

// checkReturnStopsGeneration leaves the loop after 2 tokens: return() stops the generation
// within one token; the promise rejects ABORTED.
func checkReturnStopsGeneration(t *testing.T, m js.Value, prompt string) {
	produced := 0
	count := js.FuncOf(func(js.Value, []js.Value) any { produced++; return nil })
	defer count.Release()
	p := m.Call("generate", prompt, map[string]any{"maxTokens": 64, "onToken": count})
	it := asyncIter(p)
	for range 2 {
		if _, _, err := nextToken(it); err != nil {
			t.Fatal(err)
		}
	}
	at := produced
	if _, err := jsutil.Await(it.Call("return"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, done, _ := nextToken(it); !done {
		t.Error("next() after return() is not done")
	}
	_, err := jsutil.Await(p, time.Minute)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "abort") {
		t.Errorf("the promise after return(): %v, want ABORTED", err)
	}
	if produced-at > 1 {
		t.Errorf("%d tokens produced after return(), want ≤ 1", produced-at)
	}
	t.Logf("return() after 2 tokens: %d produced after it; the promise rejects: %v", produced-at, err)
}
