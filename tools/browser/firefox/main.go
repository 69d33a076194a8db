//go:build !(js && wasm)

// Command firefox_wasm_exec runs a GOOS=js GOARCH=wasm test binary in headless Firefox ESR, for
// `go test -exec`:
//
//	GOOS=js GOARCH=wasm go test -exec "$PWD/.cache/bin/firefox_wasm_exec" ./wasm/internal/smoke -v
//
// We need it because Firefox's WebGPU (over Mesa's lavapipe) has shader-f16 and the Chromium that
// wasmbrowsertest drives does not; see DESIGN.md. It serves the test binary, Go's wasm_exec.js and
// a small page on 127.0.0.1, starts `firefox-esr --headless` on a fresh profile whose user.js turns
// WebGPU on and every network-reaching service off, and drives it over WebDriver BiDi.
//
// The test's stdout and stderr reach us byte for byte and in order as console messages over BiDi
// log.entryAdded (see output.go); its exit code arrives the same way, after its last write. Other
// console messages of the page (JS errors, warnings) go to stderr, labelled.
// The test can read files (testdata/) through a read-only fs served from the package directory.
// The command exits with the test's exit code, or 1 when the browser fails; Firefox (its whole
// process group) and the profile are removed on every path out, signals included.
//
// Environment:
//
//	FIREFOX_BIN                 the browser to start (default: firefox-esr, then firefox, on PATH)
//	FIREFOX_WASM_EXEC_DEBUG=1   stream Firefox's own stderr and every BiDi message to stderr
//	FIREFOX_WASM_EXEC_START=90s how long Firefox may take to open its BiDi port (slow CI machines)
//
// With -test.v it ends by naming the browser and the Vulkan device its WebGPU opened (lavapipe
// shows as "llvmpipe (…)"; Firefox's GPUAdapterInfo is empty), learnt from the Vulkan loader's
// log (VK_LOADER_DEBUG=driver, set unless already set).
//
// The test binary sees the variables named NIBBLE_* and GO* of this process (the wasm has no
// room for a whole environment: argv and env share 8 KiB in wasm_exec.js).
//
// Called as webkit_wasm_exec (a link install.sh makes to this binary), it runs the test in
// WebKitGTK's MiniBrowser instead, the Safari engine: it starts Xvfb and WebKitWebDriver on
// loopback, and since WebKitWebDriver speaks only classic WebDriver (no BiDi, so no console
// events), the page queues its output and console messages and we drain them with a script every
// pollInterval (webdriver.go, webkit.go). WEBKIT_WEBDRIVER, WEBKIT_BROWSER and WEBKIT_BROWSER_ARGS
// pick the driver, the browser and extra browser flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	// defaultStartTimeout is how long Firefox may take to listen for BiDi. A warm start here takes
	// about a second; a cold one on a 2-core CI machine with a fresh profile takes many more.
	defaultStartTimeout = 90 * time.Second
	// pollInterval is how often a WebKit page is asked for its queued output: fast enough that
	// a test's lines come as they are written, slow enough to cost the page nothing measurable.
	pollInterval = 100 * time.Millisecond
	// exitGrace is added to -test.timeout so the test's own timeout panic, with its goroutine
	// dump, gets printed before we give up on the page.
	exitGrace = 30 * time.Second
	// maxArgsEnv is what wasm_exec.js leaves for argv and env together (4096…12288 in linear
	// memory), less the 8 bytes of each pointer and the alignment padding.
	maxArgsEnv = 8192
)

// errUsage marks a mistake in how we were called, as opposed to a browser failure.
var errUsage = errors.New("usage: firefox_wasm_exec file.wasm [test flags...]")

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// run runs the wasm binary args[0] with flags args[1:] and returns its exit code.
func run(args []string) (int, error) {
	if len(args) < 1 {
		return 2, errUsage
	}
	if strings.HasPrefix(filepath.Base(os.Args[0]), "webkit") && strings.HasPrefix(args[0], "-page") {
		return runPage(args)
	}
	wasmPath, err := filepath.Abs(args[0])
	if err != nil {
		return 2, err
	}
	if _, err := os.Stat(wasmPath); err != nil {
		return 2, fmt.Errorf("test binary: %w", err)
	}
	testTimeout, err := testTimeout(args[1:])
	if err != nil {
		return 2, err
	}
	env := wasmEnv(os.Environ())
	if n := argsEnvSize(args, env); n > maxArgsEnv {
		return 2, fmt.Errorf("argv and environment take %d bytes, more than the %d wasm_exec.js has room for: unset some NIBBLE_*/GO* variables", n, maxArgsEnv)
	}
	startTimeout := defaultStartTimeout
	if s := os.Getenv("FIREFOX_WASM_EXEC_START"); s != "" {
		if startTimeout, err = time.ParseDuration(s); err != nil {
			return 2, fmt.Errorf("FIREFOX_WASM_EXEC_START=%q: %w", s, err)
		}
	}
	debug := os.Getenv("FIREFOX_WASM_EXEC_DEBUG") == "1"

	// Every way out (exit, error, timeout, signal) comes back here and runs the deferred clean-up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer stop()

	webkitMode := strings.HasPrefix(filepath.Base(os.Args[0]), "webkit")
	srv, err := serve(wasmPath, args, env, webkitMode)
	if err != nil {
		return 1, err
	}
	defer srv.Close()
	if webkitMode {
		return runWebKit(ctx, srv, args, testTimeout, startTimeout, debug)
	}

	ff, err := startFirefox(ctx, startTimeout, debug)
	if err != nil {
		return 1, err
	}
	defer ff.Stop()

	out := newOutput(srv.token)
	bidi, err := dialBiDi(ctx, ff.wsURL, out.handle, debug)
	if err != nil {
		return 1, fmt.Errorf("%w%s", err, ff.stderrTail())
	}
	defer bidi.Close()
	if err := bidi.start(ctx, srv.pageURL()); err != nil {
		return 1, fmt.Errorf("%w%s", err, ff.stderrTail())
	}

	code, err := awaitTest(ctx, srv, out, testTimeout, startTimeout, browserWatch{
		name: "firefox", exited: ff.exited, exitErr: func() error { return ff.waitErr },
		failed: bidi.failed, tail: ff.stderrTail, stopped: "firefox stopped and its profile removed",
	})
	if err == nil && verbose(args[1:]) {
		if dev := ff.VulkanDevice(); dev != "" {
			fmt.Fprintf(os.Stderr, "firefox_wasm_exec: %s, WebGPU on Vulkan device %s\n", bidi.browser, dev)
		}
	}
	return code, err
}

// browserWatch is what awaitTest watches besides the page: the browser's process (for WebKit,
// its driver's) and the connection that drives it.
type browserWatch struct {
	name    string
	exited  <-chan struct{}
	exitErr func() error
	failed  <-chan error
	tail    func() string // the browser's last output lines, for error messages
	stopped string        // what an interrupt leaves cleaned up, for its message
}

// awaitTest waits for the page to start the test and then for the test's exit code.
func awaitTest(ctx context.Context, srv *server, out *output, testTimeout, startTimeout time.Duration, b browserWatch) (int, error) {
	// A page that fails to load (or a script that fails to parse) would otherwise be noticed only
	// at the test's timeout, ten minutes later.
	select {
	case <-srv.started:
	case <-time.After(startTimeout):
		return 1, fmt.Errorf("the page %s did not start the test within %v%s", srv.pageURL(), startTimeout, b.tail())
	case <-b.exited:
		return 1, fmt.Errorf("%s exited before the test started (%v)%s", b.name, b.exitErr(), b.tail())
	case err := <-b.failed:
		return 1, fmt.Errorf("webdriver: %w%s", err, b.tail())
	case <-ctx.Done():
		return 1, errors.New("interrupted; " + b.stopped)
	}

	var deadline <-chan time.Time
	if testTimeout > 0 {
		t := time.NewTimer(testTimeout + exitGrace)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case code := <-out.exited:
		return code, nil
	case <-deadline:
		// The test's own timeout should have fired first; it cannot while Go code spins without
		// yielding, because then the page's event loop (which runs Go's timers) never turns.
		return 1, fmt.Errorf("the test did not exit within -test.timeout=%v + %v: the page hung or crashed", testTimeout, exitGrace)
	case <-b.exited:
		return 1, fmt.Errorf("%s exited before the test did (%v)%s", b.name, b.exitErr(), b.tail())
	case err := <-b.failed:
		return 1, fmt.Errorf("webdriver: %w%s", err, b.tail())
	case <-ctx.Done():
		return 1, errors.New("interrupted; " + b.stopped)
	}
}

// testTimeout finds -test.timeout among the test flags; go test always passes one (10m unless
// told otherwise) and 0 means none.
func testTimeout(flags []string) (time.Duration, error) {
	var d time.Duration
	for i := 0; i < len(flags); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(flags[i], "-"), "=")
		if name != "test.timeout" || !strings.HasPrefix(flags[i], "-") {
			continue
		}
		if !hasValue {
			if i+1 == len(flags) {
				return 0, errors.New("-test.timeout needs a value")
			}
			i++
			value = flags[i]
		}
		var err error
		if d, err = time.ParseDuration(value); err != nil {
			return 0, fmt.Errorf("-test.timeout=%s: %w", value, err)
		}
	}
	return d, nil
}

// verbose reports whether the test runs with -test.v (go test -v), when we add what we learned
// about the browser to its output.
func verbose(flags []string) bool {
	v := false
	for _, f := range flags {
		switch strings.TrimLeft(f, "-") {
		case "test.v", "test.v=true", "test.v=test2json":
			v = true
		case "test.v=false":
			v = false
		}
	}
	return v
}

// wasmEnv picks the variables the test may read: ours (NIBBLE_*) and Go's (GODEBUG, GOTRACEBACK…).
// The rest of a CI machine's environment would not fit (see maxArgsEnv) and means nothing in a page.
func wasmEnv(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && (strings.HasPrefix(k, "NIBBLE_") || strings.HasPrefix(k, "GO")) {
			env[k] = v
		}
	}
	return env
}

// argsEnvSize is the linear memory wasm_exec.js needs for argv and env: each string NUL-terminated
// and padded to 8 bytes, plus an 8-byte pointer for each and for the two terminators.
func argsEnvSize(args []string, env map[string]string) int {
	pad := func(n int) int { return (n + 7) &^ 7 }
	strs := append([]string(nil), args...)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		strs = append(strs, k+"="+env[k])
	}
	n := 8 * (len(strs) + 2)
	for _, s := range strs {
		n += pad(len(s) + 1)
	}
	return n
}
