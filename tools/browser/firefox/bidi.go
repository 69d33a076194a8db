//go:build !(js && wasm)

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// commandTimeout bounds one BiDi command; navigate does not wait for the page (wait: none), so
// every command we send is quick unless the browser is stuck.
const commandTimeout = 60 * time.Second

// bidiConn is a minimal WebDriver BiDi client: commands with ids, replies matched by id, and
// log.entryAdded events printed as they come. https://w3c.github.io/webdriver-bidi/
type bidiConn struct {
	ws      *websocket.Conn
	debug   bool
	onLog   func(*logEntry) // called in order, from one goroutine
	browser string          // "firefox 153.7.0", from session.new
	failed  chan error      // the connection broke while we still needed it

	mu      sync.Mutex
	nextID  int
	pending map[int]chan bidiMessage
	closing bool
}

// bidiMessage is any message from the remote end: a command's reply or an event.
type bidiMessage struct {
	Type    string          `json:"type"` // "success", "error", "event"
	ID      int             `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// dialBiDi opens a BiDi session endpoint: base is the ws://host:port Firefox printed.
func dialBiDi(ctx context.Context, base string, onLog func(*logEntry), debug bool) (*bidiConn, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	// No Origin header (coder/websocket sends none): Firefox's remote agent refuses connections
	// that carry one it was not told to allow.
	ws, _, err := websocket.Dial(ctx, base+"/session", nil)
	if err != nil {
		return nil, fmt.Errorf("connect to firefox's webdriver bidi at %s/session: %w", base, err)
	}
	ws.SetReadLimit(64 << 20) // console messages can be long
	b := &bidiConn{ws: ws, debug: debug, onLog: onLog, failed: make(chan error, 1), pending: map[int]chan bidiMessage{}}
	go b.readLoop()
	return b, nil
}

// start opens a session, subscribes to console messages and navigates the first tab to url
// without waiting for the page to load: the test reports its own end to our server.
func (b *bidiConn) start(ctx context.Context, url string) error {
	raw, err := b.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}})
	if err != nil {
		return err
	}
	var session struct {
		Capabilities struct {
			BrowserName    string `json:"browserName"`
			BrowserVersion string `json:"browserVersion"`
		} `json:"capabilities"`
	}
	json.Unmarshal(raw, &session) // only for the report; missing fields are fine
	b.browser = session.Capabilities.BrowserName + " " + session.Capabilities.BrowserVersion
	if _, err := b.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		return err
	}
	raw, err = b.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0})
	if err != nil {
		return err
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(raw, &tree); err != nil {
		return fmt.Errorf("browsingContext.getTree: %w", err)
	}
	if len(tree.Contexts) == 0 {
		return errors.New("browsingContext.getTree: firefox has no tab open")
	}
	_, err = b.call(ctx, "browsingContext.navigate", map[string]any{
		"context": tree.Contexts[0].Context, "url": url, "wait": "none"})
	return err
}

// call sends one command and waits for its reply.
func (b *bidiConn) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	reply := make(chan bidiMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = reply
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	if b.debug {
		fmt.Fprintf(os.Stderr, "bidi -> %s\n", msg)
	}
	if err := b.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-reply:
		if m.Type == "error" {
			return nil, fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		return m.Result, nil
	case err := <-b.failed:
		b.failed <- err // leave it for run's select too
		return nil, fmt.Errorf("%s: %w", method, err)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no reply from firefox: %w", method, ctx.Err())
	}
}

func (b *bidiConn) readLoop() {
	for {
		_, data, err := b.ws.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			closing := b.closing
			b.mu.Unlock()
			if !closing {
				b.failed <- fmt.Errorf("connection lost: %w", err)
			}
			return
		}
		if b.debug {
			fmt.Fprintf(os.Stderr, "bidi <- %s\n", data)
		}
		var m bidiMessage
		if err := json.Unmarshal(data, &m); err != nil {
			fmt.Fprintf(os.Stderr, "firefox_wasm_exec: unreadable bidi message %q: %v\n", data, err)
			continue
		}
		switch {
		case m.Type == "event" && m.Method == "log.entryAdded":
			var e logEntry
			if err := json.Unmarshal(m.Params, &e); err != nil {
				fmt.Fprintf(os.Stderr, "firefox_wasm_exec: unreadable log entry %s: %v\n", m.Params, err)
				continue
			}
			b.onLog(&e)
		case m.Type == "event":
		default:
			b.mu.Lock()
			reply := b.pending[m.ID]
			b.mu.Unlock()
			if reply != nil {
				reply <- m
			}
		}
	}
}

// labelLogs names the browser on the page's own console messages we print.
var labelLogs = "firefox"

// logEntry is the part of a BiDi log.Entry we print.
type logEntry struct {
	Type       string `json:"type"`  // "console", "javascript"
	Level      string `json:"level"` // "debug", "info", "warn", "error"
	Method     string `json:"method"`
	Text       string `json:"text"`
	StackTrace struct {
		CallFrames []struct {
			FunctionName string `json:"functionName"`
			URL          string `json:"url"`
			LineNumber   int    `json:"lineNumber"`
		} `json:"callFrames"`
	} `json:"stackTrace"`
}

// printLogEntry prints a console message of the page that is not the test's output to stderr:
// JS-side warnings and uncaught errors, the clues when a test dies.
func printLogEntry(w io.Writer, e *logEntry) {
	where := "console." + e.Method
	if e.Type != "console" {
		where = e.Type + " " + e.Level
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s: %s\n", labelLogs, where, e.Text)
	if e.Type == "javascript" {
		for _, f := range e.StackTrace.CallFrames {
			fmt.Fprintf(&sb, "\tat %s (%s:%d)\n", f.FunctionName, f.URL, f.LineNumber+1)
		}
	}
	io.WriteString(w, sb.String())
}

// Close ends the connection; Firefox is killed right after, so the session is not ended first.
func (b *bidiConn) Close() {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.ws.CloseNow()
}
