//go:build !(js && wasm)

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// classicConn is a minimal W3C WebDriver (HTTP) client for WebKitWebDriver, which speaks no BiDi:
// a session, a navigation, and scripts run in the page. https://w3c.github.io/webdriver/
type classicConn struct {
	base    string // http://127.0.0.1:port
	session string
	browser string // "MiniBrowser 2.50.1", from the new session's capabilities
	debug   bool
	client  *http.Client
}

// call sends one command; body nil means no body (GET/DELETE). The reply's "value" is returned,
// or the W3C error it carries.
func (c *classicConn) call(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("webdriver %s %s: %w", method, path, err)
	}
	if c.debug {
		fmt.Fprintf(os.Stderr, "webdriver %s %s -> %d %.2000s\n", method, path, resp.StatusCode, raw)
	}
	var reply struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, fmt.Errorf("webdriver %s %s: status %d, unreadable reply %.200q", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		json.Unmarshal(reply.Value, &e)
		return nil, fmt.Errorf("webdriver %s %s: %s: %s", method, path, e.Error, e.Message)
	}
	return reply.Value, nil
}

// start opens a session with the given capabilities and navigates to url. Navigation waits for
// the load event only ("eager" would do too): the test reports its own end through the page.
func (c *classicConn) start(ctx context.Context, caps map[string]any, url string) error {
	raw, err := c.call(ctx, "POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": caps}})
	if err != nil {
		return err
	}
	var s struct {
		SessionID    string `json:"sessionId"`
		Capabilities struct {
			BrowserName    string `json:"browserName"`
			BrowserVersion string `json:"browserVersion"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.SessionID == "" {
		return fmt.Errorf("webdriver new session: no session id in %.200s", raw)
	}
	c.session = s.SessionID
	c.browser = s.Capabilities.BrowserName + " " + s.Capabilities.BrowserVersion
	_, err = c.call(ctx, "POST", "/session/"+c.session+"/url", map[string]any{"url": url})
	return err
}

// drain runs the page's drain function and returns the log entries it queued since the last call
// (see page/runner.js: poll mode). Before the runner script has run it returns none.
func (c *classicConn) drain(ctx context.Context) ([]logEntry, error) {
	raw, err := c.call(ctx, "POST", "/session/"+c.session+"/execute/sync", map[string]any{
		"script": "return globalThis.nibbleDrain ? globalThis.nibbleDrain() : [];",
		"args":   []any{},
	})
	if err != nil {
		return nil, err
	}
	var entries []logEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("webdriver: unreadable page log %.200s: %w", raw, err)
	}
	return entries, nil
}

// poll drains the page every interval and hands each entry to onLog, in order, until ctx ends or
// a drain fails (sent on failed).
func (c *classicConn) poll(ctx context.Context, interval time.Duration, onLog func(*logEntry), failed chan<- error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		entries, err := c.drain(ctx)
		if err != nil {
			if ctx.Err() == nil {
				select {
				case failed <- err:
				default:
				}
			}
			return
		}
		for i := range entries {
			onLog(&entries[i])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close ends the session, which closes the browser; the driver's process group is killed after.
func (c *classicConn) Close() {
	if c.session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.call(ctx, "DELETE", "/session/"+c.session, nil)
}
