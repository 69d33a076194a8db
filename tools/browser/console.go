//go:build !(js && wasm)

// Package browser is what the Go programs and tests that drive headless Chromium over chromedp
// share (the shell scripts beside it install the browser and run js tests in it): the page's
// console and uncaught exceptions as messages.
package browser

import (
	"context"
	"fmt"
	"strings"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Message is one console call of a page, or one exception the page did not catch.
type Message struct {
	// Type is the console method ("log", "warning", "error", …), or "exception".
	Type string
	// Text is the call's arguments joined by spaces (strings unquoted, objects by their
	// description), or the exception's text and description.
	Text string
	// URL and Line say where an exception was thrown.
	URL  string
	Line int64
}

// IsError reports whether m is an uncaught exception or a console.error.
func (m Message) IsError() bool {
	return m.Type == "exception" || m.Type == string(cdpruntime.ConsoleAPICalledTypeError)
}

func (m Message) String() string {
	if m.Type == "exception" {
		return fmt.Sprintf("page exception at %s:%d: %s", m.URL, m.Line, m.Text)
	}
	return fmt.Sprintf("console.%s: %s", m.Type, m.Text)
}

// ListenConsole calls f with every console call and uncaught exception of the page ctx drives
// (a chromedp context). f runs on chromedp's event loop: it must be quick (log, count), never
// call back into the browser.
func ListenConsole(ctx context.Context, f func(Message)) error {
	return chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			f(Message{Type: "exception", Text: text, URL: d.URL, Line: d.LineNumber})
		case *cdpruntime.EventConsoleAPICalled:
			parts := make([]string, 0, len(ev.Args))
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			f(Message{Type: string(ev.Type), Text: strings.Join(parts, " ")})
		}
	})
}
