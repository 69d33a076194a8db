package format

import (
	"fmt"
	"io"
)

// stream is the part every reader shares once its header is parsed: tensors sorted by offset,
// and a counting reader positioned somewhere before the next one.
type stream struct {
	format string
	r      countingReader
	infos  []TensorInfo
	size   int64 // total stream length when known (Limits.StreamSize), else 0
	next   int
	err    error // sticky: after a failure the stream position is unknown
}

// Tensors lists every tensor the header declares, in the order Next returns them (ascending
// offset). The slice is shared: do not modify it.
func (s *stream) Tensors() []TensorInfo { return s.infos }

// Offset returns how many bytes of the stream have been consumed.
func (s *stream) Offset() int64 { return s.r.off }

// Next returns the next tensor once its last byte has been read; io.EOF after the last one.
// Gaps before a tensor (alignment padding, unindexed bytes) are read and discarded.
func (s *stream) Next() (*Tensor, error) { return s.NextInto(nil) }

// NextInto is Next reading into buf when cap(buf) is enough; Data then aliases buf.
func (s *stream) NextInto(buf []byte) (*Tensor, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.next >= len(s.infos) {
		return nil, io.EOF
	}
	info := s.infos[s.next]
	if gap := info.Offset - s.r.off; gap > 0 {
		if n, err := skip(&s.r, gap); err != nil {
			s.err = truncated(s.format, info.Name, info.Offset, gap, n, err)
			return nil, s.err
		}
	} else if gap < 0 {
		// Headers are validated so this cannot happen; fail loudly rather than misread.
		s.err = fmt.Errorf("format: %s: tensor %q at byte %d: %w: stream already at byte %d", s.format, info.Name, info.Offset, ErrCorrupt, s.r.off)
		return nil, s.err
	}
	data, got, err := readInto(&s.r, info.Size, s.size > 0 && info.Offset+info.Size <= s.size, buf)
	if err != nil {
		s.err = truncated(s.format, info.Name, info.Offset, info.Size, got, err)
		return nil, s.err
	}
	s.next++
	return &Tensor{TensorInfo: info, Data: data}, nil
}
