package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// entryOf writes ts (in the given record order) as a cache entry.
func entryOf(t *testing.T, key string, ts []*quant.Tensor, order []int) []byte {
	t.Helper()
	h := &cacheHeader{Key: key}
	for _, q := range ts {
		info := format.TensorInfo{Name: q.Name, DType: format.F32, Shape: []int{q.N, q.K}, Size: int64(4 * q.N * q.K)}
		h.Tensors = append(h.Tensors, newCacheTensor(info, q.Format))
	}
	var buf bytes.Buffer
	cw, err := newCacheWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range order {
		if err := cw.tensor(ts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.end(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readEntry(b []byte, key string) (map[string]*quant.Tensor, error) {
	cr, err := newCacheReader(bytes.NewReader(b), key)
	if err != nil {
		return nil, err
	}
	out := map[string]*quant.Tensor{}
	for {
		i, q, err := cr.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if q.Name != cr.h.Tensors[i].Name {
			return out, errors.New("index and name disagree")
		}
		out[q.Name] = q
	}
}

func cacheTestTensors(t *testing.T) []*quant.Tensor {
	var ts []*quant.Tensor
	for i, f := range []quant.Format{
		quant.Q4,
		{Bits: 8, Scheme: quant.Asymmetric, GroupSize: 16, Scales: quant.ScaleF16},
		{Bits: 2, Scheme: quant.Asymmetric},
		{Bits: 16},
		F32,
	} {
		n, k := 7+i, 50+13*i
		q, err := quant.Quantize(string(rune('a'+i)), values(uint64(i), n, k), n, k, f, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, q)
	}
	return ts
}

// TestCacheEntryRoundTrip: tensors of every format come back byte for byte, whatever order
// their records were written in.
func TestCacheEntryRoundTrip(t *testing.T) {
	ts := cacheTestTensors(t)
	for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 2, 0, 3, 1}} {
		got, err := readEntry(entryOf(t, "k", ts, order), "k")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ts {
			g := got[w.Name]
			if g == nil || g.N != w.N || g.K != w.K || g.Format != w.Format ||
				!bytes.Equal(g.Data, w.Data) || !bytes.Equal(g.Scales, w.Scales) || !bytes.Equal(g.Zeros, w.Zeros) {
				t.Fatalf("tensor %q differs after the round trip", w.Name)
			}
		}
	}
}

// TestCacheEntryDamage: every truncation and every flipped byte is refused with ErrCacheEntry
// (at the latest at the end record), as are another version, another key, missing records and
// trailing bytes.
func TestCacheEntryDamage(t *testing.T) {
	ts := cacheTestTensors(t)
	good := entryOf(t, "k", ts, []int{0, 1, 2, 3, 4})
	check := func(name string, b []byte, key string) {
		t.Helper()
		if _, err := readEntry(b, key); !errors.Is(err, ErrCacheEntry) {
			t.Fatalf("%s: error %v, want ErrCacheEntry", name, err)
		}
	}
	for n := 0; n < len(good); n += 1 + n/50 {
		check("truncated", good[:n], "k")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := bytes.Clone(good)
		b[r.IntN(len(b))] ^= byte(1 + r.IntN(255))
		check("flipped", b, "k")
	}
	b := bytes.Clone(good)
	binary.LittleEndian.PutUint32(b[4:], cacheVersion+1)
	check("version", b, "k")
	check("key", good, "other")
	check("trailing", append(bytes.Clone(good), 0), "k")
	check("missing record", entryOf(t, "k", ts, []int{0, 1, 3, 4}), "k")
	check("duplicate record", entryOf(t, "k", ts, []int{0, 1, 1, 2, 3, 4}), "k")
}

// cacheRun loads m through a MemCache and returns the weights, the load and the server.
func cacheRun(t *testing.T, m *testModel, c *MemCache, opt Options) (*recorder, *Load, *memServer) {
	t.Helper()
	opt.Cache = c
	srv := &memServer{data: m.file}
	rec := newRecorder()
	l := Start(context.Background(), rec, opt, m.source(srv.open))
	if _, err := l.Result(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rec, l, srv
}

// TestCacheReload: the first load stores the entry, the second reads every tensor from it without
// opening the file, byte-identical, for safetensors and GGUF.
func TestCacheReload(t *testing.T) {
	eachFormat(t, 11, func(t *testing.T, m *testModel) {
		want := m.reference(t, DefaultPlan)
		var mc MemCache
		rec, l, srv := cacheRun(t, m, &mc, smallOpts())
		sameAsRef(t, rec, want)
		key := CacheKey(m.source(nil), smallOpts())
		if len(srv.opens) != 1 || mc.Entry(key) == nil || l.CacheErr() != nil {
			t.Fatalf("first load: %d opens, entry %d bytes, cache error %v", len(srv.opens), len(mc.Entry(key)), l.CacheErr())
		}
		if p := l.Progress(); p.CacheWritten != int64(len(mc.Entry(key))) {
			t.Errorf("progress says %d bytes written, the entry has %d", p.CacheWritten, len(mc.Entry(key)))
		}
		rec, l, srv = cacheRun(t, m, &mc, smallOpts())
		sameAsRef(t, rec, want)
		p := l.Progress()
		if len(srv.opens) != 0 || p.CacheHits != 1 || p.TensorsReady != len(m.infos) || p.ResidentBytes != p.QuantizedTotal || l.CacheErr() != nil {
			t.Fatalf("reload: %d opens, progress %v, cache error %v", len(srv.opens), p, l.CacheErr())
		}
		if got := l.Tensors(); len(got) != len(m.infos) {
			t.Fatalf("reload lists %d tensors, want %d", len(got), len(m.infos))
		}
	})
}

// TestCacheDamagedEntry: a damaged entry is never used in part; the load falls back to the network
// and its result is byte-identical. Damage in the header: the entry is rewritten. Damage in a
// later record: the tensors before it (each checked) stay, the rest streams, the entry is dropped
// and the load after writes it again.
func TestCacheDamagedEntry(t *testing.T) {
	m := makeModel(t, false, 12, stdSpecs)
	want := m.reference(t, DefaultPlan)
	key := CacheKey(m.source(nil), smallOpts())
	var mc MemCache
	cacheRun(t, m, &mc, smallOpts())
	good := bytes.Clone(mc.Entry(key))

	for _, c := range []struct {
		name    string
		damage  func([]byte) []byte
		rewrite bool
	}{
		{"header", func(b []byte) []byte { b[20] ^= 1; return b }, true},
		{"last record", func(b []byte) []byte { b[len(b)-20] ^= 1; return b }, false},
		{"truncated", func(b []byte) []byte { return b[:len(b)*2/3] }, false},
		{"version", func(b []byte) []byte { b[4]++; return b }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mc.SetEntry(key, c.damage(bytes.Clone(good)))
			rec, l, srv := cacheRun(t, m, &mc, smallOpts())
			sameAsRef(t, rec, want)
			p := l.Progress()
			if len(srv.opens) != 1 || !errors.Is(l.CacheErr(), ErrCacheEntry) || p.CacheHits != 0 || p.TensorsReady != len(stdSpecs) || p.TensorsTotal != len(stdSpecs) {
				t.Fatalf("%d opens, cache error %v, progress %v", len(srv.opens), l.CacheErr(), p)
			}
			if n := rec.live.Load(); n != int64(len(rec.tensors)) {
				t.Fatalf("%d weights alive, %d uploaded", n, len(rec.tensors))
			}
			// Records are written in the order tensors finish, so a rewritten entry is checked by
			// reading it, not by comparing bytes.
			valid := func() bool {
				got, err := readEntry(mc.Entry(key), key)
				return err == nil && len(got) == len(stdSpecs)
			}
			if valid() != c.rewrite {
				t.Fatalf("entry after the load: valid %v, want %v", valid(), c.rewrite)
			}
			if !c.rewrite {
				cacheRun(t, m, &mc, smallOpts())
				if !valid() {
					t.Fatal("the load after did not write the entry again")
				}
			}
		})
	}
}

// TestCacheStalePlan: an entry whose formats the plan would not choose now is not used, and the
// load replaces it.
func TestCacheStalePlan(t *testing.T) {
	m := makeModel(t, false, 13, stdSpecs)
	var mc MemCache
	cacheRun(t, m, &mc, smallOpts())
	q8 := func(ti *format.TensorInfo) quant.Format {
		if f := DefaultPlan(ti); f != quant.Q4 {
			return f
		}
		return quant.Format{Bits: 8, Scheme: quant.Symmetric, GroupSize: 32}
	}
	opt := smallOpts()
	opt.Plan = q8
	rec, l, srv := cacheRun(t, m, &mc, opt)
	sameAsRef(t, rec, m.reference(t, q8))
	if len(srv.opens) != 1 || !errors.Is(l.CacheErr(), ErrCacheEntry) {
		t.Fatalf("%d opens, cache error %v", len(srv.opens), l.CacheErr())
	}
	rec, _, srv = cacheRun(t, m, &mc, opt)
	sameAsRef(t, rec, m.reference(t, q8))
	if len(srv.opens) != 0 {
		t.Fatalf("the replaced entry was not used: %d opens", len(srv.opens))
	}
}

// TestCacheNothingStoredOnFailure: a file that fails its sha256 leaves no entry; a file with
// neither hash nor version is not cached at all.
func TestCacheNothingStoredOnFailure(t *testing.T) {
	m := makeModel(t, false, 14, stdSpecs)
	var mc MemCache
	srv := &memServer{data: m.file, faults: []fault{corruptAt(int64(len(m.file)) - 10)}}
	opt := smallOpts()
	opt.Cache = &mc
	rec := newRecorder()
	l := Start(context.Background(), rec, opt, m.source(srv.open))
	if _, err := l.Result(context.Background()); !errors.Is(err, ErrChecksum) {
		t.Fatalf("error %v, want ErrChecksum", err)
	}
	if e := mc.Entry(CacheKey(m.source(nil), opt)); e != nil {
		t.Fatalf("a %d-byte entry was stored for a file that failed", len(e))
	}

	src := m.source((&memServer{data: m.file}).open)
	src.SHA256 = ""
	mc = MemCache{}
	if _, err := Start(context.Background(), newRecorder(), opt, src).Result(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mc.Gets != 0 || mc.Puts != 0 {
		t.Fatalf("a file with no identity went through the cache: %d gets, %d puts", mc.Gets, mc.Puts)
	}
	src.Version = `"etag-1"`
	if CacheKey(src, opt) == "" || CacheKey(src, opt) == CacheKey(Source{Version: `"etag-2"`, Size: src.Size}, opt) {
		t.Fatal("a version must key the cache, and another version another entry")
	}
}

// TestCacheProgressive: a cache hit still makes tensors resident one by one: Wait returns for the
// first tensor while the entry is still being read.
func TestCacheProgressive(t *testing.T) {
	m := makeModel(t, false, 15, stdSpecs)
	var mc MemCache
	cacheRun(t, m, &mc, smallOpts())
	gate := &gatedCache{MemCache: &mc, release: make(chan struct{})}
	opt := smallOpts()
	opt.Cache = gate
	l := Start(context.Background(), newRecorder(), opt, m.source((&memServer{data: m.file}).open))
	var first string
	for first == "" {
		runtime.Gosched()
		first, _ = gate.first.Load().(string)
	}
	if err := l.Wait(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	for _, s := range stdSpecs {
		if s.name != first && l.IsResident(s.name) {
			t.Fatalf("tensor %q is resident before the entry was read past the gate", s.name)
		}
	}
	close(gate.release)
	if _, err := l.Result(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := l.Progress(); p.CacheHits != 1 {
		t.Fatalf("progress %v: want a cache hit", p)
	}
}

// gatedCache holds a Get's reader after the first tensor record until release is closed.
type gatedCache struct {
	*MemCache
	release chan struct{}
	first   atomic.Value // string: the tensor of the first record
}

func (g *gatedCache) Get(key string) (io.ReadCloser, error) {
	rc, err := g.MemCache.Get(key)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(rc)
	cr, err := newCacheReader(bytes.NewReader(b), key)
	if err != nil {
		return nil, err
	}
	_, q, err := cr.next()
	if err != nil {
		return nil, err
	}
	cut := cr.n // past the header and the first record
	g.first.Store(q.Name)
	return io.NopCloser(io.MultiReader(bytes.NewReader(b[:cut]), &gateReader{g.release, bytes.NewReader(b[cut:])})), nil
}

type gateReader struct {
	release <-chan struct{}
	r       io.Reader
}

func (g *gateReader) Read(p []byte) (int, error) {
	<-g.release
	return g.r.Read(p)
}
