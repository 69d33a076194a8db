// Command cutproxy is the faulty network of tools/worker/e2e.sh: a reverse proxy in front of the
// Worker under wrangler dev that cuts the connection in the middle of a model file's body, so
// the browser's loader has to resume (Range + If-Range) against the Worker itself.
//
// Every request is passed to -upstream as it came (Range, If-Range, Origin and the Worker's CORS
// answer untouched: a resumed request reaches the Worker's 206 path). The first -cuts GET
// responses for a path ending in -match are aborted after -cut-after body bytes: the proxy
// flushes what it sent and drops the connection mid-body (net/http closes it without finishing
// a Content-Length body), which fetch reports as a network error on the body stream. Each cut
// counts from the first byte of its own response: a resumed request (Range: bytes=r-) is cut
// at file byte r+N. The log names each cut's file offset.
//
// It listens on -addr (port 0: a free one) and, once listening, writes its base URL to
// -url-file, which is how the script knows it is ready. One line per request on stderr; on
// SIGTERM/SIGINT it prints how many cuts it made and exits.
//
// The stress test (tools/worker/stress.sh) makes the network slow and unreliable for the whole
// load instead: -rate paces every matching body through one shared link (several pages then
// split it, as tabs behind one slow connection do), and -reset-every resets every matching GET
// response, however many, after that many body bytes with a TCP RST (SO_LINGER 0), which fetch
// reports as ERR_CONNECTION_RESET rather than a short body.
//
//	cutproxy -upstream http://127.0.0.1:8787 -cut-after 9000000 -cuts 2 -url-file proxy.url
//	cutproxy -upstream http://127.0.0.1:8787 -rate 16000000 -reset-every 4000000 -url-file proxy.url
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nibble-ml/nibble/tools/streamserve/faultserve"
)

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("cutproxy: ")
	upstream := flag.String("upstream", "", "base URL of the Worker (wrangler dev), e.g. http://127.0.0.1:8787")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0: a free port)")
	urlFile := flag.String("url-file", "", "write the proxy's base URL here once it listens")
	cutAfter := flag.Int64("cut-after", 4<<20, "body bytes of a response to send before cutting the connection")
	cuts := flag.Int("cuts", 1, "how many GET responses of a matching path to cut; later ones pass whole")
	match := flag.String("match", ".safetensors", "cut only GETs whose path ends with this")
	rate := flag.Int64("rate", 0, "bytes per second that all matching response bodies share (0: unlimited)")
	resetEvery := flag.Int64("reset-every", 0, "reset every matching GET response after this many body bytes (0: never)")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || u.Scheme == "" || u.Host == "" {
		log.Fatalf("-upstream %q: want an absolute URL such as http://127.0.0.1:8787", *upstream)
	}
	if *cutAfter <= 0 {
		log.Fatal("-cut-after must be positive")
	}
	if *rate < 0 || *resetEvery < 0 {
		log.Fatal("-rate and -reset-every must not be negative")
	}
	p := newProxy(u, *cutAfter, *cuts, *match)
	p.resetEvery = *resetEvery
	if *rate > 0 {
		p.pace = &pacer{rate: float64(*rate)}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	if *urlFile != "" {
		// Written whole and renamed, so a reader never sees half a URL.
		tmp := *urlFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(base+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *urlFile); err != nil {
			log.Fatal(err)
		}
	}
	if p.resetEvery > 0 {
		log.Printf("listening on %s → %s; resetting every GET response of *%s after %d bytes, %d bytes/s shared (0: unlimited)", base, u, *match, p.resetEvery, *rate)
	} else {
		log.Printf("listening on %s → %s; cutting the first %d GET responses of *%s after %d bytes", base, u, *cuts, *match, *cutAfter)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Printf("%v: made %d cuts, %d requests", s, p.made.Load(), p.requests.Load())
	case err := <-done:
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

func newProxy(upstream *url.URL, cutAfter int64, cuts int, match string) *proxy {
	p := &proxy{cutAfter: cutAfter, cuts: int64(cuts), match: match}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		// Pass bytes on as they arrive: the point is a cut in the middle of a streaming body.
		FlushInterval: -1,
		ErrorLog:      log.Default(),
	}
	return p
}

type proxy struct {
	rp       *httputil.ReverseProxy
	cutAfter int64
	cuts     int64
	match    string
	// resetEvery > 0 replaces cuts: every matching GET is reset after that many body bytes.
	resetEvery int64
	pace       *pacer // nil: unlimited

	mu       sync.Mutex
	matched  int64 // GETs of a matching path so far
	made     atomic.Int64
	requests atomic.Int64
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	desc := fmt.Sprintf("%s %s", r.Method, r.URL.Path)
	if v := r.Header.Get("Range"); v != "" {
		desc += " Range: " + v
	}
	if v := r.Header.Get("If-Range"); v != "" {
		desc += " If-Range: " + v
	}
	cut := false
	cw := &countWriter{ResponseWriter: w, start: faultserve.RangeStart(r)}
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, p.match) {
		p.mu.Lock()
		p.matched++
		cut = p.matched <= p.cuts
		p.mu.Unlock()
		cw.pace = p.pace
		if p.resetEvery > 0 {
			cut = false
			cw.limit, cw.reset = p.resetEvery, true
		}
	}
	if cut {
		cw.limit = p.cutAfter
	}
	// A cut leaves ReverseProxy's upstream body unread and unclosed: cancelling the request
	// makes the transport drop that connection to the Worker too.
	ctx, cancel := context.WithCancel(r.Context())
	defer func() {
		cancel()
		v := recover()
		if v == nil {
			log.Printf("%s → %d, %d bytes", desc, cw.status, cw.n)
			return
		}
		if errors.Is(asError(v), errCut) {
			n := p.made.Add(1)
			what := "CUT"
			if cw.reset {
				what = "RESET"
			}
			log.Printf("%s → %d, %s %d after %d bytes, at byte %d of the file", desc, cw.status, what, n, cw.n, cw.start+cw.n)
		} else {
			log.Printf("%s → %d, aborted after %d bytes: %v", desc, cw.status, cw.n, v)
		}
		// net/http closes the connection without finishing the body and logs nothing.
		panic(http.ErrAbortHandler)
	}()
	p.rp.ServeHTTP(cw, r.WithContext(ctx))
}

var errCut = errors.New("cut on purpose")

func asError(v any) error {
	if err, ok := v.(error); ok {
		return err
	}
	return fmt.Errorf("%v", v)
}

// countWriter counts the body bytes written and, with a limit, cuts the response there.
type countWriter struct {
	http.ResponseWriter
	status int
	start  int64 // file offset of the first body byte (Range), for the log
	n      int64
	limit  int64 // 0: no cut
	reset  bool  // cut with a TCP RST rather than a close
	pace   *pacer
}

func (c *countWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	// Only a body larger than the limit is cut: a short answer (an error page, a small range)
	// passes whole.
	if c.limit > 0 && c.n+int64(len(b)) > c.limit {
		k := c.limit - c.n
		c.pace.wait(k)
		m, err := c.ResponseWriter.Write(b[:k])
		c.n += int64(m)
		if err != nil {
			return m, err
		}
		rc := http.NewResponseController(c.ResponseWriter)
		rc.Flush()
		if c.reset {
			// Hijack flushes what the handler wrote; a zero linger makes Close send RST.
			if conn, _, err := rc.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				conn.Close()
			}
		}
		panic(errCut)
	}
	c.pace.wait(int64(len(b)))
	m, err := c.ResponseWriter.Write(b)
	c.n += int64(m)
	return m, err
}

// Flush lets ReverseProxy's FlushInterval reach the real writer.
func (c *countWriter) Flush() { http.NewResponseController(c.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController find the real writer.
func (c *countWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// pacer is one slow link that every paced body shares: each write reserves its bytes' time on
// the link, in arrival order, and waits for it. An idle link banks no credit, so a burst after a
// pause is paced too.
type pacer struct {
	rate float64 // bytes per second

	mu   sync.Mutex
	next time.Time // when the link is free again
}

func (p *pacer) wait(n int64) {
	if p == nil || n <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = at.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	p.mu.Unlock()
	time.Sleep(time.Until(at))
}
