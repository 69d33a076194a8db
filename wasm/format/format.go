// Package format owns nibble's model-file readers and writers: safetensors, GGUF (v2/v3) and the
// TF.js graph-model weights manifest. Every reader is incremental over an io.Reader: it parses the
// header first (so a planner can see every tensor's name, type and shape before any weight
// arrives), then emits one *Tensor per weight as soon as its last byte has been read. Nothing here
// holds more than one tensor's bytes at a time.
//
// The readers are meant to face files from anywhere, so they treat input as hostile: header sizes,
// counts, shapes (overflow-safe products), offsets and alignments are validated before anything is
// allocated, and no allocation grows beyond the bytes that were both declared and actually read.
// Errors wrap one of ErrTruncated, ErrCorrupt, ErrUnsupported or ErrLimit and name the tensor and
// the byte offset where the problem was found.
//
// The package turns stored bytes into float32 (Tensor.Float32) and maps GGUF's Q4_0 and Q8_0 blocks
// losslessly onto quant.Tensor (Tensor.Quant); it does not choose precisions (wasm/plan) nor touch
// the network (wasm/stream) or the GPU (wasm/backend).
package format

import (
	"fmt"
	"io"
	"math"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// Sentinel errors; every error from this package wraps one of them (see errors.Is), and each
// is one of wasm/errs's kinds (noted after its name).
var (
	// ErrTruncated (errs.ErrFormat): the stream ended before the bytes the header declared.
	ErrTruncated = errs.New(errs.ErrFormat, "truncated")
	// ErrCorrupt (errs.ErrFormat): the header contradicts itself or the format (bad magic,
	// overlaps, sizes that do not match shapes, NaN or infinite weights...).
	ErrCorrupt = errs.New(errs.ErrFormat, "corrupt")
	// ErrUnsupported (errs.ErrUnsupported): well-formed, but a version or data type this package
	// does not decode.
	ErrUnsupported = errs.New(errs.ErrUnsupported, "unsupported")
	// ErrLimit (errs.ErrTooLarge): a declared size or count is beyond Limits.
	ErrLimit = errs.New(errs.ErrTooLarge, "over limit")
)

// Limits bound what a reader accepts before it allocates. The zero value of a field means its
// default. Allocation is further bounded by the bytes actually present: a header that declares a
// 10 GB tensor in a 1 KB stream costs at most about 1 KB of memory.
type Limits struct {
	MaxHeaderBytes int64 // safetensors JSON header, TF.js model.json; default 100 MiB
	MaxTensors     int   // tensors in one file; default 1<<20
	MaxDims        int   // dimensions of one tensor; default 8
	MaxTensorBytes int64 // bytes of one tensor; default 1<<36 (64 GiB)
	MaxStringBytes int64 // one GGUF string; default 16 MiB
	MaxArrayLen    int64 // elements of one GGUF metadata array; default 1<<24

	// StreamSize, when positive, is the stream's total length as the transport reports it (a
	// file size, Content-Length). Tensors ending past it are rejected with the header, before
	// any data is read, and each tensor is then read into one allocation of its exact size.
	StreamSize int64
}

func (l *Limits) withDefaults() Limits {
	var v Limits
	if l != nil {
		v = *l
	}
	def := func(p *int64, d int64) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&v.MaxHeaderBytes, 100<<20)
	def(&v.MaxTensorBytes, 1<<36)
	def(&v.MaxStringBytes, 16<<20)
	def(&v.MaxArrayLen, 1<<24)
	if v.MaxTensors <= 0 {
		v.MaxTensors = 1 << 20
	}
	if v.MaxDims <= 0 {
		v.MaxDims = 8
	}
	return v
}

// DType is how a tensor's elements are stored in the file.
type DType uint8

const (
	DTypeInvalid DType = iota
	F32
	F16
	BF16
	F64
	I8
	U8
	I16
	U16
	I32
	I64
	Bool
	// Q8_0 is GGUF's block of 32 int8 codes sharing one f16 scale: w = d·q.
	Q8_0
	// Q4_0 is GGUF's block of 32 4-bit codes sharing one f16 scale: w = d·(q − 8).
	Q4_0

	// Other ggml block types. Their sizes are known, so GGUF files that use them (most
	// llama.cpp releases are Q4_K_M or Q6_K) stream through with their raw bytes; Float32 and
	// Quant do not decode them.
	Q4_1
	Q5_0
	Q5_1
	Q8_1
	Q2_K
	Q3_K
	Q4_K
	Q5_K
	Q6_K
	Q8_K

	// F8E4M3 and F8E5M2 are safetensors' 8-bit floats (torch.float8_e4m3fn: bias 7, no
	// infinities, 0x7F is NaN; torch.float8_e5m2: the top byte of an IEEE half).
	F8E4M3
	F8E5M2
	U32
	U64
)

var dtypeNames = [...]string{"invalid", "F32", "F16", "BF16", "F64", "I8", "U8", "I16", "U16", "I32", "I64", "BOOL", "Q8_0", "Q4_0",
	"Q4_1", "Q5_0", "Q5_1", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "F8_E4M3", "F8_E5M2", "U32", "U64"}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Block layouts of GGUF's quantized types, as ggml stores them.
const (
	// BlockElems is the number of weights one Q4_0 or Q8_0 block holds, consecutive along the
	// innermost dimension.
	BlockElems = 32
	// Q8_0BlockBytes: [0:2] f16 scale d, [2:34] 32 int8 codes.
	Q8_0BlockBytes = 2 + 32
	// Q4_0BlockBytes: [0:2] f16 scale d, [2:18] 16 bytes; byte j holds element j in its low nibble
	// and element j+16 in its high nibble, both unsigned with an offset of 8.
	Q4_0BlockBytes = 2 + 16
)

// blockShape returns elements per block and bytes per block (1 element per block for plain types).
func (d DType) blockShape() (elems, bytes int64) {
	switch d {
	case F32, I32, U32:
		return 1, 4
	case F16, BF16, I16, U16:
		return 1, 2
	case F64, I64, U64:
		return 1, 8
	case I8, U8, Bool, F8E4M3, F8E5M2:
		return 1, 1
	case Q8_0:
		return BlockElems, Q8_0BlockBytes
	case Q4_0:
		return BlockElems, Q4_0BlockBytes
	case Q4_1:
		return 32, 2 + 2 + 16 // d, m, 32 nibbles
	case Q5_0:
		return 32, 2 + 4 + 16 // d, 32 high bits, 32 nibbles
	case Q5_1:
		return 32, 2 + 2 + 4 + 16
	case Q8_1:
		return 32, 2 + 2 + 32 // d, sum, 32 int8
	case Q2_K:
		return 256, 16 + 64 + 2 + 2
	case Q3_K:
		return 256, 32 + 64 + 12 + 2
	case Q4_K:
		return 256, 2 + 2 + 12 + 128
	case Q5_K:
		return 256, 2 + 2 + 12 + 32 + 128
	case Q6_K:
		return 256, 128 + 64 + 16 + 2
	case Q8_K:
		return 256, 4 + 256 + 16*2 // f32 d, 256 int8, 16 int16 block sums
	}
	return 0, 0
}

// TensorInfo is what a header says about one tensor.
type TensorInfo struct {
	Name  string
	DType DType
	// Shape is outermost first (row-major): a weight matrix of N rows of K is [N, K]. GGUF lists
	// dimensions innermost first; its readers reverse them so every format reads the same way.
	Shape []int
	// Offset is the absolute byte offset of the tensor's first byte in the stream, Size its length.
	Offset, Size int64
	// Affine, when set, says the stored integers (U8 or U16) stand for q·Scale + Min: TF.js's
	// quantization for download.
	Affine *Affine
}

// Affine is an affine dequantization of stored unsigned integers, w = q·Scale + Min.
type Affine struct {
	Scale, Min float64
	// Int means the original tensor was int32: values are rounded to the nearest integer.
	Int bool
}

// NumElements returns the product of Shape (1 for a scalar).
func (t *TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Tensor is one tensor with all of its stored bytes.
type Tensor struct {
	TensorInfo
	Data []byte
}

// Reader is implemented by every format's incremental reader.
type Reader interface {
	// Tensors lists every tensor the header declares, in the order Next returns them.
	Tensors() []TensorInfo
	// Next returns the next tensor as soon as its last byte has been read, and io.EOF after
	// the last one. The returned Data is the caller's to keep.
	Next() (*Tensor, error)
	// NextInto is Next reading into buf when it has the capacity, so a loader that is done with
	// a tensor's bytes (quantized, uploaded) can reuse them: the WebAssembly heap never shrinks,
	// so reuse keeps peak memory at the largest tensor instead of whatever the GC lets pile up.
	// The returned Data aliases buf in that case.
	NextInto(buf []byte) (*Tensor, error)
	// Offset returns how many bytes of the stream have been consumed, for progress reports.
	Offset() int64
}

// checkShape validates dims against the limits and returns the element count and the byte size
// for dtype, without overflowing.
func checkShape(dims []int64, d DType, lim *Limits) (shape []int, elems, size int64, err error) {
	if len(dims) > lim.MaxDims {
		return nil, 0, 0, fmt.Errorf("%w: %d dimensions (limit %d)", ErrLimit, len(dims), lim.MaxDims)
	}
	be, bb := d.blockShape()
	if be == 0 {
		return nil, 0, 0, fmt.Errorf("%w: data type %v", ErrUnsupported, d)
	}
	// No stored type packs more than two elements per byte (Q4_0: 32 in 18), so an element
	// count past twice the byte limit is over it whatever the type; checking this first keeps
	// the product below from overflowing.
	maxElems := min(lim.MaxTensorBytes, 1<<61) * 2
	elems = 1
	shape = make([]int, len(dims))
	for i, v := range dims {
		if v < 0 {
			return nil, 0, 0, fmt.Errorf("%w: dimension %d is %d", ErrCorrupt, i, v)
		}
		if v > 0 && elems > maxElems/v {
			return nil, 0, 0, fmt.Errorf("%w: shape %v has more than %d elements", ErrLimit, dims, maxElems)
		}
		elems *= v
		shape[i] = int(v)
	}
	if elems == 0 {
		return shape, 0, 0, nil
	}
	if be > 1 {
		// Blocks run along the innermost dimension and never straddle rows (ggml's rule).
		if len(dims) == 0 || dims[len(dims)-1]%be != 0 {
			return nil, 0, 0, fmt.Errorf("%w: %v needs the innermost dimension to be a multiple of %d, shape is %v", ErrCorrupt, d, be, dims)
		}
	}
	if elems/be > lim.MaxTensorBytes/bb {
		return nil, 0, 0, fmt.Errorf("%w: shape %v of %v is more than %d bytes", ErrLimit, dims, d, lim.MaxTensorBytes)
	}
	return shape, elems, elems / be * bb, nil
}

// countingReader tracks the absolute stream offset so errors can name it.
type countingReader struct {
	r   io.Reader
	off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.off += int64(n)
	return n, err
}

// readChunk is the largest buffer readExact commits to before the bytes have arrived.
const readChunk = 1 << 20

// readExact reads exactly n bytes. Unless trusted (the stream is known to hold them), its buffer
// grows with the bytes actually read (doubling, capped at n), so a lying header cannot make it
// allocate more than about twice what the stream holds.
func readExact(r io.Reader, n int64, trusted bool) ([]byte, int64, error) {
	return readInto(r, n, trusted, nil)
}

// readInto is readExact into buf when cap(buf) >= n.
func readInto(r io.Reader, n int64, trusted bool, buf []byte) ([]byte, int64, error) {
	if int64(cap(buf)) >= n {
		buf = buf[:n]
		got, err := io.ReadFull(r, buf)
		return buf, int64(got), err
	}
	if n <= readChunk || trusted {
		buf := make([]byte, n)
		got, err := io.ReadFull(r, buf)
		return buf, int64(got), err
	}
	buf = make([]byte, 0, readChunk)
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			c := min(n, int64(cap(buf))*2)
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, int64(len(buf)), err
		}
	}
	return buf, n, nil
}

// skip discards n bytes (gaps between tensors, alignment padding).
func skip(r io.Reader, n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	m, err := io.CopyN(io.Discard, r, n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return m, err
}

// truncated builds the error for a stream that ended inside a tensor.
func truncated(format, name string, off, want, got int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("format: %s: tensor %q at byte %d: %w: got %d of %d bytes", format, name, off, ErrTruncated, got, want)
	}
	return fmt.Errorf("format: %s: tensor %q at byte %d: %w", format, name, off, err)
}

func f32frombits(b []byte) float32 {
	return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
}

// checkEnds rejects, at header time, tensors that end past a known stream size.
func checkEnds(infos []TensorInfo, size int64) error {
	if size <= 0 {
		return nil
	}
	for _, t := range infos {
		if t.Offset+t.Size > size {
			return fmt.Errorf("tensor %q at byte %d: %w: ends at byte %d, past the end of the %d-byte stream", t.Name, t.Offset, ErrTruncated, t.Offset+t.Size, size)
		}
	}
	return nil
}
