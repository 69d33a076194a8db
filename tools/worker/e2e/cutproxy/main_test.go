package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestCuts: the first two GETs of the model are cut after n body bytes (the second one a ranged
// resume), a third passes whole with the upstream's 206 and headers, and the joined bytes are the
// file; other paths and methods are never cut.
func TestCuts(t *testing.T) {
	file := make([]byte, 1<<20+77)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range file {
		file[i] = byte(r.Uint32())
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "m.safetensors", time.Unix(0, 0), bytes.NewReader(file))
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	const n = 300_000
	p := newProxy(u, n, 2, ".safetensors")
	px := httptest.NewServer(p)
	defer px.Close()

	get := func(path string, off int64) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, px.URL+path, nil)
		if off > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
			req.Header.Set("If-Range", `"v1"`)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	if _, b, err := get("/models/m/other.bin", 0); err != nil || len(b) != len(file) {
		t.Fatalf("another path: %d bytes, %v; want it whole", len(b), err)
	}
	var joined []byte
	for i, want := range []struct {
		status int
		cut    bool
	}{{200, true}, {206, true}, {206, false}} {
		resp, b, err := get("/models/m/m.safetensors", int64(len(joined)))
		if resp.StatusCode != want.status || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("ETag") != `"v1"` {
			t.Fatalf("request %d: status %d, headers %v", i, resp.StatusCode, resp.Header)
		}
		if want.cut && (err == nil || len(b) != n) {
			t.Fatalf("request %d: %d bytes, err %v; want a cut after %d", i, len(b), err, n)
		}
		if !want.cut && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, file) {
		t.Fatalf("joined %d bytes differ from the %d-byte file", len(joined), len(file))
	}
	if got := p.made.Load(); got != 2 {
		t.Fatalf("the proxy counts %d cuts, want 2", got)
	}
}

// TestResetsAndRate: with -reset-every every GET of the model is reset (a connection-reset
// error, not a clean short body) after n bytes, however many there are; the resumed pieces join
// into the file, and the shared -rate holds the whole transfer to the link's pace.
func TestResetsAndRate(t *testing.T) {
	file := make([]byte, 1<<20+77)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range file {
		file[i] = byte(r.Uint32())
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "m.safetensors", time.Unix(0, 0), bytes.NewReader(file))
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	const n, rate = 300_000, 8 << 20
	p := newProxy(u, 1, 0, ".safetensors")
	p.resetEvery = n
	p.pace = &pacer{rate: rate}
	px := httptest.NewServer(p)
	defer px.Close()

	start := time.Now()
	var joined []byte
	resets := 0
	for len(joined) < len(file) && resets < 10 {
		req, _ := http.NewRequest(http.MethodGet, px.URL+"/models/m/m.safetensors", nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(joined)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		joined = append(joined, b...)
		if err != nil {
			if !strings.Contains(err.Error(), "reset") || len(b) != n {
				t.Fatalf("request %d: %d bytes, then %v; want a reset after %d", resets, len(b), err, n)
			}
			resets++
		}
	}
	elapsed := time.Since(start)
	if !bytes.Equal(joined, file) {
		t.Fatalf("joined %d bytes differ from the %d-byte file", len(joined), len(file))
	}
	if want := len(file) / n; resets != want || p.made.Load() != int64(want) {
		t.Fatalf("%d resets seen, %d made by the proxy; want %d", resets, p.made.Load(), want)
	}
	// The first write goes at once, so the floor is a little under size/rate.
	if floor := time.Duration(float64(len(file)-64<<10) / rate * float64(time.Second)); elapsed < floor {
		t.Fatalf("%d bytes in %v at %d B/s: want at least %v", len(file), elapsed, rate, floor)
	}
}
