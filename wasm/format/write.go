package format

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// The writers stream: the header is written from the tensor list up front, then the caller writes
// every tensor's bytes in list order, in pieces of any size, through Write. Padding between
// tensors is inserted automatically. Nothing is buffered beyond a bufio.Writer.

// ErrWriter is wrapped by errors from misuse of a writer (too many or too few bytes).
var ErrWriter = errors.New("writer misuse")

// dataWriter counts tensor bytes, inserting padding before each tensor's Offset.
type dataWriter struct {
	w     *bufio.Writer
	infos []TensorInfo
	i     int   // tensor being written
	off   int64 // absolute offset of the next byte
	err   error
}

// Write takes the next bytes of tensor data, in list order; p may span tensor boundaries.
func (d *dataWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := 0
	for len(p) > 0 {
		for d.i < len(d.infos) && d.off >= d.infos[d.i].Offset+d.infos[d.i].Size {
			d.i++
		}
		if d.i >= len(d.infos) {
			d.err = fmt.Errorf("format: %w: %d bytes more than the tensors hold", ErrWriter, len(p))
			return n, d.err
		}
		t := d.infos[d.i]
		if err := d.pad(t.Offset); err != nil {
			return n, err
		}
		m := int(min(int64(len(p)), t.Offset+t.Size-d.off))
		if _, err := d.w.Write(p[:m]); err != nil {
			d.err = err
			return n, err
		}
		d.off += int64(m)
		n += m
		p = p[m:]
	}
	return n, nil
}

func (d *dataWriter) pad(to int64) error {
	var zero [64]byte
	for d.off < to {
		m := min(int64(len(zero)), to-d.off)
		if _, err := d.w.Write(zero[:m]); err != nil {
			d.err = err
			return err
		}
		d.off += m
	}
	return nil
}

// Close checks that every tensor was written in full and flushes; it does not close the
// underlying writer.
func (d *dataWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	// Zero-size tensors need no bytes, wherever they sit.
	for _, t := range d.infos {
		if t.Size > 0 && d.off < t.Offset+t.Size {
			return fmt.Errorf("format: tensor %q: %w: wrote up to byte %d, the tensor ends at byte %d", t.Name, ErrWriter, d.off, t.Offset+t.Size)
		}
	}
	return d.w.Flush()
}

func writerInfos(tensors []TensorInfo) ([]TensorInfo, error) {
	lim := Limits{}
	l := lim.withDefaults()
	out := slices.Clone(tensors)
	for i := range out {
		t := &out[i]
		if t.Affine != nil {
			return nil, fmt.Errorf("format: tensor %q: %w: affine tensors cannot be written", t.Name, ErrUnsupported)
		}
		dims := make([]int64, len(t.Shape))
		for j, v := range t.Shape {
			dims[j] = int64(v)
		}
		_, _, size, err := checkShape(dims, t.DType, &l)
		if err != nil {
			return nil, fmt.Errorf("format: tensor %q: %w", t.Name, err)
		}
		t.Size = size
	}
	return out, nil
}

// SafetensorsWriter writes a safetensors file; see NewSafetensorsWriter.
type SafetensorsWriter struct{ dataWriter }

// NewSafetensorsWriter writes the header for tensors (Offset and Size are computed; data follows
// in list order) and returns a writer for their bytes. The header is padded with spaces so the
// buffer starts 8-byte aligned. Close checks every byte was written.
func NewSafetensorsWriter(w io.Writer, tensors []TensorInfo, metadata map[string]string) (*SafetensorsWriter, error) {
	infos, err := writerInfos(tensors)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{"__metadata__": true}
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if metadata != nil {
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(mustMarshal(metadata))
	}
	var off int64
	for i := range infos {
		t := &infos[i]
		if names[t.Name] {
			return nil, fmt.Errorf("format: safetensors: tensor %q: %w: name used twice", t.Name, ErrWriter)
		}
		names[t.Name] = true
		var name string
		for n, d := range safetensorsDTypes {
			if d == t.DType {
				name = n
			}
		}
		if name == "" {
			return nil, fmt.Errorf("format: safetensors: tensor %q: %w: %v", t.Name, ErrUnsupported, t.DType)
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		hdr.Write(mustMarshal(t.Name))
		fmt.Fprintf(&hdr, `:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, mustMarshal(t.Shape), off, off+t.Size)
		t.Offset = off
		off += t.Size
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	base := 8 + int64(hdr.Len())
	for i := range infos {
		infos[i].Offset += base
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var size [8]byte
	binary.LittleEndian.PutUint64(size[:], uint64(hdr.Len()))
	bw.Write(size[:])
	if _, err := bw.Write(hdr.Bytes()); err != nil {
		return nil, err
	}
	return &SafetensorsWriter{dataWriter{w: bw, infos: infos, off: base}}, nil
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings, maps of strings and int slices reach here
	}
	return b
}

// GGUFWriter writes a GGUF v3 file; see NewGGUFWriter.
type GGUFWriter struct{ dataWriter }

// NewGGUFWriter writes a GGUF v3 header with metadata (scalars of Go types uint8…float64, bool,
// string, and slices of those) and tensor infos, and returns a writer for the tensors' bytes in
// list order. A general.alignment entry (uint32) sets the alignment; otherwise it is 32.
func NewGGUFWriter(w io.Writer, tensors []TensorInfo, metadata []GGUFKV) (*GGUFWriter, error) {
	infos, err := writerInfos(tensors)
	if err != nil {
		return nil, err
	}
	align := int64(GGUFDefaultAlignment)
	bw := bufio.NewWriterSize(w, 1<<20)
	e := &ggufEncoder{w: bw}
	e.raw([]byte(GGUFMagic))
	e.u32(3)
	e.u64(uint64(len(infos)))
	e.u64(uint64(len(metadata)))
	for _, kv := range metadata {
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a%8 != 0 {
				return nil, fmt.Errorf("format: gguf: %w: general.alignment %v must be a uint32 multiple of 8", ErrWriter, kv.Value)
			}
			align = int64(a)
		}
		e.str(kv.Key)
		if err := e.value(kv.Value, true); err != nil {
			return nil, fmt.Errorf("format: gguf: metadata %q: %w", kv.Key, err)
		}
	}
	var rel int64
	names := map[string]bool{}
	for i := range infos {
		t := &infos[i]
		typ, ok := ggmlType(t.DType)
		if !ok {
			return nil, fmt.Errorf("format: gguf: tensor %q: %w: %v", t.Name, ErrUnsupported, t.DType)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("format: gguf: tensor %q: %w: name used twice", t.Name, ErrWriter)
		}
		names[t.Name] = true
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for j := len(t.Shape) - 1; j >= 0; j-- {
			e.u64(uint64(t.Shape[j]))
		}
		e.u32(typ)
		rel = alignUp(rel, align)
		e.u64(uint64(rel))
		t.Offset = rel
		rel += t.Size
	}
	if e.err != nil {
		return nil, e.err
	}
	base := alignUp(e.n, align)
	for i := range infos {
		infos[i].Offset += base
	}
	d := dataWriter{w: bw, infos: infos, off: e.n}
	if err := d.pad(base); err != nil {
		return nil, err
	}
	return &GGUFWriter{d}, nil
}

type ggufEncoder struct {
	w   *bufio.Writer
	n   int64
	err error
	b   [8]byte
}

func (e *ggufEncoder) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
		e.n += int64(len(p))
	}
}
func (e *ggufEncoder) u8(v uint8)   { e.raw([]byte{v}) }
func (e *ggufEncoder) u16(v uint16) { binary.LittleEndian.PutUint16(e.b[:], v); e.raw(e.b[:2]) }
func (e *ggufEncoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.b[:], v); e.raw(e.b[:4]) }
func (e *ggufEncoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.b[:], v); e.raw(e.b[:8]) }
func (e *ggufEncoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

// value writes v, preceded by its type tag when tagged (array elements share one tag).
func (e *ggufEncoder) value(v any, tagged bool) error {
	tag := func(t GGUFValueType) {
		if tagged {
			e.u32(uint32(t))
		}
	}
	switch x := v.(type) {
	case uint8:
		tag(GGUFUint8)
		e.u8(x)
	case int8:
		tag(GGUFInt8)
		e.u8(uint8(x))
	case uint16:
		tag(GGUFUint16)
		e.u16(x)
	case int16:
		tag(GGUFInt16)
		e.u16(uint16(x))
	case uint32:
		tag(GGUFUint32)
		e.u32(x)
	case int32:
		tag(GGUFInt32)
		e.u32(uint32(x))
	case float32:
		tag(GGUFFloat32)
		e.u32(math.Float32bits(x))
	case bool:
		tag(GGUFBool)
		e.u8(map[bool]uint8{false: 0, true: 1}[x])
	case string:
		tag(GGUFString)
		e.str(x)
	case uint64:
		tag(GGUFUint64)
		e.u64(x)
	case int64:
		tag(GGUFInt64)
		e.u64(uint64(x))
	case float64:
		tag(GGUFFloat64)
		e.u64(math.Float64bits(x))
	case []string:
		return writeArray(e, GGUFString, x, tagged)
	case []uint32:
		return writeArray(e, GGUFUint32, x, tagged)
	case []int32:
		return writeArray(e, GGUFInt32, x, tagged)
	case []float32:
		return writeArray(e, GGUFFloat32, x, tagged)
	case []uint8:
		return writeArray(e, GGUFUint8, x, tagged)
	case []int64:
		return writeArray(e, GGUFInt64, x, tagged)
	default:
		return fmt.Errorf("%w: metadata value of type %T", ErrUnsupported, v)
	}
	return e.err
}

func writeArray[T any](e *ggufEncoder, et GGUFValueType, xs []T, tagged bool) error {
	if tagged {
		e.u32(uint32(GGUFArray))
	}
	e.u32(uint32(et))
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		if err := e.value(x, false); err != nil {
			return err
		}
	}
	return e.err
}
