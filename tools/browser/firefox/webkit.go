//go:build !(js && wasm)

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// webkit is one Xvfb display and one WebKitWebDriver on it; the driver starts the browser
// (MiniBrowser, WebKitGTK's own) when a session opens. WebKitGTK has no headless mode in Debian's
// build, hence the virtual display.
type webkit struct {
	xvfb, driver *proc
	display      string // ":99"
	base         string // http://127.0.0.1:port of the driver
}

// proc is a child process in its own process group, with its last output lines kept.
type proc struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when it has exited; waitErr is set then
	waitErr error

	mu   sync.Mutex
	tail []string
}

// startProc starts cmd in its own process group (so stop takes its children: the driver's
// browser and web processes) with Pdeathsig, so nothing outlives us if we are killed outright.
// onLine, if set, sees every output line.
func startProc(name string, cmd *exec.Cmd, debug bool, onLine func(string)) (*proc, error) {
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if debug {
				fmt.Fprintf(os.Stderr, "%s: %s\n", name, line)
			}
			if onLine != nil {
				onLine(line)
			}
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 40 {
				p.tail = p.tail[len(p.tail)-40:]
			}
			p.mu.Unlock()
		}
		io.Copy(io.Discard, out)
		out.Close()
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) outputTail() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tail) == 0 {
		return ""
	}
	return "\n" + p.name + " output (last lines):\n\t" + strings.Join(p.tail, "\n\t")
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// startWebKit starts Xvfb on a display it picks itself (-displayfd: two runs in parallel never
// race for one) and WebKitWebDriver on a free loopback port, and waits until the driver answers.
func startWebKit(ctx context.Context, startTimeout time.Duration, debug bool) (*webkit, error) {
	driverBin := os.Getenv("WEBKIT_WEBDRIVER")
	if driverBin == "" {
		driverBin = "WebKitWebDriver"
	}
	driverPath, err := exec.LookPath(driverBin)
	if err != nil {
		return nil, fmt.Errorf("%s not found: run 'make deps' (tools/browser/install.sh installs Debian's webkit2gtk-driver) or set WEBKIT_WEBDRIVER", driverBin)
	}
	xvfbPath, err := exec.LookPath("Xvfb")
	if err != nil {
		return nil, errors.New("Xvfb not found: run 'make deps' (tools/browser/install.sh installs Debian's xvfb)")
	}
	wk := &webkit{}
	ok := false
	defer func() {
		if !ok {
			wk.Stop()
		}
	}()
	deadline := time.After(startTimeout)
	if err := wk.startXvfb(ctx, xvfbPath, deadline, startTimeout, debug); err != nil {
		return nil, err
	}
	if err := wk.startDriver(ctx, driverPath, deadline, startTimeout, debug); err != nil {
		return nil, err
	}
	ok = true
	return wk, nil
}

// startXvfb starts Xvfb and sets wk.display to the display it names on fd 3.
func (wk *webkit) startXvfb(ctx context.Context, xvfbPath string, deadline <-chan time.Time, startTimeout time.Duration, debug bool) error {
	displayR, displayW, err := os.Pipe()
	if err != nil {
		return err
	}
	xcmd := exec.Command(xvfbPath, "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset")
	xcmd.ExtraFiles = []*os.File{displayW}
	wk.xvfb, err = startProc("Xvfb", xcmd, debug, nil)
	displayW.Close()
	if err != nil {
		displayR.Close()
		return err
	}
	display := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(displayR).ReadString('\n')
		displayR.Close()
		display <- strings.TrimSpace(line)
	}()
	select {
	case d := <-display:
		if _, err := strconv.Atoi(d); err != nil {
			return fmt.Errorf("Xvfb did not name its display (%q)%s", d, wk.xvfb.outputTail())
		}
		wk.display = ":" + d
		return nil
	case <-wk.xvfb.exited:
		return fmt.Errorf("Xvfb exited while starting (%v)%s", wk.xvfb.waitErr, wk.xvfb.outputTail())
	case <-deadline:
		return fmt.Errorf("Xvfb did not start within %v%s", startTimeout, wk.xvfb.outputTail())
	case <-ctx.Done():
		return errors.New("interrupted while Xvfb was starting")
	}
}

// startDriver starts WebKitWebDriver on wk.display and waits until its /status answers 200;
// it sets wk.base.
func (wk *webkit) startDriver(ctx context.Context, driverPath string, deadline <-chan time.Time, startTimeout time.Duration, debug bool) error {
	// WebKitWebDriver cannot pick its own port and say which; a port freed just before has a
	// small window in which another process could take it, and then the driver exits and we say so.
	port, err := freePort()
	if err != nil {
		return err
	}
	dcmd := exec.Command(driverPath, "--host=127.0.0.1", "--port="+strconv.Itoa(port))
	dcmd.Env = append(os.Environ(), "DISPLAY="+wk.display,
		// No accessibility bus or GPU process to look for on a bare CI machine.
		"NO_AT_BRIDGE=1", "WEBKIT_DISABLE_COMPOSITING_MODE=1")
	wk.driver, err = startProc("WebKitWebDriver", dcmd, debug, nil)
	if err != nil {
		return err
	}
	wk.base = "http://127.0.0.1:" + strconv.Itoa(port)
	for {
		ctx2, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(ctx2, "GET", wk.base+"/status", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-wk.driver.exited:
			return fmt.Errorf("WebKitWebDriver exited while starting (%v)%s", wk.driver.waitErr, wk.driver.outputTail())
		case <-deadline:
			return fmt.Errorf("WebKitWebDriver did not answer on %s within %v (a slow machine? set FIREFOX_WASM_EXEC_START=3m)%s", wk.base, startTimeout, wk.driver.outputTail())
		case <-ctx.Done():
			return errors.New("interrupted while WebKitWebDriver was starting")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// capabilities asks for WebKitGTK's MiniBrowser in automation mode. WEBKIT_BROWSER_ARGS adds
// MiniBrowser flags (space-separated), e.g. "--enable-webgpu" style feature switches when
// probing what this build can turn on.
func (wk *webkit) capabilities() map[string]any {
	opts := map[string]any{"args": []string{"--automation"}}
	if b := os.Getenv("WEBKIT_BROWSER"); b != "" {
		opts["binary"] = b
	}
	if a := strings.Fields(os.Getenv("WEBKIT_BROWSER_ARGS")); len(a) > 0 {
		opts["args"] = append([]string{"--automation"}, a...)
	}
	return map[string]any{"webkitgtk:browserOptions": opts}
}

func (wk *webkit) outputTail() string {
	return wk.driver.outputTail()
}

// Stop kills the driver's process group (browser and web processes with it), then Xvfb. Safe to
// call twice and on a half-started webkit.
func (wk *webkit) Stop() {
	wk.driver.stop()
	wk.xvfb.stop()
}

// runWebKit runs the test served by srv in WebKitGTK and returns its exit code: the same steps
// and the same ways out as run's Firefox path, with polling in place of BiDi events.
func runWebKit(ctx context.Context, srv *server, args []string, testTimeout, startTimeout time.Duration, debug bool) (int, error) {
	labelLogs = "webkit"
	wk, err := startWebKit(ctx, startTimeout, debug)
	if err != nil {
		return 1, err
	}
	defer wk.Stop()

	wd := &classicConn{base: wk.base, debug: debug, client: &http.Client{}}
	if err := wd.start(ctx, wk.capabilities(), srv.pageURL()); err != nil {
		return 1, fmt.Errorf("%w%s", err, wk.outputTail())
	}
	defer wd.Close()

	out := newOutput(srv.token)
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	failed := make(chan error, 1)
	go wd.poll(pollCtx, pollInterval, out.handle, failed)

	code, err := awaitTest(ctx, srv, out, testTimeout, startTimeout, browserWatch{
		name: "WebKitWebDriver", exited: wk.driver.exited, exitErr: func() error { return wk.driver.waitErr },
		failed: failed, tail: wk.outputTail, stopped: "WebKit and Xvfb stopped",
	})
	if err == nil && verbose(args[1:]) {
		fmt.Fprintf(os.Stderr, "webkit_wasm_exec: %s on Xvfb %s\n", wd.browser, wk.display)
	}
	return code, err
}

// runPage is the page mode (webkit_wasm_exec -page URL -ready EXPR [-wait DURATION]) for tests
// of a whole page, such as the demo, rather than a test binary: it opens url in WebKit, prints
// every log entry the page queues for nibbleDrain (the page must queue them, as runner.js does)
// to stderr, labelled, and evaluates the expression EXPR every pollInterval until it is neither
// null nor false; then it prints that value as JSON to stdout and exits 0. Waiting longer than
// DURATION (default 2m) exits 1.
func runPage(args []string) (int, error) {
	fs := flag.NewFlagSet("webkit_wasm_exec -page", flag.ContinueOnError)
	url := fs.String("page", "", "the page to open")
	ready := fs.String("ready", "true", "a JavaScript expression: done when neither null nor false; printed as JSON")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for -ready")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	labelLogs = "webkit"
	debug := os.Getenv("FIREFOX_WASM_EXEC_DEBUG") == "1"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	wk, err := startWebKit(ctx, defaultStartTimeout, debug)
	if err != nil {
		return 1, err
	}
	defer wk.Stop()
	wd := &classicConn{base: wk.base, debug: debug, client: &http.Client{}}
	if err := wd.start(ctx, wk.capabilities(), *url); err != nil {
		return 1, fmt.Errorf("%w%s", err, wk.outputTail())
	}
	defer wd.Close()
	script := "const v = (" + *ready + "); return v === undefined ? null : v;"
	for {
		entries, err := wd.drain(ctx)
		if err != nil {
			return 1, fmt.Errorf("%w%s", err, wk.outputTail())
		}
		for i := range entries {
			printLogEntry(os.Stderr, &entries[i])
		}
		raw, err := wd.call(ctx, "POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": script, "args": []any{}})
		if err != nil {
			return 1, fmt.Errorf("-ready: %w", err)
		}
		if s := string(raw); s != "null" && s != "false" {
			// One more drain: what the page logged on its way to ready.
			if entries, err := wd.drain(ctx); err == nil {
				for i := range entries {
					printLogEntry(os.Stderr, &entries[i])
				}
			}
			fmt.Println(s)
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return 1, fmt.Errorf("-ready %q was not met within %v", *ready, *wait)
		case <-time.After(pollInterval):
		}
	}
}
