//go:build !(js && wasm)

package browser

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestListenConsole opens a page in the headless Chromium of make deps that logs, logs an
// error and throws, and checks the three messages arrive as such.
func TestListenConsole(t *testing.T) {
	launcher, err := filepath.Abs("bin/headless_shell")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("../../.cache/chromium/chromium"); err != nil && os.Getenv("NIBBLE_CHROMIUM") == "" {
		t.Skip("no Chromium: run make deps")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, cancel = chromedp.NewExecAllocator(ctx, chromedp.ExecPath(launcher), chromedp.UserDataDir(t.TempDir()))
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	var mu sync.Mutex
	var got []Message
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ListenConsole(ctx, func(m Message) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
	}); err != nil {
		t.Fatal(err)
	}
	page := `<script>console.log("hello", 42, {a: 1}); console.error("bad"); setTimeout(() => { throw new Error("boom") })</script>`
	if err := chromedp.Do(ctx, chromedp.Navigate("data:text/html,"+url.PathEscape(page))); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("got %v before the deadline, want 3 messages", got)
		case <-time.After(20 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if m := got[0]; m.Type != "log" || m.Text != "hello 42 Object" || m.IsError() {
		t.Errorf("console.log: got %+v, want log \"hello 42 Object\"", m)
	}
	if m := got[1]; m.Type != "error" || m.Text != "bad" || !m.IsError() || m.String() != "console.error: bad" {
		t.Errorf("console.error: got %+v (%s)", m, m)
	}
	if m := got[2]; m.Type != "exception" || !strings.Contains(m.Text, "boom") || !m.IsError() {
		t.Errorf("throw: got %+v, want an exception naming boom", m)
	}
	t.Logf("%s | %s | %s", got[0], got[1], got[2])
}
