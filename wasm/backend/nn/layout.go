package nn

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

// Path names the form a weight takes inside the WebNN graph; it is reported per weight and in
// benchmark lines so no number is read without knowing what ran.
type Path string

const (
	// PathInt4 keeps the codes as a signed int4 constant: 2-bit and 4-bit weights.
	PathInt4 Path = "int4-constant"
	// PathInt8 keeps the codes as an int8 constant (symmetric, or asymmetric shifted by 128).
	PathInt8 Path = "int8-constant"
	// PathUint8 keeps asymmetric codes as a uint8 constant with uint8 zero points.
	PathUint8 Path = "uint8-constant"
	// PathF32 holds the weights dequantized to float32 in Go: the last resort, 4 bytes a weight.
	PathF32 Path = "f32-constant"
	// PathF16Cast holds IEEE-half weights as a float16 constant cast to float32 in the graph.
	PathF16Cast Path = "f16-constant-cast"
)

// Accepter is the part of webnn.Limits the planner reads, so tests can fake a browser.
type Accepter interface {
	Accepts(op, operand string, t webnn.DataType, rank int) bool
}

// Layout is one weight as graph constants. For quantized paths the codes are [N, G, B]: G groups
// of B columns each, with the scale and zero point [N, G, 1]. That shape makes dequantizeLinear's
// block-wise broadcast an ordinary broadcast along the last axis, which TFLite runs about ten
// times faster than a [N, K] × [N, G] block-wise scale (measured: 52 ms against 488 ms for int8
// 4096×4096, group 32). B is the group size, or for per-channel the row rounded up to whole
// stored words. Columns from K to KPad = G·B are zero codes; the graph pads x with zeros to KPad,
// so those columns add exactly zero whatever the padded weights dequantize to. The stored nibble
// tensor is never padded: only this graph-side copy is.
type Layout struct {
	Path   Path
	N, K   int
	G, B   int // groups per row and columns per group in the graph; KPad = G·B
	Codes  webnn.Descriptor
	Scales webnn.Descriptor // nil DataType for float paths
	Zeros  webnn.Descriptor
	// CodeBytes, ScaleBytes and ZeroBytes hold exactly the descriptors' ByteLength.
	CodeBytes, ScaleBytes, ZeroBytes []byte
	// Note says why this path was taken, for Caps().Notes and test logs.
	Note string
}

// KPad is the padded row length the graph multiplies.
func (l *Layout) KPad() int { return l.G * l.B }

// Bytes is what the graph's constants hold.
func (l *Layout) Bytes() int { return len(l.CodeBytes) + len(l.ScaleBytes) + len(l.ZeroBytes) }

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// dqAccepts says whether dequantizeLinear takes codes of type dt with zero points of the same
// type (WebNN requires that) and float32 scales, at rank 3, and constants of that type exist.
func dqAccepts(a Accepter, dt webnn.DataType) bool {
	return a.Accepts("constant", "", dt, 3) &&
		a.Accepts("dequantizeLinear", "input", dt, 3) &&
		a.Accepts("dequantizeLinear", "zeroPoint", dt, 3) &&
		a.Accepts("dequantizeLinear", "scale", webnn.Float32, 3)
}

// Plan chooses the path for t from what the context accepts and lays the weight out for it.
// It is pure Go: every choice and every byte is checked natively against quant.Dequantize.
func Plan(t *quant.Tensor, a Accepter) (*Layout, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("webnn plan: %w", err)
	}
	switch t.Bits {
	case 32:
		return planFloat(t, webnn.Float32, PathF32, "float32 weights as a float32 constant"), nil
	case 16:
		if a.Accepts("constant", "", webnn.Float16, 2) && a.Accepts("cast", "input", webnn.Float16, 2) {
			return planFloat(t, webnn.Float16, PathF16Cast, "float16 weights as a float16 constant, cast to float32 in the graph"), nil
		}
		return planDequantized(t, "float16 constants or cast from float16 not accepted: widened to float32 in Go"), nil
	}
	if t.N == 1 && t.Groups(t.K) > 1 {
		// Chromium's TFLite backend reads a [1, G, B] × [1, G, 1] dequantize as per-axis on the
		// group axis and fails to compile it ("Failed to build TFL interpreter"); a one-row
		// weight is K floats, so it is dequantized here instead.
		return planDequantized(t, fmt.Sprintf("%v with one row and %d groups: dequantized to float32 in Go (TFLite cannot compile a 1×G block-wise dequantize)", t.Format, t.Groups(t.K))), nil
	}
	// Candidates in order of bytes per weight. uint4 is not tried: WebNN's int4 with every code
	// shifted by 8 holds the same values, and Chromium 153 rejects uint4 anyway.
	signedBits := func(bits int) webnn.DataType {
		if bits == 4 {
			return webnn.Int4
		}
		return webnn.Int8
	}
	var tried []string
	for _, bits := range []int{4, 8} {
		if t.Bits > bits {
			continue
		}
		dt := signedBits(bits)
		flip := t.Scheme == quant.Asymmetric // unsigned codes shifted into the signed type
		if bits == 8 && t.Scheme == quant.Asymmetric && dqAccepts(a, webnn.Uint8) {
			dt, flip = webnn.Uint8, false
		}
		if !dqAccepts(a, dt) {
			tried = append(tried, string(dt))
			continue
		}
		note := fmt.Sprintf("%v as %s constants, dequantizeLinear [N,G,B]×[N,G,1]", t.Format, dt)
		if len(tried) > 0 {
			note += fmt.Sprintf(" (dequantizeLinear rejects %v)", tried)
		}
		if t.Bits != bits {
			note += fmt.Sprintf("; %d-bit codes widened to %d bits", t.Bits, bits)
		}
		if flip {
			note += fmt.Sprintf("; unsigned codes and zero points shifted by %d into %s", 1<<(bits-1), dt)
		}
		if t.Format.Scales == quant.ScaleF16 {
			note += "; f16 scales widened to f32 in Go (exact) so the graph computes in float32"
		}
		return planQuantized(t, dt, flip, note), nil
	}
	return planDequantized(t, fmt.Sprintf("dequantizeLinear rejects %v: %v dequantized to float32 in Go", tried, t.Format)), nil
}

func pathOf(dt webnn.DataType) Path {
	switch dt {
	case webnn.Int4:
		return PathInt4
	case webnn.Uint8:
		return PathUint8
	}
	return PathInt8
}

// planFloat copies float rows out of their 4-byte-aligned stride.
func planFloat(t *quant.Tensor, dt webnn.DataType, p Path, note string) *Layout {
	l := &Layout{Path: p, N: t.N, K: t.K, G: 1, B: t.K, Note: note,
		Codes: webnn.Descriptor{DataType: dt, Shape: []int{t.N, t.K}}}
	rs, row := t.RowStride(t.K), t.K*dt.Bits()/8
	if rs == row {
		l.CodeBytes = t.Data
		return l
	}
	l.CodeBytes = make([]byte, t.N*row)
	for n := 0; n < t.N; n++ {
		copy(l.CodeBytes[n*row:(n+1)*row], t.Data[n*rs:])
	}
	return l
}

func planDequantized(t *quant.Tensor, note string) *Layout {
	w := quant.Dequantize(t)
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &Layout{Path: PathF32, N: t.N, K: t.K, G: 1, B: t.K, Note: note,
		Codes: webnn.Descriptor{DataType: webnn.Float32, Shape: []int{t.N, t.K}}, CodeBytes: b}
}

func planQuantized(t *quant.Tensor, dt webnn.DataType, flip bool, note string) *Layout {
	bits := dt.Bits()
	G := t.Groups(t.K)
	B := t.Group(t.K)
	if G == 1 { // per-channel: keep whole stored words so the rows can be used as they are
		if bits == t.Bits {
			B = t.RowStride(t.K) * 8 / bits
		} else {
			B = roundUp(t.K, 8)
		}
	}
	l := &Layout{Path: pathOf(dt), N: t.N, K: t.K, G: G, B: B, Note: note,
		Codes:  webnn.Descriptor{DataType: dt, Shape: []int{t.N, G, B}},
		Scales: webnn.Descriptor{DataType: webnn.Float32, Shape: []int{t.N, G, 1}},
		Zeros:  webnn.Descriptor{DataType: dt, Shape: []int{t.N, G, 1}},
	}
	kp := G * B
	off := 0
	if flip {
		off = 1 << (bits - 1)
	}
	rs := t.RowStride(t.K)
	dstRow := kp * bits / 8
	switch {
	case bits == t.Bits && dstRow == rs && !flip:
		l.CodeBytes = t.Data // already the graph's layout
	case bits == t.Bits:
		l.CodeBytes = make([]byte, t.N*dstRow)
		for n := 0; n < t.N; n++ {
			copy(l.CodeBytes[n*dstRow:], t.Data[n*rs:(n+1)*rs])
		}
		if flip { // u − 2^(b−1) in b-bit two's complement is u with its top bit flipped
			x := byte(0x80)
			if bits == 4 {
				x = 0x88
			}
			for i := range l.CodeBytes {
				l.CodeBytes[i] ^= x
			}
		}
	default: // widen 2-bit codes
		l.CodeBytes = make([]byte, t.N*dstRow)
		signed := t.Scheme == quant.Symmetric
		for n := 0; n < t.N; n++ {
			src, dst := t.Data[n*rs:(n+1)*rs], l.CodeBytes[n*dstRow:(n+1)*dstRow]
			for k := 0; k < t.K; k++ {
				quant.PutCode(dst, bits, k, quant.Code(src, t.Bits, k, signed)-off)
			}
		}
	}
	l.ZeroBytes = make([]byte, l.Zeros.ByteLength())
	if t.Scheme == quant.Asymmetric {
		for n := 0; n < t.N; n++ {
			for g := 0; g < G; g++ {
				quant.PutCode(l.ZeroBytes, bits, n*G+g, t.Zero(n, g)-off)
			}
		}
	}
	if t.Format.Scales == quant.ScaleF32 {
		l.ScaleBytes = t.Scales
	} else {
		l.ScaleBytes = make([]byte, 4*t.N*G)
		for n := 0; n < t.N; n++ {
			for g := 0; g < G; g++ {
				binary.LittleEndian.PutUint32(l.ScaleBytes[4*(n*G+g):], math.Float32bits(t.Scale(n, g)))
			}
		}
	}
	return l
}

// Dequantize computes what the graph computes from the layout, as WebNN defines
// dequantizeLinear ((q − z)·s in float32), and returns the N×K weights with the padding
// columns dropped. Tests compare it bit for bit with quant.Dequantize.
func (l *Layout) Dequantize() []float32 {
	out := make([]float32, l.N*l.K)
	for n := 0; n < l.N; n++ {
		l.rowInto(out[n*l.K:(n+1)*l.K], n, l.CodeBytes, 0, l.ScaleBytes, 0, l.ZeroBytes, 0)
	}
	return out
}

// span is a byte range [Lo, Hi) of one constant.
type span struct{ Lo, Hi int }

// rowSpans are the byte ranges of the codes, scales and zero points that hold rows [n, n+count):
// what a host-side read of a few rows (an embedding lookup, a weight requantized in chunks)
// copies out of the constants. Codes and zero points of 4 bits are packed densely across rows,
// so a range may start in the middle of a byte; rowInto takes the range's start.
func (l *Layout) rowSpans(n, count int) (codes, scales, zeros span) {
	bits := l.Codes.DataType.Bits()
	kp := l.KPad()
	codes = span{n * kp * bits / 8, ((n+count)*kp*bits + 7) / 8}
	if l.Scales.DataType == "" {
		return codes, span{}, span{}
	}
	zb := l.Zeros.DataType.Bits()
	return codes, span{4 * n * l.G, 4 * (n + count) * l.G}, span{n * l.G * zb / 8, ((n+count)*l.G*zb + 7) / 8}
}

// rowInto writes row n's K values into dst, as Dequantize computes them, from bytes of the
// codes, scales and zero points that start at byte offsets co, so and zo of the constants (the
// whole constants from 0, or ranges that rowSpans gave).
func (l *Layout) rowInto(dst []float32, n int, codes []byte, co int, scales []byte, so int, zeros []byte, zo int) {
	kp := l.KPad()
	bits := l.Codes.DataType.Bits()
	for k := 0; k < l.K; k++ {
		i := n*kp + k
		switch l.Codes.DataType {
		case webnn.Float32:
			dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(codes[4*i-co:]))
		case webnn.Float16:
			dst[k] = f16(binary.LittleEndian.Uint16(codes[2*i-co:]))
		default:
			signed := l.Codes.DataType != webnn.Uint8
			g := n*l.G + k/l.B
			s := math.Float32frombits(binary.LittleEndian.Uint32(scales[4*g-so:]))
			q := quant.Code(codes, bits, i-co*8/bits, signed)
			z := quant.Code(zeros, bits, g-zo*8/bits, signed)
			dst[k] = float32(q-z) * s
		}
	}
}
