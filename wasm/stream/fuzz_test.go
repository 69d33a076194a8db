package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// The stream pipeline's fuzz targets (make fuzz-stream runs each for a measured time):
//   - FuzzLoadFile: any bytes as a model file, its size known or not: the load ends, in success
//     or in an error of some errs kind, having allocated about what the file could justify.
//   - FuzzLoadFaults: a real model cut into shards at any offsets, every connection broken at
//     any byte (reset, or a clean early end where a size makes it detectable), delivered in
//     pieces of any size, quantized in chunks of any size by any number of workers: the result
//     is byte-identical to quantizing each tensor whole.
//   - FuzzConfinedURL: no path a model.json can name resolves, as a browser or a lax server
//     would read it, outside the model's directory.

// FuzzLoadFile: hostile files through the whole loader.
func FuzzLoadFile(f *testing.F) {
	for _, c := range hostileCases() {
		f.Add(c.build(), true)
	}
	f.Add(fuzzModels(f).st.file, false)
	f.Add(fuzzModels(f).gguf.file, true)
	f.Fuzz(func(t *testing.T, file []byte, sizeKnown bool) {
		src := Source{Name: "fuzz", Open: (&memServer{data: file}).open}
		if sizeKnown {
			src.Size = int64(len(file))
		}
		opt := Options{ChunkBytes: 4096, Window: 16 << 10, Workers: 2, RetryDelay: 1, StallTimeout: -1, MaxRetries: 2}
		rec := newRecorder()
		var err error
		n := allocated(func() { _, err = Start(context.Background(), rec, opt, src).Result(context.Background()) })
		if err != nil && errs.Kind(err) == nil {
			t.Fatalf("error of no kind: %v", err)
		}
		// Float32 kept from one byte per weight (I8, U8, BOOL) is the largest growth: 4×; the
		// Q4_0 blocks a plan decodes to float32 are 7.1×. The rest is the fixed cost of a load.
		if bound := uint64(4<<20 + 16*len(file)); n > bound {
			t.Fatalf("allocated %d bytes for a %d-byte file (bound %d): %v", n, len(file), bound, err)
		}
		if err != nil && rec.live.Load() != 0 {
			t.Fatalf("%d weights alive after %v", rec.live.Load(), err)
		}
	})
}

type fuzzModel struct {
	file []byte
	want map[string]*quant.Tensor
	sum  string
}

// fuzzModels returns a small safetensors model and a small GGUF one, with their references.
var fuzzModels = func() func(testing.TB) struct{ st, gguf fuzzModel } {
	var once sync.Once
	var ms struct{ st, gguf fuzzModel }
	return func(t testing.TB) struct{ st, gguf fuzzModel } {
		once.Do(func() {
			for i, g := range []bool{false, true} {
				specs := []spec{
					{"embed", format.F16, []int{40, 64}},
					{"bias", format.F32, []int{64}},
					{"up", format.BF16, []int{24, 100}},
					{"wide", format.F16, []int{2, 1500}},
				}
				if g {
					specs = []spec{
						{"tok", format.Q4_0, []int{32, 64}},
						{"q", format.Q8_0, []int{24, 64}},
						{"norm", format.F32, []int{64}},
						{"up", format.F16, []int{40, 64}},
					}
				}
				m := makeModel(t, g, 51, specs)
				fm := fuzzModel{file: m.file, want: m.reference(t, DefaultPlan), sum: m.sha256}
				if i == 0 {
					ms.st = fm
				} else {
					ms.gguf = fm
				}
			}
		})
		return ms
	}
}()

// FuzzLoadFaults: chunk boundaries, shard boundaries and Range resume offsets chosen by the
// fuzzer never change a byte of the result.
func FuzzLoadFaults(f *testing.F) {
	f.Add(false, uint16(1000), uint8(3), true, []byte{0x10, 0x80, 0x03, 0x44, 0xff, 0x00, 0x01, 0x7f})
	f.Add(true, uint16(64), uint8(1), false, []byte{0x01, 0x02, 0x03, 0x04})
	f.Add(false, uint16(4096), uint8(2), true, []byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})
	f.Add(true, uint16(333), uint8(2), true, []byte("\xc8\x05\x81\x00\x44\x90\x13\x37\x99\x11\x22\x33\x44\x55"))
	f.Fuzz(func(t *testing.T, gguf bool, chunk uint16, workers uint8, sizes bool, sched []byte) {
		ms := fuzzModels(t)
		m := ms.st
		if gguf {
			m = ms.gguf
		}
		// The schedule: the first byte picks up to three shard cuts, then each pair of bytes
		// is one connection's fault, in order across all shards.
		var cuts []int
		if len(sched) > 0 {
			nc := int(sched[0] % 4)
			sched = sched[1:]
			for i := 0; i < nc && len(sched) >= 2; i++ {
				cuts = append(cuts, 1+int(uint16(sched[0])<<8|uint16(sched[1]))%(len(m.file)-1))
				sched = sched[2:]
			}
		}
		cuts = uniqueSorted(cuts)
		faults := &faultPlan{sched: sched, clean: sizes}
		var shards []Shard
		prev := 0
		for i, c := range append(cuts, len(m.file)) {
			part := m.file[prev:c]
			prev = c
			s := Shard{Name: fmt.Sprintf("shard%d", i), Open: (&fuzzServer{data: part, plan: faults}).open}
			if sizes {
				s.Size = int64(len(part))
				sum := sha256.Sum256(part)
				s.SHA256 = hex.EncodeToString(sum[:])
			}
			shards = append(shards, s)
		}
		src := JoinSource("fuzz", shards...)
		if len(shards) == 1 && sizes {
			src = Source{Name: "fuzz", Open: shards[0].Open, Size: int64(len(m.file)), SHA256: m.sum}
		}
		opt := Options{ChunkBytes: 64 + int(chunk)%4096, Workers: 1 + int(workers)%3, RetryDelay: 1, StallTimeout: -1, MaxRetries: 3}
		opt.Window = 4 * int64(opt.ChunkBytes)
		got, err := Start(context.Background(), newRecorder(), opt, src).Result(context.Background())
		if err != nil {
			t.Fatalf("cuts %v, sizes %v: %v", cuts, sizes, err)
		}
		sameTensors(t, got, m.want)
	})
}

func uniqueSorted(xs []int) []int {
	var out []int
	seen := map[int]bool{}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// faultPlan hands each new connection (of any shard) its fault: break after 1 + b0·8 + b1%8
// bytes, by a reset or, when clean is allowed (sizes known, so an early end is detectable), a
// clean end; no fault once the schedule is spent. Every faulty connection delivers at least one
// byte, so the loader's retries always make progress.
type faultPlan struct {
	mu    sync.Mutex
	sched []byte
	clean bool
}

func (p *faultPlan) next() (after int64, cleanEnd bool, seed uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sched) < 2 {
		return -1, false, 1
	}
	b0, b1 := p.sched[0], p.sched[1]
	p.sched = p.sched[2:]
	h := fnv.New64a()
	h.Write([]byte{b0, b1})
	return 1 + int64(b0)*8 + int64(b1%8), p.clean && b1&0x80 != 0, h.Sum64()
}

type fuzzServer struct {
	data []byte
	plan *faultPlan
}

func (s *fuzzServer) open(_ context.Context, off int64) (io.ReadCloser, error) {
	if off > int64(len(s.data)) || off == int64(len(s.data)) && off > 0 {
		return nil, Permanent(fmt.Errorf("416 at %d: %w", off, ErrSize))
	}
	after, clean, seed := s.plan.next()
	return &fuzzConn{data: s.data, off: off, end: off + after, ends: after >= 0, clean: clean, rng: rand.New(rand.NewPCG(seed, uint64(off)))}, nil
}

type fuzzConn struct {
	data     []byte
	off, end int64
	ends     bool // breaks at end
	clean    bool // by a clean EOF, else a reset
	rng      *rand.Rand
	mu       sync.Mutex
	closed   bool
}

func (c *fuzzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errors.New("read on closed connection")
	}
	stop := int64(len(c.data))
	if c.ends && c.end < stop {
		stop = c.end
		if c.off == stop {
			if c.clean {
				return 0, io.EOF
			}
			return 0, errReset
		}
	}
	if c.off >= stop {
		return 0, io.EOF
	}
	n := min(int64(len(p)), stop-c.off, int64(1+c.rng.IntN(3000)))
	copy(p, c.data[c.off:c.off+n])
	c.off += n
	return int(n), nil
}

func (c *fuzzConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// FuzzConfinedURL: whatever a model.json names, an accepted path stays inside the model's
// directory however it is read: as Go resolved it, and as a browser or a lax server might
// (percent-encoded dots and slashes decoded, backslashes taken for slashes).
func FuzzConfinedURL(f *testing.F) {
	for _, s := range []string{"w.bin", "./w.bin", "a/b.bin", "../x", "%2e%2e/x", "%2E./x", "a/%2e%2e/%2e%2e/x", `..\x`, "a%5c..%5c..%5cx",
		"//evil/x", "http://evil/x", "/abs", "?q", "#f", "a?../../x", "a#/../../x", "a%2f..%2f..%2fx", ".", "./", "a/.", " ../x", "a:b", "%00", "..;/x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://models.example/org/m/model.json")
	f.Fuzz(func(t *testing.T, ref string) {
		abs, rel, err := ConfinedURL(base, ref)
		if err != nil {
			if !errors.Is(err, ErrOutside) {
				t.Fatalf("%q: error %v is not ErrOutside", ref, err)
			}
			return
		}
		u, err := url.Parse(abs)
		if err != nil {
			t.Fatalf("%q → %q: not a URL: %v", ref, abs, err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
			t.Fatalf("%q → %q: another origin", ref, abs)
		}
		lax := u.EscapedPath()
		for _, r := range [][2]string{{"%2e", "."}, {"%2E", "."}, {"%2f", "/"}, {"%2F", "/"}, {"%5c", "/"}, {"%5C", "/"}, {`\`, "/"}} {
			lax = strings.ReplaceAll(lax, r[0], r[1])
		}
		for _, p := range []string{u.Path, lax} {
			if c := path.Clean(p); !strings.HasPrefix(c, "/org/m/") {
				t.Fatalf("%q → %q: read as %q, outside /org/m/", ref, abs, c)
			}
		}
		if rel == "" || strings.Contains("/"+rel+"/", "/../") {
			t.Fatalf("%q → relative name %q", ref, rel)
		}
		// Parsing a manifest or a model.json that names it must not panic either.
		js := fmt.Sprintf(`{"weightsManifest":[{"paths":[%q],"weights":[{"name":"w","shape":[1],"dtype":"float32"}]}]}`, ref)
		if m, err := format.ParseTFJSModel(strings.NewReader(js), nil); err == nil {
			if _, err := TFJSShardsAt(m, base, nil, func(string) Opener { return nil }); err != nil {
				t.Fatalf("%q: accepted alone, refused in a model.json: %v", ref, err)
			}
		}
	})
}
