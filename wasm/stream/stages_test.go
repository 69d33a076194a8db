package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Each stage of the pipeline (pipeline.go) on its own, on a load that never started: what the
// whole-load tests (load_test.go) check end to end, here one function at a time.

// stageLoad is a load that never started, with opt's defaults, uploading into rec.
func stageLoad(rec *recorder, opt Options) *Load { return newLoad(rec, opt, func() {}) }

// bigGGUFSpecs is larger than the 64 KiB the GGUF reader buffers: its header stage replays part
// of the data and reads the rest from the stream.
var bigGGUFSpecs = append(slices.Clone(ggufSpecs), spec{"output.weight", format.F16, []int{256, 256}})

// TestReadHeader: whatever the reader read ahead, the data reader yields the file from the end
// of the header, byte for byte, with offsets counted from the file's first byte.
func TestReadHeader(t *testing.T) {
	for _, c := range []struct {
		name  string
		gguf  bool
		specs []spec
	}{{"safetensors", false, stdSpecs}, {"gguf, all read ahead", true, ggufSpecs}, {"gguf, partly read ahead", true, bigGGUFSpecs}} {
		t.Run(c.name, func(t *testing.T) {
			m := makeModel(t, c.gguf, 40, c.specs)
			fr, data, err := readHeader(iotest.HalfReader(bytes.NewReader(m.file)), stageLoad(nil, Options{}).openReader)
			if err != nil {
				t.Fatal(err)
			}
			if got := fr.Tensors(); len(got) != len(m.infos) || got[0].Offset != m.infos[0].Offset {
				t.Fatalf("tensors %v, want %v", got, m.infos)
			}
			start := data.off
			if start <= 0 || start > m.infos[0].Offset {
				t.Fatalf("data starts at byte %d, the first tensor at %d", start, m.infos[0].Offset)
			}
			rest, err := io.ReadAll(data)
			if err != nil || !bytes.Equal(rest, m.file[start:]) || data.off != int64(len(m.file)) {
				t.Fatalf("data from byte %d: %d bytes (%v), offset %d at the end; want the file's %d bytes from there", start, len(rest), err, data.off, len(m.file)-int(start))
			}
		})
	}
	t.Run("reader past what it read", func(t *testing.T) {
		open := func(r io.Reader) (format.Reader, error) { return offsetReader{100}, nil }
		if _, _, err := readHeader(strings.NewReader("12345"), open); err == nil || !strings.Contains(err.Error(), "byte 100") {
			t.Fatalf("error %v, want one naming byte 100", err)
		}
	})
	t.Run("too short for a header", func(t *testing.T) {
		if _, _, err := readHeader(strings.NewReader("GGUF"), stageLoad(nil, Options{}).openReader); !errors.Is(err, format.ErrTruncated) {
			t.Fatalf("error %v, want ErrTruncated", err)
		}
	})
}

// offsetReader is a format.Reader that claims to have consumed off bytes.
type offsetReader struct{ off int64 }

func (o offsetReader) Tensors() []format.TensorInfo                { return nil }
func (o offsetReader) Next() (*format.Tensor, error)               { return nil, io.EOF }
func (o offsetReader) NextInto(buf []byte) (*format.Tensor, error) { return nil, io.EOF }
func (o offsetReader) Offset() int64                               { return o.off }

// TestCheckExtent: a tensor ending past a known size is refused, naming it; an unknown size
// refuses nothing.
func TestCheckExtent(t *testing.T) {
	infos := []format.TensorInfo{{Name: "a", Offset: 100, Size: 50}, {Name: "b", Offset: 150, Size: 50}}
	for _, c := range []struct {
		size int64
		bad  string
	}{{0, ""}, {200, ""}, {1 << 40, ""}, {199, `"b"`}, {120, `"a"`}} {
		err := checkExtent("f", infos, c.size)
		if c.bad == "" && err != nil || c.bad != "" && (!errors.Is(err, format.ErrTruncated) || !errors.Is(err, ErrSize) || !strings.Contains(err.Error(), c.bad)) {
			t.Errorf("size %d: error %v, want one naming %s", c.size, err, c.bad)
		}
	}
}

// TestPlanSource: every tensor registered with the plan's format, trusted only where the file's
// size is known, the size learned when the source gives none, and the budget and the file's size
// checked before anything is registered or allocated.
func TestPlanSource(t *testing.T) {
	m := makeModel(t, false, 41, stdSpecs)
	var quantized int64
	for _, info := range m.infos {
		n, k := shapeNK(info.Shape)
		quantized += int64(DefaultPlan(&info).TensorBytes(n, k))
	}
	end := m.infos[len(m.infos)-1].Offset + m.infos[len(m.infos)-1].Size
	for _, size := range []int64{0, int64(len(m.file))} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			l := stageLoad(nil, Options{})
			ts, gotEnd, err := l.planSource(Source{Name: "f"}, slices.Clone(m.infos), size)
			if err != nil {
				t.Fatal(err)
			}
			if gotEnd != end || len(ts) != len(m.infos) {
				t.Fatalf("%d tensors ending at %d, want %d ending at %d", len(ts), gotEnd, len(m.infos), end)
			}
			for i, tj := range ts {
				if tj.info.Name != m.infos[i].Name || tj.trusted != (size > 0) || tj.format != DefaultPlan(&m.infos[i]) || l.tensors.formats[tj.info.Name] != tj.format {
					t.Fatalf("tensor %d: %q trusted %v format %v", i, tj.info.Name, tj.trusted, tj.format)
				}
			}
			p := l.Progress()
			if p.TensorsTotal != len(m.infos) || p.QuantizedTotal != quantized || p.BytesTotal != max(size, end) {
				t.Fatalf("progress %v: want %d tensors, %d bytes quantized, %d in all", p, len(m.infos), quantized, max(size, end))
			}
			if _, _, err := l.planSource(Source{Name: "again"}, slices.Clone(m.infos[:1]), size); !errors.Is(err, format.ErrCorrupt) {
				t.Fatalf("a tensor planned twice: %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("budget", func(t *testing.T) {
		window := Options{}.withDefaults().Window
		if _, _, err := stageLoad(nil, Options{MemoryBudget: quantized + window}).planSource(Source{Name: "f"}, slices.Clone(m.infos), 0); err != nil {
			t.Fatalf("at the budget: %v", err)
		}
		if _, _, err := stageLoad(nil, Options{MemoryBudget: quantized + window - 1}).planSource(Source{Name: "f"}, slices.Clone(m.infos), 0); !errors.Is(err, ErrBudget) {
			t.Fatalf("a byte over the budget: %v, want ErrBudget", err)
		}
	})
	t.Run("past the end", func(t *testing.T) {
		l := stageLoad(nil, Options{})
		if _, _, err := l.planSource(Source{Name: "f"}, slices.Clone(m.infos), end-1); !errors.Is(err, ErrSize) || len(l.tensors.formats) != 0 {
			t.Fatalf("error %v with %d tensors registered, want ErrSize and none", err, len(l.tensors.formats))
		}
	})
}

// TestPoolFor: a pool is reused while its buffers hold a chunk and every row; a wider row gets a
// new one, and the old one's buffers leave the window.
func TestPoolFor(t *testing.T) {
	l := stageLoad(nil, Options{ChunkBytes: 1000, Window: 5000})
	p := l.poolFor(nil, []*tensorJob{{rowBytes: 10}})
	if p.size != 1000 || cap(p.slots) != 5 {
		t.Fatalf("pool of %d buffers of %d bytes, want 5 of 1000", cap(p.slots), p.size)
	}
	b, _ := p.get(context.Background())
	b, _ = p.read(strings.NewReader(strings.Repeat("x", 800)), b, 800, true)
	p.put(b)
	if w := l.mem.window.Load(); w != 1000 {
		t.Fatalf("window %d after one buffer, want 1000", w)
	}
	if l.poolFor(p, []*tensorJob{{rowBytes: 1000}}) != p {
		t.Fatal("a row that fits got a new pool")
	}
	wide := l.poolFor(p, []*tensorJob{{rowBytes: 10}, {rowBytes: 3000}})
	if wide == p || wide.size != 3000 || cap(wide.slots) != 2 || l.mem.window.Load() != 0 {
		t.Fatalf("for a 3000-byte row: pool of %d × %d bytes (same %v), window %d; want a new one of 2 × 3000, window 0", cap(wide.slots), wide.size, wide == p, l.mem.window.Load())
	}
}

// TestChunkPoolRead: a trusted read takes a whole buffer; an untrusted one past a chunk grows by
// doubling with what arrived, and a short stream costs about what it delivered.
func TestChunkPoolRead(t *testing.T) {
	l := stageLoad(nil, Options{ChunkBytes: 100, Window: 1 << 20})
	p := newChunkPool(l, 10000, 2)
	src := bytes.Repeat([]byte{7}, 10000)
	whole, _ := p.get(context.Background())
	whole, err := p.read(bytes.NewReader(src), whole, 6000, true)
	if err != nil || len(whole) != 6000 || cap(whole) != 10000 || l.mem.window.Load() != 10000 {
		t.Fatalf("trusted: %d bytes of %d capacity (%v), window %d", len(whole), cap(whole), err, l.mem.window.Load())
	}
	l.mem.window.Store(0)
	grown, _ := p.get(context.Background())
	grown, err = p.read(bytes.NewReader(src[:700]), grown, 6000, false)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(grown) != 700 || cap(grown) != 800 || l.mem.window.Load() != 800 {
		t.Fatalf("untrusted, 700 of 6000 bytes: %d bytes of %d capacity (%v), window %d; want 700 of 800 (100 doubled thrice)", len(grown), cap(grown), err, l.mem.window.Load())
	}
	grown, err = p.read(bytes.NewReader(src), grown, 500, false)
	if err != nil || len(grown) != 500 || cap(grown) != 800 {
		t.Fatalf("a read that fits: %d bytes of %d capacity (%v), want the same buffer", len(grown), cap(grown), err)
	}
	p.put(whole)
	p.put(grown)
	for range 2 {
		if b, err := p.get(context.Background()); err != nil || b == nil {
			t.Fatalf("a buffer put back: %v, %v", b == nil, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third buffer of two: %v, want to wait until the context ends", err)
	}
}

// TestGrowOut: an untrusted tensor doubles with the rows that arrived (never past its declared
// rows), keeping what was written; a trusted one is allocated whole; pending counts it.
func TestGrowOut(t *testing.T) {
	l := stageLoad(nil, Options{})
	tj := &tensorJob{info: format.TensorInfo{Name: "w"}, n: 10, k: 32, format: F32}
	var ns []int
	for _, rows := range []int{1, 2, 3, 3, 5, 9, 10} {
		if err := l.growOut(tj, rows); err != nil {
			t.Fatal(err)
		}
		if rows == 1 {
			tj.out.Data[0] = 42
		}
		ns = append(ns, tj.out.N)
	}
	if want := []int{1, 2, 4, 4, 8, 10, 10}; !slices.Equal(ns, want) || tj.out.Data[0] != 42 {
		t.Fatalf("rows held %v, want %v (first byte %d, want 42 kept)", ns, want, tj.out.Data[0])
	}
	if p := l.mem.pending.Load(); p != int64(tj.out.Bytes()) {
		t.Fatalf("pending %d, the tensor has %d bytes", p, tj.out.Bytes())
	}
	trusted := &tensorJob{info: format.TensorInfo{Name: "v"}, n: 10, k: 32, format: F32, trusted: true}
	if err := l.growOut(trusted, 1); err != nil || trusted.out.N != 10 {
		t.Fatalf("trusted: %v, %d rows", err, trusted.out.N)
	}
}

// planned reads m's header and plans it on l, as readSource does.
func planned(t *testing.T, l *Load, m *testModel, r io.Reader) ([]*tensorJob, *countReader) {
	t.Helper()
	fr, data, err := readHeader(r, l.openReader)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, err := l.planSource(Source{Name: "model"}, fr.Tensors(), int64(len(m.file)))
	if err != nil {
		t.Fatal(err)
	}
	return ts, data
}

// collectJobs runs readRows on ts and returns the jobs it sent, their buffers still the pool's
// (the pool, of poolFor's buffer size, has a buffer for each), and the buffers' size.
func collectJobs(t *testing.T, l *Load, ts []*tensorJob, data *countReader) ([]job, int, error) {
	t.Helper()
	pool := newChunkPool(l, l.poolFor(nil, ts).size, 1<<12)
	jobs := make(chan job)
	var got []job
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range jobs {
			got = append(got, j)
		}
	}()
	err := l.readRows(context.Background(), data, ts, pool, jobs)
	close(jobs)
	<-done
	return got, pool.size, err
}

// TestReadRows: every tensor arrives as jobs of whole rows, in order, each with its bytes of the
// file; a tensor already resident is read past; a short stream names the tensor it cut.
func TestReadRows(t *testing.T) {
	m := makeModel(t, false, 42, stdSpecs)
	l := stageLoad(nil, smallOpts())
	ts, data := planned(t, l, m, bytes.NewReader(m.file))
	ts[2].skip = true
	jobs, size, err := collectJobs(t, l, ts, data)
	if err != nil {
		t.Fatal(err)
	}
	next := map[*tensorJob]int{} // the next row each tensor's jobs must start at
	for _, j := range jobs {
		tj := j.t
		if tj.skip || j.row0 != next[tj] || len(j.buf) != j.rows*tj.rowBytes || len(j.buf) > size && j.rows > 1 {
			t.Fatalf("job of %q rows %d–%d (%d bytes): want rows from %d, whole rows of at most a buffer, none for a skipped tensor", tj.info.Name, j.row0, j.row0+j.rows, len(j.buf), next[tj])
		}
		off := tj.info.Offset + int64(j.row0*tj.rowBytes)
		if !bytes.Equal(j.buf, m.file[off:off+int64(len(j.buf))]) {
			t.Fatalf("job of %q rows %d–%d: bytes differ from the file's", tj.info.Name, j.row0, j.row0+j.rows)
		}
		next[tj] += j.rows
	}
	for _, tj := range ts {
		if !tj.skip && (next[tj] != tj.n || tj.out == nil || tj.out.N != tj.n || tj.left.Load() == 0) {
			t.Fatalf("%q: %d of %d rows sent, %v allocated, %d jobs counted", tj.info.Name, next[tj], tj.n, tj.out != nil, tj.left.Load())
		}
	}

	cut := ts[4].info.Offset + 37
	l = stageLoad(nil, smallOpts())
	ts, data = planned(t, l, m, bytes.NewReader(m.file[:cut]))
	if _, _, err := collectJobs(t, l, ts, data); !errors.Is(err, format.ErrTruncated) || !strings.Contains(err.Error(), fmt.Sprintf("%q", ts[4].info.Name)) {
		t.Fatalf("a stream cut inside %q: %v", ts[4].info.Name, err)
	}
}

// TestWorkersAnyOrder: the quantize stage gives every tensor exactly the bytes quantizing it whole
// gives, whatever order its jobs are done in, and hands it to the upload stage once, after its
// last job; for float rows and for GGUF blocks copied as they are.
func TestWorkersAnyOrder(t *testing.T) {
	eachFormat(t, 43, func(t *testing.T, m *testModel) {
		want := m.reference(t, DefaultPlan)
		l := stageLoad(nil, smallOpts())
		ts, data := planned(t, l, m, bytes.NewReader(m.file))
		jobs, _, err := collectJobs(t, l, ts, data)
		if err != nil {
			t.Fatal(err)
		}
		uploads := make(chan *tensorJob, len(ts)+len(jobs))
		w := worker{l: l}
		for i := len(jobs) - 1; i >= 0; i-- {
			if err := w.do(jobs[i], uploads); err != nil {
				t.Fatal(err)
			}
		}
		close(uploads)
		seen := map[string]bool{}
		for tj := range uploads {
			if seen[tj.info.Name] || tj.left.Load() != 0 {
				t.Fatalf("%q handed over twice or before its last job", tj.info.Name)
			}
			seen[tj.info.Name] = true
			g, q := tj.out, want[tj.info.Name]
			if g.Format != q.Format || !bytes.Equal(g.Data, q.Data) || !bytes.Equal(g.Scales, q.Scales) || !bytes.Equal(g.Zeros, q.Zeros) {
				t.Fatalf("%q (%v): bytes differ from the tensor quantized whole", tj.info.Name, q.Format)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%d tensors handed over, want %d", len(seen), len(want))
		}
	})
}

// TestFinishSource: the publish stage reads the file to its end, fails on a wrong hash, and
// publishes the tensors held back for the file's hash (VerifyBeforeUse).
func TestFinishSource(t *testing.T) {
	m := makeModel(t, false, 44, stdSpecs[:3])
	for _, c := range []struct {
		name string
		sum  string
		want error
	}{{"verified", m.sha256, nil}, {"wrong hash", strings.Repeat("0", 64), ErrChecksum}} {
		t.Run(c.name, func(t *testing.T) {
			l := stageLoad(newRecorder(), Options{VerifyBeforeUse: true, RetryDelay: 1})
			src := m.source((&memServer{data: m.file}).open)
			src.SHA256 = c.sum
			r := l.openSource(context.Background(), src)
			defer l.closeSource(r)
			if _, err := io.ReadFull(r, make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			l.tensorReadyLocked("a", nil, src.Name)
			l.mu.Unlock()
			if l.IsResident("a") {
				t.Fatal("a tensor of a file not yet verified is resident")
			}
			err := l.finishSource(r, src, nil)
			if c.want != nil {
				if !errors.Is(err, c.want) || l.IsResident("a") {
					t.Fatalf("error %v (resident %v), want %v and nothing published", err, l.IsResident("a"), c.want)
				}
				return
			}
			if err != nil || !l.IsResident("a") || r.off != int64(len(m.file)) {
				t.Fatalf("error %v, resident %v, %d of %d bytes read", err, l.IsResident("a"), r.off, len(m.file))
			}
		})
	}
}

// TestCacheEntryStages: openEntry turns away a miss, a damaged header (deleting it) and an entry
// for another plan (keeping it); registerEntry refuses a tensor already loaded, and
// unregisterEntry leaves the load as it was before registerEntry.
func TestCacheEntryStages(t *testing.T) {
	m := makeModel(t, false, 45, stdSpecs)
	src := m.source(nil)
	key := CacheKey(src, smallOpts())
	var mc MemCache
	cacheRun(t, m, &mc, smallOpts())
	good := bytes.Clone(mc.Entry(key))

	l := stageLoad(nil, Options{Cache: &mc})
	if _, cr := l.openEntry(src, "nbq1-none"); cr != nil || l.CacheErr() != nil {
		t.Fatalf("a miss: entry %v, cache error %v", cr != nil, l.CacheErr())
	}
	stale := stageLoad(nil, Options{Cache: &mc, Plan: func(*format.TensorInfo) quant.Format { return F32 }})
	if _, cr := stale.openEntry(src, key); cr != nil || !errors.Is(stale.CacheErr(), ErrCacheEntry) || mc.Entry(key) == nil {
		t.Fatalf("another plan: entry %v, cache error %v, kept %v", cr != nil, stale.CacheErr(), mc.Entry(key) != nil)
	}
	mc.SetEntry(key, append([]byte("XXXX"), good[4:]...))
	if _, cr := l.openEntry(src, key); cr != nil || !errors.Is(l.CacheErr(), ErrCacheEntry) || mc.Entry(key) != nil {
		t.Fatalf("a damaged header: entry %v, cache error %v, kept %v", cr != nil, l.CacheErr(), mc.Entry(key) != nil)
	}

	mc.SetEntry(key, good)
	l = stageLoad(newRecorder(), Options{Cache: &mc})
	l.prog.BytesTotal = src.Size
	before, beforeInfos := l.Progress(), l.Tensors()
	rc, cr := l.openEntry(src, key)
	if cr == nil {
		t.Fatal(l.CacheErr())
	}
	defer rc.Close()
	quantized, err := l.registerEntry(src, cr)
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Progress(); p.TensorsTotal != len(m.infos) || p.QuantizedTotal != quantized || p.BytesTotal != 0 || p.CacheHits != 1 || len(l.Tensors()) != len(m.infos) {
		t.Fatalf("registered: progress %v, %d tensors", p, len(l.Tensors()))
	}
	if _, err := l.registerEntry(src, cr); !errors.Is(err, format.ErrCorrupt) {
		t.Fatalf("registered twice: %v, want ErrCorrupt", err)
	}
	l.unregisterEntry(src, key, cr, quantized, errors.New("damaged"))
	p := l.Progress()
	if p.TensorsTotal != before.TensorsTotal || p.QuantizedTotal != before.QuantizedTotal || p.BytesTotal != before.BytesTotal || p.CacheHits != 0 ||
		len(l.Tensors()) != len(beforeInfos) || len(l.tensors.formats) != 0 || mc.Entry(key) != nil || l.CacheErr() == nil {
		t.Fatalf("unregistered: progress %v, %d tensors, %d formats, entry kept %v, cache error %v; want the load as before", p, len(l.Tensors()), len(l.tensors.formats), mc.Entry(key) != nil, l.CacheErr())
	}
}
