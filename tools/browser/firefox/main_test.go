//go:build !(js && wasm)

package main

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestTestTimeout(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  time.Duration
	}{
		{nil, 0},
		{[]string{"-test.paniconexit0", "-test.timeout=10m0s", "-test.v=true"}, 10 * time.Minute},
		{[]string{"-test.timeout", "90s"}, 90 * time.Second},
		{[]string{"--test.timeout=0s"}, 0},
		{[]string{"-test.timeout=1s", "-test.timeout=2s"}, 2 * time.Second}, // the last one counts, as in package flag
	} {
		got, err := testTimeout(c.flags)
		if err != nil || got != c.want {
			t.Errorf("testTimeout(%q) = %v, %v; want %v", c.flags, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"-test.timeout"}, {"-test.timeout=soon"}} {
		if _, err := testTimeout(bad); err == nil {
			t.Errorf("testTimeout(%q) gave no error", bad)
		}
	}
}

func TestWasmEnvKeepsOursAndGos(t *testing.T) {
	env := wasmEnv([]string{"NIBBLE_REQUIRE_SHADER_F16=1", "GODEBUG=x=1", "HOME=/root", "PATH=/bin", "NIBBLE_EMPTY=", "BAD"})
	if len(env) != 3 || env["NIBBLE_REQUIRE_SHADER_F16"] != "1" || env["GODEBUG"] != "x=1" || env["NIBBLE_EMPTY"] != "" {
		t.Errorf("wasmEnv = %v", env)
	}
}

func TestArgsEnvSize(t *testing.T) {
	// "a\0" and "bcdefgh\0" pad to 8 each, "K=V\0" to 8; 4 pointers + 2 terminators of 8.
	if got := argsEnvSize([]string{"a", "bcdefgh"}, map[string]string{"K": "V"}); got != 3*8+5*8 {
		t.Errorf("argsEnvSize = %d, want %d", got, 3*8+5*8)
	}
}

func TestListeningLine(t *testing.T) {
	m := listeningRE.FindStringSubmatch("WebDriver BiDi listening on ws://127.0.0.1:40237")
	if m == nil || m[1] != "ws://127.0.0.1:40237" {
		t.Errorf("listeningRE match = %q", m)
	}
}

func TestOutputDemuxesInOrder(t *testing.T) {
	var stdout, stderr bytes.Buffer
	o := newOutput("tok")
	o.stdout, o.stderr = &stdout, &stderr
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, e := range []logEntry{
		{Type: "console", Method: "log", Text: "tok 1 " + b64("=== RUN   TestX\n")},
		{Type: "console", Method: "log", Text: "tok 2 " + b64("half a li")},
		{Type: "console", Method: "log", Text: "tok 2 " + b64("ne\x00\xe2\x98")},
		{Type: "console", Method: "warn", Text: "a page warning"},
		{Type: "console", Method: "log", Text: "other 1 " + b64("forged")},
		{Type: "javascript", Level: "error", Text: "tok 1 " + b64("not from log")},
		{Type: "console", Method: "log", Text: "tok 1 " + b64("--- PASS\n")},
		{Type: "console", Method: "log", Text: "tok exit 3"},
		{Type: "console", Method: "log", Text: "tok exit 0"}, // only the first counts
	} {
		o.handle(&e)
	}
	if got, want := stdout.String(), "=== RUN   TestX\n--- PASS\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	errs := stderr.String()
	if !strings.HasPrefix(errs, "half a line\x00\xe2\x98firefox console.warn: a page warning\n") ||
		!strings.Contains(errs, "firefox console.log: other 1 ") || !strings.Contains(errs, "firefox javascript error: tok 1 ") {
		t.Errorf("stderr = %q", errs)
	}
	select {
	case code := <-o.exited:
		if code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
	default:
		t.Error("no exit code")
	}
}

func TestVerbose(t *testing.T) {
	for flags, want := range map[string]bool{
		"": false, "-test.v=true": true, "-test.v": true, "-test.v=test2json": true,
		"-test.v=true -test.v=false": false, "-test.run=v": false,
	} {
		if got := verbose(strings.Fields(flags)); got != want {
			t.Errorf("verbose(%q) = %v, want %v", flags, got, want)
		}
	}
}

func TestVulkanDeviceLine(t *testing.T) {
	m := vulkanDeviceRE.FindStringSubmatch(`DRIVER:                  Using "llvmpipe (LLVM 15.0.6, 256 bits)" with driver: "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so"`)
	if m == nil || m[1] != "llvmpipe (LLVM 15.0.6, 256 bits)" || m[2] != "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" {
		t.Errorf("vulkanDeviceRE match = %q", m)
	}
}
