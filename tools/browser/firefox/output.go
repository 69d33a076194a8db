//go:build !(js && wasm)

package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The page logs each write of the test, and then its exit code, as one console message each:
//
//	<token> <fd> <base64 of the bytes>
//	<token> exit <code>
//
// and we get them over BiDi log.entryAdded, one ordered stream. Why the console and not HTTP:
// a console.log costs the page well under a millisecond and is delivered even while Go code
// spins without yielding (a hung test still shows its last "=== RUN" line), where a synchronous
// XHR took 5–8 ms a write here (three processes per round trip on a loaded 2-core machine).
// Why base64: the bytes arrive exactly (partial UTF-8 sequences, NULs) and stdout and stderr stay
// apart. The exit code travels in the same stream, so it cannot overtake the last write.

// output turns the page's console messages into the test's stdout, stderr and exit code.
type output struct {
	token          string
	stdout, stderr io.Writer
	exited         chan int // the test's exit code, once

	exitOnce sync.Once
}

func newOutput(token string) *output {
	return &output{token: token, stdout: os.Stdout, stderr: os.Stderr, exited: make(chan int, 1)}
}

// handle takes one console message; those without our token are the page's own (JS errors,
// a test's console.log) and go to stderr, labelled.
func (o *output) handle(e *logEntry) {
	rest, ours := strings.CutPrefix(e.Text, o.token+" ")
	if !ours || e.Type != "console" {
		printLogEntry(o.stderr, e)
		return
	}
	kind, data, _ := strings.Cut(rest, " ")
	switch kind {
	case "1", "2":
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			fmt.Fprintf(o.stderr, "firefox_wasm_exec: garbled output from the page: %v\n", err)
			return
		}
		if kind == "1" {
			o.stdout.Write(b)
		} else {
			o.stderr.Write(b)
		}
	case "exit":
		code, err := strconv.Atoi(data)
		if err != nil {
			fmt.Fprintf(o.stderr, "firefox_wasm_exec: bad exit code %q from the page\n", data)
			code = 1
		}
		o.exitOnce.Do(func() { o.exited <- code })
	default:
		printLogEntry(o.stderr, e)
	}
}
