package stream

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// A cache entry holds the quantized tensors of one file, written as they finish (in any order)
// so the writer never holds more than one tensor:
//
//	magic "NBLQ" | version u32 | header length u32 | header (JSON) | crc32c(header) u32
//	then per tensor with bytes:  index u32 | crc32c(payload) u32 | payload = Data ‖ Scales ‖ Zeros
//	then the end:                0xFFFFFFFF u32 | number of tensor records u32
//
// All integers little-endian. The payload's length is implied by the header (shape and
// format), so nothing in a record can ask for an allocation the checked header did not declare.
// A reader accepts a tensor only once its crc matches, and the entry only once the end record
// and EOF follow the last tensor: a truncated or damaged entry is rejected, never half-used.
const (
	cacheMagic   = "NBLQ"
	cacheVersion = 1
	// cacheMaxHeader bounds the header: a few thousand tensors' names and shapes.
	cacheMaxHeader = 16 << 20
	cacheEnd       = 0xFFFFFFFF
)

// ErrCacheEntry: a cache entry is damaged, truncated, of another version or for another plan. The
// loader ignores it (and loads from the network); it is never used in part.
var ErrCacheEntry = errors.New("stream: unusable cache entry")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// cacheHeader lists every tensor of the file, in file order.
type cacheHeader struct {
	Key     string        `json:"key"` // the key the entry was stored under: a mixed-up entry is refused
	Tensors []cacheTensor `json:"tensors"`
}

type cacheTensor struct {
	format.TensorInfo
	Bits      int `json:"bits"`
	Scheme    int `json:"scheme"`
	GroupSize int `json:"group"`
	Scales    int `json:"scales"`
}

func (c *cacheTensor) format() quant.Format {
	return quant.Format{Bits: c.Bits, Scheme: quant.Scheme(c.Scheme), GroupSize: c.GroupSize, Scales: quant.ScaleType(c.Scales)}
}

// nk is the tensor's rows and columns as the loader lays it out (last dimension = K).
func (c *cacheTensor) nk() (n, k int, err error) {
	n, k = 1, 1
	if len(c.Shape) > 0 {
		k = c.Shape[len(c.Shape)-1]
		if k > 0 {
			n = int(c.NumElements() / int64(k))
		}
	}
	if c.NumElements() < 0 || n < 0 || k < 0 {
		return 0, 0, fmt.Errorf("%w: tensor %q: shape %v", ErrCacheEntry, c.Name, c.Shape)
	}
	return n, k, nil
}

func newCacheTensor(info format.TensorInfo, f quant.Format) cacheTensor {
	return cacheTensor{TensorInfo: info, Bits: f.Bits, Scheme: int(f.Scheme), GroupSize: f.GroupSize, Scales: int(f.Scales)}
}

// hasBytes says whether the tensor gets a record: the loader uploads nothing for an empty one.
func (c *cacheTensor) hasBytes() bool { return c.Size > 0 }

// cacheWriter writes one entry. It is used from one goroutine at a time.
type cacheWriter struct {
	w       io.Writer
	index   map[string]int
	written int
	err     error // sticky
	buf     [8]byte
}

func newCacheWriter(w io.Writer, h *cacheHeader) (*cacheWriter, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(js) > cacheMaxHeader {
		return nil, fmt.Errorf("stream: cache header of %d bytes is over %d", len(js), cacheMaxHeader)
	}
	cw := &cacheWriter{w: w, index: make(map[string]int, len(h.Tensors))}
	for i, t := range h.Tensors {
		cw.index[t.Name] = i
	}
	pre := make([]byte, 12, 12+len(js)+4)
	copy(pre, cacheMagic)
	binary.LittleEndian.PutUint32(pre[4:], cacheVersion)
	binary.LittleEndian.PutUint32(pre[8:], uint32(len(js)))
	pre = append(pre, js...)
	pre = binary.LittleEndian.AppendUint32(pre, crc32.Checksum(js, crcTable))
	if _, err := w.Write(pre); err != nil {
		return nil, err
	}
	return cw, nil
}

// tensor writes t's record; t must be one the header declared.
func (cw *cacheWriter) tensor(t *quant.Tensor) error {
	if cw.err != nil {
		return cw.err
	}
	i, ok := cw.index[t.Name]
	if !ok {
		cw.err = fmt.Errorf("stream: cache: tensor %q is not in the entry's header", t.Name)
		return cw.err
	}
	crc := crc32.Update(0, crcTable, t.Data)
	crc = crc32.Update(crc, crcTable, t.Scales)
	crc = crc32.Update(crc, crcTable, t.Zeros)
	binary.LittleEndian.PutUint32(cw.buf[:4], uint32(i))
	binary.LittleEndian.PutUint32(cw.buf[4:], crc)
	for _, b := range [][]byte{cw.buf[:], t.Data, t.Scales, t.Zeros} {
		if _, err := cw.w.Write(b); err != nil {
			cw.err = err
			return err
		}
	}
	cw.written++
	return nil
}

// end writes the end record.
func (cw *cacheWriter) end() error {
	if cw.err != nil {
		return cw.err
	}
	binary.LittleEndian.PutUint32(cw.buf[:4], cacheEnd)
	binary.LittleEndian.PutUint32(cw.buf[4:], uint32(cw.written))
	_, cw.err = cw.w.Write(cw.buf[:])
	return cw.err
}

// cacheReader reads one entry back.
type cacheReader struct {
	r      *bufio.Reader
	h      cacheHeader
	seen   []bool
	left   int // tensor records still to come
	read   int // tensor records read
	n      int64
	hdrLen int64
}

// newCacheReader reads and checks the header of an entry stored under key.
func newCacheReader(r io.Reader, key string) (*cacheReader, error) {
	cr := &cacheReader{r: bufio.NewReaderSize(r, 64<<10)}
	var pre [12]byte
	if err := cr.full(pre[:]); err != nil {
		return nil, err
	}
	if string(pre[:4]) != cacheMagic {
		return nil, fmt.Errorf("%w: magic %q", ErrCacheEntry, pre[:4])
	}
	if v := binary.LittleEndian.Uint32(pre[4:]); v != cacheVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrCacheEntry, v, cacheVersion)
	}
	n := binary.LittleEndian.Uint32(pre[8:])
	if n > cacheMaxHeader {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrCacheEntry, n)
	}
	hb := make([]byte, n+4)
	if err := cr.full(hb); err != nil {
		return nil, err
	}
	if crc32.Checksum(hb[:n], crcTable) != binary.LittleEndian.Uint32(hb[n:]) {
		return nil, fmt.Errorf("%w: header checksum", ErrCacheEntry)
	}
	if err := json.Unmarshal(hb[:n], &cr.h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCacheEntry, err)
	}
	if cr.h.Key != key {
		return nil, fmt.Errorf("%w: stored for key %q, not %q", ErrCacheEntry, cr.h.Key, key)
	}
	cr.seen = make([]bool, len(cr.h.Tensors))
	names := make(map[string]bool, len(cr.h.Tensors))
	for i := range cr.h.Tensors {
		t := &cr.h.Tensors[i]
		if names[t.Name] {
			return nil, fmt.Errorf("%w: tensor %q twice", ErrCacheEntry, t.Name)
		}
		names[t.Name] = true
		if err := t.format().Validate(); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %v", ErrCacheEntry, t.Name, err)
		}
		if _, _, err := t.nk(); err != nil {
			return nil, err
		}
		if t.hasBytes() {
			cr.left++
		}
	}
	cr.hdrLen = cr.n
	return cr, nil
}

func (cr *cacheReader) full(b []byte) error {
	n, err := io.ReadFull(cr.r, b)
	cr.n += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated at byte %d: %w", ErrCacheEntry, cr.n, io.ErrUnexpectedEOF)
	}
	return err
}

// next returns the next tensor, checked against its crc, and its index in the header; io.EOF
// once every tensor was read and the entry ended where it should.
func (cr *cacheReader) next() (int, *quant.Tensor, error) {
	var rec [8]byte
	if err := cr.full(rec[:]); err != nil {
		return 0, nil, err
	}
	i, crc := binary.LittleEndian.Uint32(rec[:4]), binary.LittleEndian.Uint32(rec[4:])
	if i == cacheEnd {
		if cr.left != 0 || int(crc) != cr.read {
			return 0, nil, fmt.Errorf("%w: ends with %d tensors missing", ErrCacheEntry, cr.left)
		}
		if _, err := cr.r.ReadByte(); err != io.EOF {
			return 0, nil, fmt.Errorf("%w: bytes after the end record", ErrCacheEntry)
		}
		return 0, nil, io.EOF
	}
	if int(i) >= len(cr.h.Tensors) || cr.seen[i] || !cr.h.Tensors[i].hasBytes() {
		return 0, nil, fmt.Errorf("%w: record for tensor %d at byte %d", ErrCacheEntry, i, cr.n-8)
	}
	ct := &cr.h.Tensors[i]
	n, k, _ := ct.nk()
	t, err := quant.NewTensor(ct.Name, n, k, ct.format())
	if err != nil {
		return 0, nil, fmt.Errorf("%w: tensor %q: %v", ErrCacheEntry, ct.Name, err)
	}
	for _, b := range [][]byte{t.Data, t.Scales, t.Zeros} {
		if err := cr.full(b); err != nil {
			return 0, nil, err
		}
	}
	got := crc32.Update(0, crcTable, t.Data)
	got = crc32.Update(got, crcTable, t.Scales)
	got = crc32.Update(got, crcTable, t.Zeros)
	if got != crc {
		return 0, nil, fmt.Errorf("%w: tensor %q: checksum", ErrCacheEntry, ct.Name)
	}
	cr.seen[i] = true
	cr.left--
	cr.read++
	return int(i), t, nil
}
