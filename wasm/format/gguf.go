package format

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
)

// GGUF layout (ggml's docs/gguf.md), all little-endian:
//
//	u32 magic "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 metadata_kv_count
//	metadata_kv_count × { string key | u32 value_type | value }
//	tensor_count × { string name | u32 n_dims | n_dims × u64 ne (innermost first) | u32 ggml_type | u64 offset }
//	zero padding to general.alignment (default 32), then tensor data; offsets are relative to
//	its start and multiples of the alignment.
//
// A string is a u64 length and that many UTF-8 bytes (no terminator). An array value is a u32
// element type, a u64 count and the elements.

// GGUFMagic is the first four bytes of every GGUF file.
const GGUFMagic = "GGUF"

// GGUFDefaultAlignment applies when the metadata has no general.alignment.
const GGUFDefaultAlignment = 32

// GGUFValueType is the type tag of a metadata value.
type GGUFValueType uint32

const (
	GGUFUint8 GGUFValueType = iota
	GGUFInt8
	GGUFUint16
	GGUFInt16
	GGUFUint32
	GGUFInt32
	GGUFFloat32
	GGUFBool
	GGUFString
	GGUFArray
	GGUFUint64
	GGUFInt64
	GGUFFloat64
)

// ggml_type numbers of the tensor types this package reads.
var ggmlTypes = map[uint32]DType{
	0: F32, 1: F16, 2: Q4_0, 3: Q4_1, 6: Q5_0, 7: Q5_1, 8: Q8_0, 9: Q8_1,
	10: Q2_K, 11: Q3_K, 12: Q4_K, 13: Q5_K, 14: Q6_K, 15: Q8_K,
	24: I8, 25: I16, 26: I32, 27: I64, 28: F64, 30: BF16,
}

func ggmlType(d DType) (uint32, bool) {
	for k, v := range ggmlTypes {
		if v == d {
			return k, true
		}
	}
	return 0, false
}

// GGUFKV is one metadata entry. Value holds uint8…float64, bool or string for scalars, and a
// typed slice ([]string, []int32, []float32, ...) for arrays; arrays of arrays are []any.
type GGUFKV struct {
	Key   string
	Type  GGUFValueType
	Value any
}

// GGUFReader reads a GGUF v2 or v3 stream incrementally. It implements Reader.
type GGUFReader struct {
	stream
	Version  uint32
	Metadata []GGUFKV // in file order
	// Alignment of tensor data; DataOffset is where tensor data starts.
	Alignment, DataOffset int64
	lim                   Limits
	scratch               [8]byte
}

var _ Reader = (*GGUFReader)(nil)

// Meta returns the value of the metadata key, if present.
func (g *GGUFReader) Meta(key string) (any, bool) {
	for _, kv := range g.Metadata {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// GGUFMeta returns the metadata value of key as a T (string, uint32, []string, ...); ok is false
// when the key is absent or holds another type.
//
//	layers, ok := format.GGUFMeta[uint32](g, "llama.block_count")
func GGUFMeta[T any](g *GGUFReader, key string) (v T, ok bool) {
	a, found := g.Meta(key)
	if !found {
		return v, false
	}
	v, ok = a.(T)
	return v, ok
}

// NewGGUF reads and validates the header, metadata and tensor infos from r; tensors follow with
// Next in the order of their offsets.
func NewGGUF(r io.Reader, lim *Limits) (*GGUFReader, error) {
	g := &GGUFReader{lim: lim.withDefaults(), Alignment: GGUFDefaultAlignment}
	g.stream = stream{format: "gguf", r: countingReader{r: bufio.NewReaderSize(r, 64<<10)}, size: g.lim.StreamSize}
	if err := g.readHeader(); err != nil {
		return nil, fmt.Errorf("format: gguf: %w", err)
	}
	return g, nil
}

func (g *GGUFReader) readHeader() error {
	magic, err := g.bytes(4)
	if err != nil {
		return err
	}
	if string(magic) != GGUFMagic {
		return fmt.Errorf("header at byte 0: %w: magic %q, want %q", ErrCorrupt, magic, GGUFMagic)
	}
	if g.Version, err = g.u32(); err != nil {
		return err
	}
	if g.Version != 2 && g.Version != 3 {
		return fmt.Errorf("header at byte 4: %w: version %d (want 2 or 3)", ErrUnsupported, g.Version)
	}
	nt, err := g.u64()
	if err != nil {
		return err
	}
	if nt > uint64(g.lim.MaxTensors) {
		return fmt.Errorf("header at byte 8: %w: %d tensors (limit %d)", ErrLimit, nt, g.lim.MaxTensors)
	}
	nkv, err := g.u64()
	if err != nil {
		return err
	}
	if nkv > uint64(g.lim.MaxArrayLen) {
		return fmt.Errorf("header at byte 16: %w: %d metadata entries (limit %d)", ErrLimit, nkv, g.lim.MaxArrayLen)
	}
	for i := uint64(0); i < nkv; i++ {
		off := g.r.off
		key, err := g.str()
		if err != nil {
			return fmt.Errorf("metadata entry %d at byte %d: %w", i, off, err)
		}
		typ, err := g.u32()
		if err != nil {
			return fmt.Errorf("metadata %q at byte %d: %w", key, off, err)
		}
		v, err := g.value(GGUFValueType(typ), 0)
		if err != nil {
			return fmt.Errorf("metadata %q at byte %d: %w", key, off, err)
		}
		g.Metadata = append(g.Metadata, GGUFKV{Key: key, Type: GGUFValueType(typ), Value: v})
		if key == "general.alignment" {
			a, ok := v.(uint32)
			if !ok || a == 0 || a%8 != 0 || a > 1<<30 {
				return fmt.Errorf("metadata %q at byte %d: %w: %v (%T), want a uint32 multiple of 8", key, off, ErrCorrupt, v, v)
			}
			g.Alignment = int64(a)
		}
	}
	names := map[string]bool{}
	rel := make([]int64, 0, min(nt, 1024))
	for i := uint64(0); i < nt; i++ {
		off := g.r.off
		info, o, err := g.tensorInfo()
		if err != nil {
			if info.Name != "" {
				return fmt.Errorf("tensor %q (info at byte %d): %w", info.Name, off, err)
			}
			return fmt.Errorf("tensor info %d at byte %d: %w", i, off, err)
		}
		if names[info.Name] {
			return fmt.Errorf("tensor %q (info at byte %d): %w: name appears twice", info.Name, off, ErrCorrupt)
		}
		names[info.Name] = true
		g.infos = append(g.infos, info)
		rel = append(rel, o)
	}
	g.DataOffset = alignUp(g.r.off, g.Alignment)
	for i := range g.infos {
		g.infos[i].Offset = g.DataOffset + rel[i]
	}
	slices.SortStableFunc(g.infos, func(a, b TensorInfo) int {
		if a.Offset != b.Offset {
			return cmpInt64(a.Offset, b.Offset)
		}
		return cmpInt64(a.Size, b.Size)
	})
	if err := checkOverlaps(g.infos); err != nil {
		return err
	}
	return checkEnds(g.infos, g.size)
}

func (g *GGUFReader) tensorInfo() (TensorInfo, int64, error) {
	var info TensorInfo
	name, err := g.str()
	if err != nil {
		return info, 0, err
	}
	info.Name = name
	nd, err := g.u32()
	if err != nil {
		return info, 0, err
	}
	if nd > uint32(g.lim.MaxDims) {
		return info, 0, fmt.Errorf("%w: %d dimensions (limit %d)", ErrLimit, nd, g.lim.MaxDims)
	}
	dims := make([]int64, nd)
	for j := range dims {
		v, err := g.u64()
		if err != nil {
			return info, 0, err
		}
		if v > 1<<62 {
			return info, 0, fmt.Errorf("%w: dimension %d is %d", ErrLimit, j, v)
		}
		// GGUF lists ne innermost first; Shape is outermost first.
		dims[int(nd)-1-j] = int64(v)
	}
	typ, err := g.u32()
	if err != nil {
		return info, 0, err
	}
	d, ok := ggmlTypes[typ]
	if !ok {
		return info, 0, fmt.Errorf("%w: ggml type %d (this reader knows F32, F16, BF16, integers, Q4_0…Q8_1 and the K-quants; not the IQ types)", ErrUnsupported, typ)
	}
	shape, _, size, err := checkShape(dims, d, &g.lim)
	if err != nil {
		return info, 0, err
	}
	o, err := g.u64()
	if err != nil {
		return info, 0, err
	}
	if o > 1<<62 || int64(o)%g.Alignment != 0 {
		return info, 0, fmt.Errorf("%w: data offset %d is not a multiple of the alignment %d", ErrCorrupt, o, g.Alignment)
	}
	info.DType, info.Shape, info.Size = d, shape, size
	return info, int64(o), nil
}

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

// value reads one metadata value of type t; depth bounds nested arrays.
func (g *GGUFReader) value(t GGUFValueType, depth int) (any, error) {
	switch t {
	case GGUFUint8, GGUFInt8, GGUFBool:
		b, err := g.bytes(1)
		if err != nil {
			return nil, err
		}
		switch t {
		case GGUFUint8:
			return b[0], nil
		case GGUFInt8:
			return int8(b[0]), nil
		}
		if b[0] > 1 {
			return nil, fmt.Errorf("%w: bool %d", ErrCorrupt, b[0])
		}
		return b[0] == 1, nil
	case GGUFUint16, GGUFInt16:
		b, err := g.bytes(2)
		if err != nil {
			return nil, err
		}
		v := binary.LittleEndian.Uint16(b)
		if t == GGUFInt16 {
			return int16(v), nil
		}
		return v, nil
	case GGUFUint32, GGUFInt32, GGUFFloat32:
		v, err := g.u32()
		switch {
		case err != nil:
			return nil, err
		case t == GGUFInt32:
			return int32(v), nil
		case t == GGUFFloat32:
			return math.Float32frombits(v), nil
		}
		return v, nil
	case GGUFUint64, GGUFInt64, GGUFFloat64:
		v, err := g.u64()
		switch {
		case err != nil:
			return nil, err
		case t == GGUFInt64:
			return int64(v), nil
		case t == GGUFFloat64:
			return math.Float64frombits(v), nil
		}
		return v, nil
	case GGUFString:
		return g.str()
	case GGUFArray:
		if depth >= 2 {
			return nil, fmt.Errorf("%w: arrays nested deeper than 2", ErrLimit)
		}
		et, err := g.u32()
		if err != nil {
			return nil, err
		}
		n, err := g.u64()
		if err != nil {
			return nil, err
		}
		if n > uint64(g.lim.MaxArrayLen) {
			return nil, fmt.Errorf("%w: array of %d elements (limit %d)", ErrLimit, n, g.lim.MaxArrayLen)
		}
		return g.array(GGUFValueType(et), int(n), depth)
	}
	return nil, fmt.Errorf("%w: value type %d", ErrCorrupt, t)
}

// array reads n elements of type t into a typed slice. Capacity grows with the elements read,
// never with the declared count alone.
func (g *GGUFReader) array(t GGUFValueType, n, depth int) (any, error) {
	switch t {
	case GGUFUint8:
		return readArray[uint8](g, t, n, depth)
	case GGUFInt8:
		return readArray[int8](g, t, n, depth)
	case GGUFUint16:
		return readArray[uint16](g, t, n, depth)
	case GGUFInt16:
		return readArray[int16](g, t, n, depth)
	case GGUFUint32:
		return readArray[uint32](g, t, n, depth)
	case GGUFInt32:
		return readArray[int32](g, t, n, depth)
	case GGUFFloat32:
		return readArray[float32](g, t, n, depth)
	case GGUFBool:
		return readArray[bool](g, t, n, depth)
	case GGUFString:
		return readArray[string](g, t, n, depth)
	case GGUFUint64:
		return readArray[uint64](g, t, n, depth)
	case GGUFInt64:
		return readArray[int64](g, t, n, depth)
	case GGUFFloat64:
		return readArray[float64](g, t, n, depth)
	case GGUFArray:
		return readArray[any](g, t, n, depth)
	}
	return nil, fmt.Errorf("%w: array element type %d", ErrCorrupt, t)
}

func readArray[T any](g *GGUFReader, t GGUFValueType, n, depth int) ([]T, error) {
	out := make([]T, 0, min(n, 4096))
	for i := 0; i < n; i++ {
		v, err := g.value(t, depth+1)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out = append(out, v.(T))
	}
	return out, nil
}

func (g *GGUFReader) bytes(n int) ([]byte, error) {
	b := g.scratch[:n]
	if _, err := io.ReadFull(&g.r, b); err != nil {
		return nil, g.eof(err)
	}
	return b, nil
}

func (g *GGUFReader) eof(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ended at byte %d inside the header", ErrTruncated, g.r.off)
	}
	return err
}

func (g *GGUFReader) u32() (uint32, error) {
	b, err := g.bytes(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (g *GGUFReader) u64() (uint64, error) {
	b, err := g.bytes(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (g *GGUFReader) str() (string, error) {
	n, err := g.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(g.lim.MaxStringBytes) {
		return "", fmt.Errorf("%w: string of %d bytes (limit %d)", ErrLimit, n, g.lim.MaxStringBytes)
	}
	b, _, err := readExact(&g.r, int64(n), false)
	if err != nil {
		return "", g.eof(err)
	}
	return string(b), nil
}
