//go:build !(js && wasm)

package stream

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/tools/streamserve/faultserve"
	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/format"
)

// TestHTTPFaults runs the loader over real HTTP: tools/worker's server behind the fault
// injector, the net/http Opener, the server's manifest.
func TestHTTPFaults(t *testing.T) {
	m := makeModel(t, false, 11, stdSpecs)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m", "model.safetensors"), m.file, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(&faultserve.Handler{Next: serve.New(st)})
	defer srv.Close()
	base := srv.URL + "/models/m/"

	resp, err := srv.Client().Get(base + "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	man, err := format.ParseManifest(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := m.reference(t, DefaultPlan)
	first := m.infos[0].Offset
	for _, c := range []struct {
		query   string
		resumes int
		err     error
	}{
		{"", 0, nil},
		{"?reset=5", 1, nil},
		{"?reset=" + itoa(first+3333) + "&times=3", 3, nil},
		{"?stall=" + itoa(first+20000), 1, nil},
		{"?corrupt=" + itoa(first+777), 0, ErrChecksum},
	} {
		t.Run(c.query, func(t *testing.T) {
			src, err := ManifestSource(man, "model.safetensors", HTTP(srv.Client(), base+"model.safetensors"+c.query))
			if err != nil {
				t.Fatal(err)
			}
			opt := smallOpts()
			opt.StallTimeout = 200 * time.Millisecond
			rec := newRecorder()
			l := Start(context.Background(), rec, opt, src)
			got, err := l.Result(context.Background())
			if c.err != nil {
				if !errors.Is(err, c.err) || rec.live.Load() != 0 {
					t.Fatalf("error %v (want %v), %d weights alive", err, c.err, rec.live.Load())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameTensors(t, got, want)
			if p := l.Progress(); p.Resumes != c.resumes {
				t.Errorf("%d resumes, want %d", p.Resumes, c.resumes)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
