package stream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/internal/testutil"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// spec is one tensor of a synthetic test model.
type spec struct {
	name  string
	dtype format.DType
	shape []int
}

// testModel is a model file in memory with the float32 values behind every tensor.
type testModel struct {
	file   []byte
	infos  []format.TensorInfo
	sha256 string
}

func (m *testModel) source(open Opener) Source {
	return Source{Name: "model", Open: open, Size: int64(len(m.file)), SHA256: m.sha256}
}

// values draws weights that look trained where it matters: normal, rows scaled differently and
// a few large input channels.
func values(seed uint64, n, k int) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n*k)
	for i := range n {
		scale := 0.02 * (0.5 + r.Float64())
		for j := range k {
			v := r.NormFloat64() * scale
			if j%37 == 5 {
				v *= 20
			}
			out[i*k+j] = float32(v)
		}
	}
	return out
}

func encode(d format.DType, v []float32) []byte {
	switch d {
	case format.F32:
		b := make([]byte, 4*len(v))
		format.EncodeF32(b, v)
		return b
	case format.F16:
		b := make([]byte, 2*len(v))
		format.EncodeF16(b, v)
		return b
	case format.BF16:
		b := make([]byte, 2*len(v))
		format.EncodeBF16(b, v)
		return b
	case format.Q4_0:
		b := make([]byte, len(v)/32*format.Q4_0BlockBytes)
		format.EncodeQ4_0(b, v)
		return b
	case format.Q8_0:
		b := make([]byte, len(v)/32*format.Q8_0BlockBytes)
		format.EncodeQ8_0(b, v)
		return b
	}
	panic(fmt.Sprint("encode: ", d))
}

func shapeNK(shape []int) (n, k int) {
	n, k = 1, shape[len(shape)-1]
	for _, d := range shape[:len(shape)-1] {
		n *= d
	}
	return n, k
}

// makeModel writes specs as safetensors (or GGUF) into memory.
func makeModel(t testing.TB, gguf bool, seed uint64, specs []spec) *testModel {
	t.Helper()
	infos := make([]format.TensorInfo, len(specs))
	data := make([][]byte, len(specs))
	for i, s := range specs {
		n, k := shapeNK(s.shape)
		data[i] = encode(s.dtype, values(seed+uint64(i), n, k))
		infos[i] = format.TensorInfo{Name: s.name, DType: s.dtype, Shape: s.shape}
	}
	m := &testModel{}
	if gguf {
		m.file = testutil.GGUF(t, infos, []format.GGUFKV{{Key: "general.name", Value: "test"}}, data...)
	} else {
		m.file = testutil.Safetensors(t, infos, map[string]string{"format": "pt"}, data...)
	}
	sum := sha256.Sum256(m.file)
	m.sha256 = hex.EncodeToString(sum[:])
	var r format.Reader
	var err error
	if gguf {
		r, err = format.NewGGUF(bytes.NewReader(m.file), nil)
	} else {
		r, err = format.NewSafetensors(bytes.NewReader(m.file), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	m.infos = r.Tensors()
	return m
}

// eachFormat runs f on a model of each file format made with seed: safetensors of stdSpecs and
// GGUF of ggufSpecs.
func eachFormat(t *testing.T, seed uint64, f func(t *testing.T, m *testModel)) {
	t.Run("safetensors", func(t *testing.T) { f(t, makeModel(t, false, seed, stdSpecs)) })
	t.Run("gguf", func(t *testing.T) { f(t, makeModel(t, true, seed, ggufSpecs)) })
}

// reference quantizes every tensor of m whole, the way a loader that held everything would.
func (m *testModel) reference(t testing.TB, plan Plan) map[string]*quant.Tensor {
	t.Helper()
	out := map[string]*quant.Tensor{}
	for _, info := range m.infos {
		tt := &format.Tensor{TensorInfo: info, Data: m.file[info.Offset : info.Offset+info.Size]}
		f := plan(&info)
		var q *quant.Tensor
		var err error
		if (info.DType == format.Q4_0 || info.DType == format.Q8_0) && f == DefaultPlan(&info) {
			q, err = tt.Quant()
		} else {
			var v []float32
			if v, err = tt.Float32(); err == nil {
				n, k := shapeNK(info.Shape)
				q, err = quant.Quantize(info.Name, v, n, k, f, quant.Options{})
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		q.Name = info.Name
		out[info.Name] = q
	}
	return out
}

// recorder is an Uploader that keeps a copy of every tensor and tracks what is still alive.
type recorder struct {
	mu      sync.Mutex
	tensors map[string]*quant.Tensor
	live    atomic.Int64
	failAt  string // Upload of this tensor fails
	failErr error  // ...wrapping this
}

func newRecorder() *recorder { return &recorder{tensors: map[string]*quant.Tensor{}} }

func (r *recorder) Upload(t *quant.Tensor) (backend.Weight, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	if t.Name == r.failAt {
		if r.failErr != nil {
			return nil, fmt.Errorf("device out of memory: %w", r.failErr)
		}
		return nil, errors.New("device out of memory")
	}
	c := *t
	c.Data, c.Scales, c.Zeros = bytes.Clone(t.Data), bytes.Clone(t.Scales), bytes.Clone(t.Zeros)
	r.mu.Lock()
	r.tensors[t.Name] = &c
	r.mu.Unlock()
	r.live.Add(1)
	return &recWeight{r: r, t: &c}, nil
}

type recWeight struct {
	r        *recorder
	t        *quant.Tensor
	released atomic.Bool
}

func (w *recWeight) Name() string         { return w.t.Name }
func (w *recWeight) Shape() (n, k int)    { return w.t.N, w.t.K }
func (w *recWeight) Format() quant.Format { return w.t.Format }
func (w *recWeight) Bytes() int64         { return int64(w.t.Bytes()) }
func (w *recWeight) Release() error {
	if w.released.Swap(true) {
		return errors.New("released twice")
	}
	w.r.live.Add(-1)
	return nil
}

// sameTensors fails unless got and want hold byte-identical tensors.
func sameTensors(t *testing.T, got map[string]backend.Weight, want map[string]*quant.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tensors loaded, want %d", len(got), len(want))
	}
	for name, w := range want {
		gw, ok := got[name]
		if !ok {
			t.Fatalf("tensor %q missing", name)
		}
		g := gw.(*recWeight).t
		if g.N != w.N || g.K != w.K || g.Format != w.Format {
			t.Fatalf("tensor %q: %d×%d %v, want %d×%d %v", name, g.N, g.K, g.Format, w.N, w.K, w.Format)
		}
		if !sameQuant(g, w) {
			t.Fatalf("tensor %q (%v): bytes differ from the reference", name, w.Format)
		}
	}
}

// sameQuant reports whether a and b hold the same format and bytes.
func sameQuant(a, b *quant.Tensor) bool {
	return a != nil && b != nil && a.Format == b.Format && bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Scales, b.Scales) && bytes.Equal(a.Zeros, b.Zeros)
}

// sameAsRef fails unless rec uploaded every tensor of want, byte-identical.
func sameAsRef(t *testing.T, rec *recorder, want map[string]*quant.Tensor) {
	t.Helper()
	for name, w := range want {
		if !sameQuant(rec.tensors[name], w) {
			t.Fatalf("tensor %q differs from the reference", name)
		}
	}
}

// tensorReader yields a file's tensors one by one (format.Reader, format.TFJSModel).
type tensorReader interface {
	Next() (*format.Tensor, error)
}

// quantizeAll reads every tensor of r and quantizes each whole into DefaultPlan's format, the
// way a loader that held everything would; tensors without values are left out (the loader
// uploads none for them). It is the reference for files the test did not write (TF.js shards).
func quantizeAll(t *testing.T, r tensorReader) map[string]*quant.Tensor {
	t.Helper()
	want := map[string]*quant.Tensor{}
	for {
		tt, err := r.Next()
		if err == io.EOF {
			return want
		}
		if err != nil {
			t.Fatal(err)
		}
		v, err := tt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if len(v) == 0 {
			continue
		}
		k := 1
		if len(tt.Shape) > 0 {
			k = tt.Shape[len(tt.Shape)-1]
		}
		q, err := quant.Quantize(tt.Name, v, len(v)/k, k, DefaultPlan(&tt.TensorInfo), quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want[tt.Name] = q
	}
}

// readTFJSModel reads a served TF.js model's manifest.json and model.json under base (a URL
// ending in "/") through open.
func readTFJSModel(t *testing.T, base string, open func(url string) io.ReadCloser) (*Manifest, format.TFJSManifest) {
	t.Helper()
	rc := open(base + "manifest.json")
	man, err := format.ParseManifest(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	rc = open(base + "model.json")
	tm, err := format.ParseTFJSModel(rc, nil)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	return man, tm
}

// fault is what one connection does wrong. Offsets are absolute in the file; -1 means never.
type fault struct {
	resetAt    int64 // fail with a "connection reset" error once this byte is reached
	truncateAt int64 // end cleanly (EOF) at this byte
	stallAt    int64 // stop delivering at this byte until closed
	corruptAt  int64 // flip the bits of this byte
}

var noFault = fault{-1, -1, -1, -1}

func resetAt(n int64) fault    { f := noFault; f.resetAt = n; return f }
func truncateAt(n int64) fault { f := noFault; f.truncateAt = n; return f }
func stallAt(n int64) fault    { f := noFault; f.stallAt = n; return f }
func corruptAt(n int64) fault  { f := noFault; f.corruptAt = n; return f }

var errReset = errors.New("connection reset by peer")

// memServer serves a file from memory with one fault per connection, in order (noFault after
// the list), delivering it in small uneven pieces.
type memServer struct {
	data   []byte
	mu     sync.Mutex
	faults []fault
	opens  []int64 // offset of every open
	always *fault  // applied to every connection, after the list
}

func (s *memServer) open(ctx context.Context, off int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens = append(s.opens, off)
	f := noFault
	if len(s.faults) > 0 {
		f, s.faults = s.faults[0], s.faults[1:]
	} else if s.always != nil {
		f = *s.always
	}
	if off > int64(len(s.data)) || (f.truncateAt >= 0 && off >= f.truncateAt && off > 0) {
		return nil, Permanent(fmt.Errorf("416: offset %d beyond the file: %w", off, ErrSize))
	}
	return &faultReader{s: s, off: off, f: f, closed: make(chan struct{}), rng: rand.New(rand.NewPCG(uint64(off), 1))}, nil
}

type faultReader struct {
	s      *memServer
	off    int64
	f      fault
	rng    *rand.Rand
	once   sync.Once
	closed chan struct{}
}

func (r *faultReader) Read(p []byte) (int, error) {
	select {
	case <-r.closed:
		return 0, errors.New("read on closed connection")
	default:
	}
	end := int64(len(r.s.data))
	for _, at := range []int64{r.f.resetAt, r.f.truncateAt, r.f.stallAt} {
		if at >= r.off {
			end = min(end, at)
		}
	}
	if r.off == end {
		switch {
		case r.off == r.f.resetAt:
			return 0, errReset
		case r.off == r.f.stallAt:
			<-r.closed
			return 0, errors.New("use of closed network connection")
		default:
			return 0, io.EOF
		}
	}
	n := min(int64(len(p)), end-r.off, int64(1+r.rng.IntN(7000)))
	copy(p, r.s.data[r.off:r.off+n])
	if c := r.f.corruptAt; c >= r.off && c < r.off+n {
		p[c-r.off] ^= 0xff
	}
	r.off += n
	return int(n), nil
}

func (r *faultReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// stdSpecs covers every path: f16/bf16/f32 matrices (quantized), K not a multiple of the group,
// 3-D tensors, small and 1-D tensors kept f32, rows longer than a chunk.
var stdSpecs = []spec{
	{"embed", format.F16, []int{300, 64}},
	{"l0.attn.q", format.F16, []int{96, 96}},
	{"l0.attn.bias", format.F32, []int{96}},
	{"l0.mlp.up", format.BF16, []int{160, 100}},
	{"l0.mlp.down", format.F32, []int{100, 160}},
	{"l0.norm", format.F16, []int{96}},
	{"l1.conv", format.F16, []int{4, 8, 64}},
	{"l1.wide", format.F16, []int{3, 3000}},
	{"l1.small", format.F32, []int{4, 8}},
}

var ggufSpecs = []spec{
	{"token_embd.weight", format.Q4_0, []int{64, 128}},
	{"blk.0.attn_q.weight", format.Q8_0, []int{96, 64}},
	{"blk.0.attn_norm.weight", format.F32, []int{64}},
	{"blk.0.ffn_up.weight", format.F16, []int{128, 64}},
}

// smallOpts makes chunks small so every tensor spans several jobs.
func smallOpts() Options {
	return Options{ChunkBytes: 1000, Window: 4000, Workers: 3, RetryDelay: 1, StallTimeout: -1}
}

func mustLoad(t *testing.T, up Uploader, opt Options, srcs ...Source) (map[string]backend.Weight, *Load) {
	t.Helper()
	l := Start(context.Background(), up, opt, srcs...)
	ws, err := l.Result(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ws, l
}
