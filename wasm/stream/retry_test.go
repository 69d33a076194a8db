//go:build !(js && wasm)

package stream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Issue 16: a shard shorter than its manifest says was retried 6 times with backoff (3.1 s)
// although its bytes will never come. Over HTTP the server's length contradicts the manifest at
// the first response, so nothing is retried; over a transport that says no length, a clean end
// is resumed once, and the empty answer there is final.
func TestShortNotRetried(t *testing.T) {
	m := makeModel(t, false, 31, stdSpecs)
	cut := int(m.infos[0].Offset) + 5000
	head, tail := m.file[:cut], m.file[cut:]
	var gets atomic.Int32
	files := map[string][]byte{"/a.bin": head, "/b.bin": tail[:len(tail)-100], "/model": m.file[:len(m.file)-100]}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(files[r.URL.Path]))
	}))
	defer srv.Close()
	mem := &memServer{data: tail[:len(tail)-100]}

	opt := smallOpts()
	opt.RetryDelay = 400 * time.Millisecond // any retry shows in the time
	for _, c := range []struct {
		name     string
		src      Source
		maxGets  int32
		maxOpens int
		maxTime  time.Duration
	}{
		{name: "shard over HTTP", src: JoinSource("shards",
			Shard{Name: "a.bin", Open: HTTP(nil, srv.URL+"/a.bin"), Size: int64(len(head))},
			Shard{Name: "b.bin", Open: HTTP(nil, srv.URL+"/b.bin"), Size: int64(len(tail))}),
			maxGets: 2, maxTime: 300 * time.Millisecond},
		{name: "file over HTTP", src: Source{Name: "model", Open: HTTP(nil, srv.URL+"/model"), Size: int64(len(m.file))},
			maxGets: 1, maxTime: 300 * time.Millisecond},
		{name: "shard, no length from the transport", src: JoinSource("shards",
			Shard{Name: "a.bin", Open: (&memServer{data: head}).open, Size: int64(len(head))},
			Shard{Name: "b.bin", Open: mem.open, Size: int64(len(tail))}),
			maxOpens: 2, maxTime: 2 * opt.RetryDelay},
	} {
		t.Run(c.name, func(t *testing.T) {
			gets.Store(0)
			mem.opens = nil
			start := time.Now()
			_, err := Start(context.Background(), newRecorder(), opt, c.src).Result(context.Background())
			took := time.Since(start)
			t.Logf("%v after %v, %d GETs, %d opens", err, took, gets.Load(), len(mem.opens))
			if !errors.Is(err, ErrSize) || errs.Kind(err) != errs.ErrFormat {
				t.Fatalf("error %v, want ErrSize (errs.ErrFormat)", err)
			}
			if c.maxGets > 0 && gets.Load() > c.maxGets {
				t.Errorf("%d GETs, want at most %d: a short file was retried", gets.Load(), c.maxGets)
			}
			if c.maxOpens > 0 && len(mem.opens) > c.maxOpens {
				t.Errorf("shard opened %d times (at %v), want at most %d", len(mem.opens), mem.opens, c.maxOpens)
			}
			if took > c.maxTime {
				t.Errorf("failed after %v, want under %v", took, c.maxTime)
			}
		})
	}
}

// TestErrorKinds: every way a load fails wraps one of wasm/errs's kinds.
func TestErrorKinds(t *testing.T) {
	m := makeModel(t, false, 32, stdSpecs)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/model":
			http.ServeContent(w, r, "model", time.Time{}, bytes.NewReader(m.file))
		case "/forbidden":
			http.Error(w, "no", http.StatusForbidden)
		case "/down":
			http.Error(w, "down", http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	opt := smallOpts()
	opt.MaxRetries = 1
	stall := stallAt(m.infos[0].Offset + 10)
	for _, c := range []struct {
		name string
		src  Source
		opt  func(*Options)
		want error
	}{
		{"404", Source{Name: "x", Open: HTTP(nil, srv.URL+"/nothing")}, nil, errs.ErrNotFound},
		{"403", Source{Name: "x", Open: HTTP(nil, srv.URL+"/forbidden")}, nil, errs.ErrNetwork},
		{"502", Source{Name: "x", Open: HTTP(nil, srv.URL+"/down")}, nil, errs.ErrNetwork},
		{"refused", Source{Name: "x", Open: HTTP(nil, "http://127.0.0.1:1/x")}, nil, errs.ErrNetwork},
		{"reset forever", m.source((&memServer{data: m.file, always: &[]fault{resetAt(300)}[0]}).open), nil, errs.ErrNetwork},
		{"stalled", m.source((&memServer{data: m.file, always: &stall}).open), func(o *Options) { o.StallTimeout = 20 * time.Millisecond }, errs.ErrNetwork},
		{"sha256", Source{Name: "m", Open: HTTP(nil, srv.URL+"/model"), SHA256: strings.Repeat("0", 64)}, nil, errs.ErrFormat},
		{"wrong size", Source{Name: "m", Open: HTTP(nil, srv.URL+"/model"), Size: int64(len(m.file)) + 1}, nil, errs.ErrFormat},
		{"budget", Source{Name: "m", Open: HTTP(nil, srv.URL+"/model")}, func(o *Options) { o.MemoryBudget = 10000 }, errs.ErrTooLarge},
		{"bad plan", Source{Name: "m", Open: HTTP(nil, srv.URL+"/model")}, func(o *Options) { o.Plan = func(*format.TensorInfo) quant.Format { return quant.Format{Bits: 3} } }, errs.ErrBadArgument},
		{"upload", Source{Name: "m", Open: HTTP(nil, srv.URL+"/model")}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := opt
			if c.opt != nil {
				c.opt(&o)
			}
			rec := newRecorder()
			if c.want == nil {
				// A backend's own error keeps its kind: here the device ran out of memory.
				rec.failErr = errs.ErrTooLarge
				rec.failAt = m.infos[0].Name
				c.want = errs.ErrTooLarge
			}
			_, err := Start(context.Background(), rec, o, c.src).Result(context.Background())
			if errs.Kind(err) != c.want {
				t.Fatalf("error %v: kind %v, want %v", err, errs.Kind(err), c.want)
			}
			t.Logf("%s: %v", errs.Code(err), err)
		})
	}
	// Cancelled and released loads are ErrAborted.
	ctx, cancel := context.WithCancel(context.Background())
	l := Start(ctx, newRecorder(), opt, m.source((&memServer{data: m.file, always: &stall}).open))
	cancel()
	if _, err := l.Result(context.Background()); errs.Kind(err) != errs.ErrAborted {
		t.Fatalf("cancelled: %v (kind %v)", err, errs.Kind(err))
	}
	l = Start(context.Background(), newRecorder(), opt, m.source((&memServer{data: m.file, always: &stall}).open))
	l.Release()
	if err := l.Err(); errs.Kind(err) != errs.ErrAborted {
		t.Fatalf("released: %v (kind %v)", err, errs.Kind(err))
	}
}
