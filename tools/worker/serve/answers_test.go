package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/tools/worker/store"
)

// Issue 16: the native server answered 502 (and logged a storage error) for a path under a
// regular file, 400 where the README says 404, and 416 for a last byte of more than 18 digits
// where RFC 9110 §14.1.2 says the range runs to the end of the file.
func TestAnswersIssue16(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "m"), 0o755)
	os.WriteFile(filepath.Join(root, "readme.txt"), []byte("not a model"), 0o644)
	os.WriteFile(filepath.Join(root, "m", "w.bin"), []byte("0123456789"), 0o644)
	d, err := store.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := New(d)
	var logged []string
	h.Logf = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	for _, c := range []struct {
		target, rng string
		status      int
		body        string
	}{
		{"/models/readme.txt/x", "", 404, ""},
		{"/models/readme.txt/manifest.json", "", 404, ""},
		{"/models/m/w.bin/x", "", 404, ""},
		{"/models/m/", "", 404, ""},
		{"/models//w.bin", "", 404, ""},
		{"/models/m/w.bin", "bytes=0-" + strings.Repeat("9", 21), 206, "0123456789"},
		{"/models/m/w.bin", "bytes=4-" + strings.Repeat("9", 40), 206, "456789"},
		{"/models/m/w.bin", "bytes=-" + strings.Repeat("9", 21), 206, "0123456789"},
		{"/models/m/w.bin", "bytes=" + strings.Repeat("9", 21) + "-", 416, ""},
	} {
		var hdr []string
		if c.rng != "" {
			hdr = []string{"Range", c.rng}
		}
		rec := do(h, "GET", c.target, hdr...)
		if rec.Code != c.status || c.body != "" && rec.Body.String() != c.body {
			t.Errorf("GET %s %s: %d %q, want %d %q", c.target, c.rng, rec.Code, rec.Body.String(), c.status, c.body)
		}
	}
	if len(logged) > 0 {
		t.Errorf("client mistakes logged as storage errors: %q", logged)
	}
}
