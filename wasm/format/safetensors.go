package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// safetensors layout: [0:8] little-endian u64 header length n; [8:8+n] a UTF-8 JSON object
// mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an optional
// "__metadata__" object of strings, possibly padded with trailing spaces; then the byte buffer,
// to which data_offsets are relative.

var safetensorsDTypes = map[string]DType{
	"F32": F32, "F16": F16, "BF16": BF16, "F64": F64,
	"I8": I8, "U8": U8, "I16": I16, "U16": U16, "I32": I32, "U32": U32, "I64": I64, "U64": U64, "BOOL": Bool,
	"F8_E4M3": F8E4M3, "F8_E5M2": F8E5M2,
}

// SafetensorsReader reads a safetensors stream incrementally. It implements Reader.
type SafetensorsReader struct {
	stream
	// Metadata is the header's "__metadata__" object (nil when absent).
	Metadata map[string]string
	// DataOffset is where the byte buffer starts: 8 + the header length.
	DataOffset int64
}

var _ Reader = (*SafetensorsReader)(nil)

// NewSafetensors reads and validates the header from r; tensors follow with Next, in the order of
// their data offsets. Bytes between tensors are skipped; overlapping tensors are rejected.
func NewSafetensors(r io.Reader, lim *Limits) (*SafetensorsReader, error) {
	l := lim.withDefaults()
	s := &SafetensorsReader{stream: stream{format: "safetensors", r: countingReader{r: r}, size: l.StreamSize}}
	var size [8]byte
	if _, err := io.ReadFull(&s.r, size[:]); err != nil {
		return nil, headerErr("safetensors", 0, err)
	}
	n := binary.LittleEndian.Uint64(size[:])
	if n > uint64(l.MaxHeaderBytes) {
		return nil, fmt.Errorf("format: safetensors: header at byte 8: %w: %d bytes (limit %d)", ErrLimit, n, l.MaxHeaderBytes)
	}
	if n < 2 {
		return nil, fmt.Errorf("format: safetensors: header at byte 8: %w: %d bytes is too short for a JSON object", ErrCorrupt, n)
	}
	if l.StreamSize > 0 && n > uint64(l.StreamSize-8) {
		return nil, fmt.Errorf("format: safetensors: header at byte 8: %w: %d bytes declared, the stream has %d", ErrTruncated, n, l.StreamSize)
	}
	hdr, _, err := readExact(&s.r, int64(n), false)
	if err != nil {
		return nil, headerErr("safetensors", s.r.off, err)
	}
	s.DataOffset = 8 + int64(n)
	if err := s.parseHeader(hdr, &l); err != nil {
		return nil, fmt.Errorf("format: safetensors: header at byte 8: %w", err)
	}
	if err := checkEnds(s.infos, s.size); err != nil {
		return nil, fmt.Errorf("format: safetensors: %w", err)
	}
	return s, nil
}

type safetensorsEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func (s *SafetensorsReader) parseHeader(hdr []byte, l *Limits) error {
	if hdr[0] != '{' {
		return fmt.Errorf("%w: header does not start with '{'", ErrCorrupt)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// Token-by-token so that a duplicated name is an error rather than silently shadowed.
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		name, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: key %v is not a string", ErrCorrupt, tok)
		}
		if seen[name] {
			return fmt.Errorf("%w: %q appears twice", ErrCorrupt, name)
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&s.Metadata); err != nil {
				return fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrCorrupt, err)
			}
			continue
		}
		if len(s.infos) >= l.MaxTensors {
			return fmt.Errorf("%w: more than %d tensors", ErrLimit, l.MaxTensors)
		}
		var e safetensorsEntry
		if err := dec.Decode(&e); err != nil {
			return fmt.Errorf("tensor %q: %w: %v", name, ErrCorrupt, err)
		}
		info, err := s.entryInfo(name, e, l)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", name, err)
		}
		s.infos = append(s.infos, info)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// Writers pad the header with spaces so the buffer is aligned; anything else is not JSON.
	if rest := hdr[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return fmt.Errorf("%w: %d bytes after the JSON object", ErrCorrupt, len(rest))
	}
	slices.SortStableFunc(s.infos, func(a, b TensorInfo) int {
		if a.Offset != b.Offset {
			return cmpInt64(a.Offset, b.Offset)
		}
		return cmpInt64(a.Size, b.Size)
	})
	return checkOverlaps(s.infos)
}

func (s *SafetensorsReader) entryInfo(name string, e safetensorsEntry, l *Limits) (TensorInfo, error) {
	d, ok := safetensorsDTypes[e.DType]
	if !ok {
		return TensorInfo{}, fmt.Errorf("%w: dtype %q", ErrUnsupported, e.DType)
	}
	if e.Shape == nil {
		return TensorInfo{}, fmt.Errorf("%w: no shape", ErrCorrupt)
	}
	shape, _, size, err := checkShape(e.Shape, d, l)
	if err != nil {
		return TensorInfo{}, err
	}
	if len(e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("%w: data_offsets has %d values, want 2", ErrCorrupt, len(e.DataOffsets))
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin || end > 1<<62 {
		return TensorInfo{}, fmt.Errorf("%w: data_offsets [%d, %d]", ErrCorrupt, begin, end)
	}
	if end-begin != size {
		return TensorInfo{}, fmt.Errorf("%w: data_offsets [%d, %d] hold %d bytes, %v %v needs %d", ErrCorrupt, begin, end, end-begin, d, e.Shape, size)
	}
	return TensorInfo{Name: name, DType: d, Shape: shape, Offset: s.DataOffset + begin, Size: size}, nil
}

// checkOverlaps rejects tensors (sorted by offset) whose bytes overlap: one byte read as two
// tensors is a classic way to smuggle data past a validator.
func checkOverlaps(infos []TensorInfo) error {
	var end int64
	var last string
	for _, t := range infos {
		if t.Offset < end {
			return fmt.Errorf("tensor %q at byte %d: %w: overlaps %q, which ends at byte %d", t.Name, t.Offset, ErrCorrupt, last, end)
		}
		if t.Offset+t.Size > end {
			end, last = t.Offset+t.Size, t.Name
		}
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// headerErr wraps a read error inside a header.
func headerErr(format string, off int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("format: %s: header at byte %d: %w: stream ended", format, off, ErrTruncated)
	}
	return fmt.Errorf("format: %s: header at byte %d: %w", format, off, err)
}
