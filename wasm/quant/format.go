// Package quant is nibble's reference for quantized weights: the formats, how they are packed,
// quantize and dequantize, a float64-accumulating MatMul, and error metrics.
//
// Every kernel (WGSL, WebNN graph, CPU fast path) is checked against this package. It is pure Go,
// has no syscall/js, and must stay that way so it tests natively in milliseconds.
//
// # Layout
//
// A weight matrix is row-major [N][K]: N output features, K input features. Groups run along K.
// GroupSize 0 means per-channel (one group spanning all of K). When K is not a multiple of the
// group size the last group of a row is short; it is never padded with invented values.
//
//   - int8: one byte per weight.
//   - int4: two weights per byte, element 2i in the low nibble, 2i+1 in the high nibble.
//   - int2: four weights per byte, element 4i in bits 0-1, 4i+1 in bits 2-3, and so on.
//   - Each row of packed data starts on a 4-byte boundary (RowStride bytes per row) so that GPU
//     kernels can read whole u32 words of one row. The padding bits are zero and are counted by Bytes.
//   - Symmetric (w = s·q): q is signed two's complement in Bits bits, range [-2^(b-1), 2^(b-1)-1].
//   - Asymmetric (w = s·(q − z)): q and z are unsigned in Bits bits, range [0, 2^b − 1]; zero points
//     are packed like data, [N][G] with ZeroStride bytes per row (also 4-byte aligned).
//   - Scales are [N][G] little-endian, float32 (ScaleF32) or IEEE half (ScaleF16), unpadded.
//   - Bits 16 stores each weight as IEEE half with no scales; Bits 32 stores float32 as is.
//
// # Numeric safety
//
// Finite weights never dequantize to NaN or Inf. A scale saturates at the largest finite value
// its type holds (65504 for f16; MaxFloat32/256 for f32, so s·(q−z) stays finite) and the
// outliers of its group clip, to ±65504·2^(Bits−1) under f16 scales. Clamping rather than
// falling back to f32 scales: a streaming load fixes a tensor's format before its rows arrive,
// and a tensor has one scale type. f16 storage (Bits 16) saturates at ±65504 likewise. A NaN or
// infinite weight is an error in every format, f32 included (ErrNotFinite, naming the tensor,
// row and column).
package quant

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// Scheme says how a group maps integers back to reals.
type Scheme uint8

const (
	// Symmetric groups store w = s·q with signed q and no zero point.
	Symmetric Scheme = iota
	// Asymmetric groups store w = s·(q − z) with unsigned q and an integer zero point z.
	Asymmetric
)

func (s Scheme) String() string {
	switch s {
	case Symmetric:
		return "sym"
	case Asymmetric:
		return "asym"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// ScaleType is the storage type of the per-group scales.
type ScaleType uint8

const (
	ScaleF32 ScaleType = iota // 4 bytes per scale (default)
	ScaleF16                  // 2 bytes per scale, IEEE half
)

func (t ScaleType) String() string {
	switch t {
	case ScaleF32:
		return "f32"
	case ScaleF16:
		return "f16"
	}
	return fmt.Sprintf("ScaleType(%d)", uint8(t))
}

// Size returns the bytes one scale occupies.
func (t ScaleType) Size() int {
	if t == ScaleF16 {
		return 2
	}
	return 4
}

// Format describes how one tensor is stored.
type Format struct {
	// Bits per weight: 2, 4 or 8 for quantized storage, 16 for IEEE half, 32 for float32.
	Bits int
	// Scheme is ignored for Bits 16 and 32.
	Scheme Scheme
	// GroupSize is the number of consecutive weights along K that share a scale: 16…256, or 0
	// for per-channel (one group per row).
	GroupSize int
	// Scales is the storage type of scales (ignored for Bits 16 and 32).
	Scales ScaleType
}

// Q4 is the format most callers want: int4, symmetric, group 32, f32 scales.
var Q4 = Format{Bits: 4, Scheme: Symmetric, GroupSize: 32, Scales: ScaleF32}

// Quantized reports whether the format carries integer codes and scales.
func (f Format) Quantized() bool { return f.Bits == 2 || f.Bits == 4 || f.Bits == 8 }

// Group returns the effective group length for rows of length k (k itself for per-channel).
func (f Format) Group(k int) int {
	if f.GroupSize == 0 || f.GroupSize > k {
		return k
	}
	return f.GroupSize
}

// Groups returns the number of groups in a row of length k; the last may be short.
func (f Format) Groups(k int) int {
	if !f.Quantized() || k == 0 {
		return 0
	}
	g := f.Group(k)
	return (k + g - 1) / g
}

// RowStride returns the bytes one packed row of k weights occupies, including padding to 4 bytes.
func (f Format) RowStride(k int) int {
	return (k*f.Bits + 31) / 32 * 4
}

// ZeroStride returns the bytes one row of packed zero points occupies (0 when symmetric).
func (f Format) ZeroStride(k int) int {
	if !f.Quantized() || f.Scheme != Asymmetric {
		return 0
	}
	return (f.Groups(k)*f.Bits + 31) / 32 * 4
}

// QMin and QMax return the range of stored codes.
func (f Format) QMin() int {
	if f.Scheme == Symmetric {
		return -(1 << (f.Bits - 1))
	}
	return 0
}

func (f Format) QMax() int {
	if f.Scheme == Symmetric {
		return 1<<(f.Bits-1) - 1
	}
	return 1<<f.Bits - 1
}

// String gives a short stable name such as "q4-sym-g32-f32" or "f16".
func (f Format) String() string {
	switch f.Bits {
	case 16:
		return "f16"
	case 32:
		return "f32"
	}
	g := "pc"
	if f.GroupSize > 0 {
		g = fmt.Sprintf("g%d", f.GroupSize)
	}
	return fmt.Sprintf("q%d-%s-%s-%s", f.Bits, f.Scheme, g, f.Scales)
}

// ErrFormat (an errs.ErrBadArgument: the caller asked for it) is wrapped by every error
// Validate returns.
var ErrFormat = errs.New(errs.ErrBadArgument, "quant: unsupported format")

// Validate says what is wrong with the format, if anything.
func (f Format) Validate() error {
	switch f.Bits {
	case 2, 4, 8:
	case 16, 32:
		return nil
	default:
		return fmt.Errorf("%w: Bits %d (want 2, 4, 8, 16 or 32)", ErrFormat, f.Bits)
	}
	if f.Scheme > Asymmetric {
		return fmt.Errorf("%w: %v", ErrFormat, f.Scheme)
	}
	if f.Scales > ScaleF16 {
		return fmt.Errorf("%w: %v", ErrFormat, f.Scales)
	}
	if f.GroupSize != 0 && (f.GroupSize < 16 || f.GroupSize > 256 || f.GroupSize%8 != 0) {
		return fmt.Errorf("%w: GroupSize %d (want 0 for per-channel, or a multiple of 8 in 16…256)", ErrFormat, f.GroupSize)
	}
	return nil
}

// Tensor is one weight matrix in a Format. Data, Scales and Zeros follow the layout in the package
// documentation exactly; backends upload these bytes as they are.
type Tensor struct {
	Name string
	N, K int // rows (output features) and columns (input features)
	Format
	Data   []byte // N × RowStride(K) bytes
	Scales []byte // N × Groups(K) scales, little-endian, Scales.Size() bytes each
	Zeros  []byte // N × ZeroStride(K) bytes; nil when symmetric
}

// Bytes is the exact memory the tensor holds: codes, scales and zero points, padding included.
func (t *Tensor) Bytes() int { return len(t.Data) + len(t.Scales) + len(t.Zeros) }

// Check verifies that the slices have the sizes the format and shape imply.
func (t *Tensor) Check() error {
	if err := t.Format.Validate(); err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if t.N <= 0 || t.K <= 0 {
		return fmt.Errorf("tensor %q: shape %d×%d: both dimensions must be positive", t.Name, t.N, t.K)
	}
	want := func(what string, got, n int) error {
		if got != n {
			return fmt.Errorf("tensor %q (%d×%d %v): %s has %d bytes, want %d", t.Name, t.N, t.K, t.Format, what, got, n)
		}
		return nil
	}
	if err := want("Data", len(t.Data), t.N*t.RowStride(t.K)); err != nil {
		return err
	}
	if err := want("Scales", len(t.Scales), t.N*t.Groups(t.K)*t.Format.Scales.Size()*b2i(t.Quantized())); err != nil {
		return err
	}
	return want("Zeros", len(t.Zeros), t.N*t.ZeroStride(t.K))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
