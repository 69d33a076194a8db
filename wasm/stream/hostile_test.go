package stream

import (
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"runtime"
	"strings"
	"testing"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// The hostile corpus: small files that lie about what they hold (issue 16). They live in
// testdata/hostile (embedded, so the same test runs in the browser), written by
// `go test ./wasm/stream -run TestHostileCorpus -hostile.update`; the test fails if a file and
// the builder below disagree.

//go:embed testdata/hostile
var hostileFS embed.FS

var hostileUpdate = flag.Bool("hostile.update", false, "rewrite testdata/hostile from the builders")

// hostileAlloc bounds what one load of a hostile file may allocate in all (runtime TotalAlloc):
// a chunk buffer, decode scratch, the header, the goroutines. Before issue 16 these files cost
// 0.1–9 GiB, or killed the process.
const hostileAlloc = 24 << 20

type hostileCase struct {
	file    string
	build   func() []byte
	kind    error  // the errs kind the load fails with
	mention string // the error must say this (a tensor name...)
	tfjs    string // for a TF.js case, the model.json; file is then its one shard
}

func hostileCases() []hostileCase {
	nanRow := make([]byte, 2*64*4)
	binary.LittleEndian.PutUint32(nanRow[4*(64+9):], math.Float32bits(float32(math.NaN())))
	infF16 := make([]byte, 32*64*2)
	binary.LittleEndian.PutUint16(infF16[2*700:], 0x7C00)
	q8 := make([]byte, 2*2*format.Q8_0BlockBytes)
	binary.LittleEndian.PutUint16(q8[3*format.Q8_0BlockBytes:], 0x7E00) // NaN scale, block 3
	return []hostileCase{
		{file: "empty.safetensors", build: func() []byte { return nil }, kind: errs.ErrFormat},
		{file: "header-length-only.safetensors", build: func() []byte { return binary.LittleEndian.AppendUint64(nil, 1000) }, kind: errs.ErrFormat},
		{file: "gguf-magic-only.gguf", build: func() []byte { return []byte("GGUF\x03\x00\x00\x00") }, kind: errs.ErrFormat},
		// The 93 bytes: one float32 tensor of 64 GiB, no data.
		{file: "64gib-f32.safetensors", build: func() []byte {
			return stHeader(`{"w":{"dtype":"F32","shape":[131072,131072],"data_offsets":[0,68719476736]}}`)
		}, kind: errs.ErrFormat, mention: `"w"`},
		{file: "over-limit.safetensors", build: func() []byte {
			return stHeader(`{"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}`)
		}, kind: errs.ErrTooLarge, mention: `"w"`},
		// One row of 1 GiB: the chunk buffer was sized from the declared row.
		{file: "1gib-row.safetensors", build: func() []byte {
			return append(stHeader(`{"row":{"dtype":"F32","shape":[1,268435456],"data_offsets":[0,1073741824]}}`), make([]byte, 100)...)
		}, kind: errs.ErrFormat, mention: `"row"`},
		// A 4 GiB vector kept float32: the plan that does not quantize allocated it whole.
		{file: "4gib-vector.safetensors", build: func() []byte {
			return stHeader(`{"norm":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}`)
		}, kind: errs.ErrFormat, mention: `"norm"`},
		// Many rows: q4 of 2 GiB of f16 is 640 MiB of codes and scales.
		{file: "2gib-f16-rows.safetensors", build: func() []byte {
			return append(stHeader(`{"emb":{"dtype":"F16","shape":[16777216,64],"data_offsets":[0,2147483648]}}`), make([]byte, 3000)...)
		}, kind: errs.ErrFormat, mention: `"emb"`},
		// A real tensor, then one of 64 × 32 MiB declared: the first loads, the rest never comes.
		{file: "real-then-lies.safetensors", build: func() []byte {
			var h strings.Builder
			h.WriteString(`{"a":{"dtype":"F32","shape":[4,32],"data_offsets":[0,512]}`)
			for i := range 64 {
				fmt.Fprintf(&h, `,"l%d":{"dtype":"F16","shape":[4096,4096],"data_offsets":[%d,%d]}`, i, 512+i<<25, 512+(i+1)<<25)
			}
			h.WriteString(`}`)
			return append(stHeader(h.String()), make([]byte, 512+1000)...)
		}, kind: errs.ErrFormat, mention: `"l0"`},
		// GGUF Q4_0 blocks are mapped as they are: the whole quantized tensor was allocated first.
		{file: "1gib-q4_0.gguf", build: func() []byte {
			return append(ggufHeader(ggufTensor{"blk.0.ffn_up.weight", 2, []uint64{4096, 1 << 19}}), make([]byte, 5000)...)
		}, kind: errs.ErrFormat, mention: `"blk.0.ffn_up.weight"`},
		// Weights that are not numbers, under a plan that quantizes and one that does not.
		{file: "nan-f32-kept.safetensors", build: func() []byte {
			return append(stHeader(`{"bias":{"dtype":"F32","shape":[2,64],"data_offsets":[0,512]}}`), nanRow...)
		}, kind: errs.ErrFormat, mention: `"bias"`},
		{file: "inf-f16-q4.safetensors", build: func() []byte {
			return append(stHeader(`{"attn.q":{"dtype":"F16","shape":[32,64],"data_offsets":[0,4096]}}`), infF16...)
		}, kind: errs.ErrFormat, mention: `"attn.q"`},
		{file: "nan-scale-q8_0.gguf", build: func() []byte {
			return append(ggufHeader(ggufTensor{"blk.0.attn_k.weight", 8, []uint64{64, 2}}), q8...)
		}, kind: errs.ErrFormat, mention: `"blk.0.attn_k.weight"`},
		// A TF.js model.json declaring a 16 GiB weight over a 100-byte shard.
		{file: "tfjs-16gib.bin", tfjs: `{"weightsManifest":[{"paths":["tfjs-16gib.bin"],"weights":[{"name":"dense/kernel","shape":[65536,65536],"dtype":"float32"}]}]}`,
			build: func() []byte { return make([]byte, 100) }, kind: errs.ErrFormat, mention: `"dense/kernel"`},
	}
}

func stHeader(js string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(js))), js...)
}

type ggufTensor struct {
	name string
	typ  uint32
	ne   []uint64 // innermost first, as GGUF stores them
}

// ggufHeader writes a GGUF v3 header with no metadata, tensors laid out back to back from the
// (32-aligned) start of the data.
func ggufHeader(ts ...ggufTensor) []byte {
	b := append([]byte("GGUF"), 3, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(ts)))
	b = binary.LittleEndian.AppendUint64(b, 0)
	var off uint64
	for _, t := range ts {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(t.name)))
		b = append(b, t.name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.ne)))
		for _, d := range t.ne {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, t.typ)
		b = binary.LittleEndian.AppendUint64(b, off)
		elems := uint64(1)
		for _, d := range t.ne {
			elems *= d
		}
		switch t.typ {
		case 2:
			off += elems / 32 * format.Q4_0BlockBytes
		case 8:
			off += elems / 32 * format.Q8_0BlockBytes
		default:
			off += elems * 4
		}
		off = (off + 31) &^ 31
	}
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	return b
}

func hostileFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := hostileFS.ReadFile(path.Join("testdata/hostile", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileCorpus: the files in testdata are what the builders make.
func TestHostileCorpus(t *testing.T) {
	for _, c := range hostileCases() {
		want := c.build()
		if *hostileUpdate {
			if err := os.WriteFile(path.Join("testdata/hostile", c.file), want, 0o644); err != nil {
				t.Fatal(err)
			}
			if c.tfjs != "" {
				if err := os.WriteFile(path.Join("testdata/hostile", strings.TrimSuffix(c.file, ".bin")+".json"), []byte(c.tfjs+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		if got := hostileFile(t, c.file); !bytes.Equal(got, want) {
			t.Errorf("%s differs from its builder: run with -hostile.update", c.file)
		}
	}
}

// allocated returns the bytes f allocated (the runtime's cumulative count, so memory the
// collector already took back still counts).
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestHostileLoad runs every file of the corpus through the whole loader, with the size known
// (a manifest) and unknown (a bare URL): each fails with its kind, naming the tensor, having
// allocated little, with nothing left uploaded.
func TestHostileLoad(t *testing.T) {
	for _, c := range hostileCases() {
		file := hostileFile(t, c.file)
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/size-known=%v", c.file, known), func(t *testing.T) {
				srv := &memServer{data: file}
				src := Source{Name: c.file, Open: srv.open}
				opt := Options{Workers: 2, RetryDelay: 1}
				if c.tfjs != "" {
					m, err := format.ParseTFJSModel(strings.NewReader(c.tfjs), nil)
					if err != nil {
						t.Fatal(err)
					}
					sh := Shard{Name: c.file, Open: srv.open}
					if known {
						sh.Size = int64(len(file))
					}
					src = JoinSource("model.json shards", sh)
					opt.Reader = TFJSReader(m, nil)
				} else if known {
					src.Size = int64(len(file))
				}
				rec := newRecorder()
				var err error
				n := allocated(func() {
					_, err = Start(context.Background(), rec, opt, src).Result(context.Background())
				})
				t.Logf("%d bytes allocated: %v", n, err)
				if errs.Kind(err) != c.kind {
					t.Errorf("error %v (kind %v), want kind %v", err, errs.Kind(err), c.kind)
				}
				if err != nil && c.mention != "" && !strings.Contains(err.Error(), c.mention) {
					t.Errorf("%q does not name %s", err, c.mention)
				}
				if n > hostileAlloc {
					t.Errorf("allocated %d MiB for a %d-byte file (bound %d MiB)", n>>20, len(file), hostileAlloc>>20)
				}
				if live := rec.live.Load(); live != 0 {
					t.Errorf("%d weights still alive", live)
				}
			})
		}
	}
}

// TestHostileReaders runs the corpus through wasm/format's readers alone (Next, which reads each
// tensor whole), with and without the stream size: they end in an error or cleanly (the NaN
// files are well-formed) having allocated little.
func TestHostileReaders(t *testing.T) {
	var most uint64
	defer func() { t.Logf("at most %d KiB allocated by one read", most>>10) }()
	for _, c := range hostileCases() {
		file := hostileFile(t, c.file)
		for _, size := range []int64{0, int64(len(file))} {
			var err error
			n := allocated(func() {
				lim := &format.Limits{StreamSize: size}
				var r format.Reader
				if c.tfjs != "" {
					var m format.TFJSManifest
					if m, err = format.ParseTFJSModel(strings.NewReader(c.tfjs), lim); err == nil {
						r, err = format.NewTFJS(m, bytes.NewReader(file), lim)
					}
				} else {
					r, err = format.Open(bytes.NewReader(file), lim)
				}
				for err == nil {
					_, err = r.Next()
				}
			})
			most = max(most, n)
			if err == io.EOF {
				err = nil
			}
			if err != nil && errs.Kind(err) == nil {
				t.Errorf("%s (size %d): error %v has no kind", c.file, size, err)
			}
			if n > hostileAlloc {
				t.Errorf("%s (size %d): allocated %d MiB (bound %d MiB): %v", c.file, size, n>>20, hostileAlloc>>20, err)
			}
		}
	}
}

// TestUnknownSizeIdentical: with no size to vouch for its bytes, a tensor's buffers grow with the
// rows that arrive (several doublings here) and the result is byte-identical to the whole-tensor
// reference, through resumes too; the pending memory accounting ends at zero.
func TestUnknownSizeIdentical(t *testing.T) {
	for _, gguf := range []bool{false, true} {
		specs := stdSpecs
		if gguf {
			specs = ggufSpecs
		}
		t.Run(fmt.Sprint("gguf=", gguf), func(t *testing.T) {
			m := makeModel(t, gguf, 3, specs)
			want := m.reference(t, DefaultPlan)
			first := m.infos[0].Offset
			for _, opt := range []Options{smallOpts(), {ChunkBytes: 256, Window: 1024, Workers: 2, RetryDelay: 1, StallTimeout: -1}} {
				srv := &memServer{data: m.file, faults: []fault{resetAt(first + 3000), truncateAt(first + 9000)}}
				src := m.source(srv.open)
				src.Size, src.SHA256 = 0, ""
				got, l := mustLoad(t, newRecorder(), opt, src)
				sameTensors(t, got, want)
				if p := l.Progress(); p.HeldBytes != 0 || p.Resumes != 2 {
					t.Errorf("progress %v: want nothing held after the load, 2 resumes", p)
				}
			}
		})
	}
}
