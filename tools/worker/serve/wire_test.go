package serve

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWire sends hostile request lines over a real connection to a net/http server, as the
// native main runs it: what the Go server does before the handler must not help either.
func TestWire(t *testing.T) {
	h, _ := fixture(t)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.MaxHeaderBytes = DefaultMaxHeaderBytes
	srv.Start()
	defer srv.Close()
	for _, target := range []string{
		"/models/tiny/../../secret.txt",
		"/models/../secret.txt",
		"/models/tiny/..%2f..%2fsecret.txt",
		"/models/tiny/%2e%2e/%2e%2e/secret.txt",
		`/models/tiny/..\..\secret.txt`,
		"/models/tiny/shard.bin%00",
		"//secret.txt",
		"/../secret.txt",
		"/models/tiny/escape.bin",
		"http://other.example/models/../secret.txt",
	} {
		t.Run(target, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode < 400 || resp.StatusCode > 499 {
				t.Errorf("status %d, want 4xx", resp.StatusCode)
			}
			if strings.Contains(string(body), "SECRET") {
				t.Error("served the file outside the models directory")
			}
		})
	}
	t.Run("huge header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/models/tiny/shard.bin", nil)
		req.Header.Set("X-Big", strings.Repeat("x", 64<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
}
