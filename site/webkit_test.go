//go:build !(js && wasm)

package site

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
)

// consoleQueue goes first in the demo's <head> for TestDemoInWebKit: WebKitWebDriver speaks
// classic WebDriver only, with no console events, so the page queues its console messages and
// errors for the runner's page mode to drain (the same nibbleDrain protocol as its test page).
const consoleQueue = `<script>
(() => {
  let q = [];
  globalThis.nibbleDrain = () => { const r = q; q = []; return r; };
  for (const method of ["error", "warn", "info", "log"]) {
    const orig = console[method].bind(console);
    console[method] = (...a) => { q.push({type: "console", method, level: method, text: a.map(String).join(" ")}); orig(...a); };
  }
  addEventListener("error", (e) => q.push({type: "javascript", level: "error", text: e.message + " (" + e.filename + ":" + e.lineno + ")"}));
  addEventListener("unhandledrejection", (e) => q.push({type: "javascript", level: "error", text: "unhandled rejection: " + (e.reason && e.reason.stack || e.reason)}));
})();
</script>`

// demoInWebKit waits for the demo to mount, then loads the tiny model on the cpu (what a
// browser without WebGPU and WebNN offers) and returns the page's text once it has measured.
const demoInWebKit = `(() => {
  const $ = id => document.getElementById(id);
  const s = globalThis.nibbleWebKit || (globalThis.nibbleWebKit = {});
  if (s.done) return s.done;
  const page = $("nibble-demo");
  if (s.started || !page || page.innerText.includes("Loading nibble") || !$("model")?.querySelector("option[value=tiny]")) return null;
  s.started = true;
  (async () => {
    $("model").value = "tiny"; $("backend").value = "cpu";
    $("load").click();
    await new Promise(r => setTimeout(r, 50));
    for (let i = 0; i < 1200; i++) {
      const t = $("status").textContent;
      if (t.startsWith("Measured") || t.startsWith("Error")) break;
      await new Promise(r => setTimeout(r, 50));
    }
    s.done = {status: $("status").textContent, page: page.innerText};
  })();
  return null;
})()`

// TestDemoInWebKit opens the demo page in WebKitGTK (the Safari engine; make test-webkit): it
// mounts, says honestly that WebGPU and WebNN are unavailable, measures the tiny model on the
// cpu, and logs no console error on the way.
func TestDemoInWebKit(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	runner := filepath.Join(root, ".cache/bin/webkit_wasm_exec")
	if _, err := os.Stat(runner); err != nil {
		t.Skip("no webkit_wasm_exec: run 'make deps' (tools/browser/install.sh)")
	}
	if os.Getenv("NIBBLE_WEBKIT") != "1" {
		t.Skip("set NIBBLE_WEBKIT=1 (make test-webkit)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	www := t.TempDir()
	buildSite(t, ctx, root, www)
	index := filepath.Join(www, "index.html")
	html, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	html = bytes.Replace(html, []byte("<head>"), []byte("<head>"+consoleQueue), 1)
	if err := os.WriteFile(index, html, 0o644); err != nil {
		t.Fatal(err)
	}
	models := t.TempDir()
	writeTiny(t, filepath.Join(models, "tiny"))
	st, err := store.OpenDir(models)
	if err != nil {
		t.Fatal(err)
	}
	h := serve.New(st)
	h.Site = http.FileServer(http.Dir(www))
	srv := httptest.NewServer(h)
	defer srv.Close()

	cmd := exec.CommandContext(ctx, runner, "-page", srv.URL+"/index.html", "-ready", demoInWebKit, "-wait", "120s")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if log := strings.TrimSpace(stderr.String()); log != "" {
		t.Logf("page log:\n%s", log)
	}
	if err != nil {
		t.Fatalf("webkit_wasm_exec -page: %v", err)
	}
	var got struct {
		Status string `json:"status"`
		Page   string `json:"page"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("page result %q: %v", stdout.String(), err)
	}
	t.Logf("status: %s", got.Status)
	if !strings.HasPrefix(got.Status, "Measured") {
		t.Errorf("the tiny model on the cpu did not measure: %q", got.Status)
	}
	for _, want := range []string{"WebGPU unavailable", "WebNN unavailable"} {
		i := strings.Index(got.Page, want)
		if i < 0 {
			t.Errorf("the page does not say %q:\n%s", want, got.Page)
			continue
		}
		line, _, _ := strings.Cut(got.Page[i:], "\n")
		t.Logf("the page says: %s", line)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "webkit console.error") || strings.HasPrefix(line, "webkit javascript error") {
			t.Errorf("console error: %s", line)
		}
	}
}
