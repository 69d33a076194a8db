package cpu

import (
	"fmt"
	"math"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/x448/float16"
)

// state holds a graph.State in its storage format: exactly one of f32, f16 and (q8, scales).
type state struct {
	spec   graph.StateSpec
	row    int // elements per row of the last axis (one int8 scale each)
	f32    []float32
	f16    []uint16
	q8     []int8
	scales []float32
}

// NewState allocates a zero-filled state at its full size.
func (b *Backend) NewState(spec graph.StateSpec) (backend.State, error) {
	if len(spec.Shape) < 2 || spec.Shape.Size() <= 0 {
		return nil, fmt.Errorf("cpu: state %q: shape %s", spec.Name, spec.Shape)
	}
	n := spec.Shape.Size()
	s := &state{spec: spec, row: spec.Shape[len(spec.Shape)-1]}
	switch spec.Storage {
	case graph.StateF32:
		s.f32 = make([]float32, n)
	case graph.StateF16:
		s.f16 = make([]uint16, n)
	case graph.StateInt8:
		s.q8 = make([]int8, n)
		s.scales = make([]float32, n/s.row)
	default:
		return nil, fmt.Errorf("cpu: state %q: storage %s", spec.Name, spec.Storage)
	}
	return s, nil
}

var _ backend.StateAllocator = (*Backend)(nil)

func (s *state) Spec() graph.StateSpec { return s.spec }
func (s *state) Bytes() int64          { return s.spec.Bytes() }
func (s *state) Release() error        { s.f32, s.f16, s.q8, s.scales = nil, nil, nil, nil; return nil }

// write stores x from element offset off, in the storage format.
func (s *state) write(off int, x []float32) {
	switch s.spec.Storage {
	case graph.StateF32:
		copy(s.f32[off:], x)
	case graph.StateF16:
		for i, v := range x {
			s.f16[off+i] = float16.Fromfloat32(v).Bits()
		}
	case graph.StateInt8:
		for r := 0; r < len(x)/s.row; r++ {
			row := x[r*s.row : (r+1)*s.row]
			var amax float32
			for _, v := range row {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			sc := amax / 127
			s.scales[off/s.row+r] = sc
			q := s.q8[off+r*s.row : off+(r+1)*s.row]
			for i, v := range row {
				if sc == 0 {
					q[i] = 0
					continue
				}
				q[i] = int8(max(-127, min(127, math.Round(float64(v/sc)))))
			}
		}
	}
}

// read returns the first n elements as float32.
func (s *state) read(n int) []float32 {
	out := make([]float32, n)
	switch s.spec.Storage {
	case graph.StateF32:
		copy(out, s.f32[:n])
	case graph.StateF16:
		for i := range out {
			out[i] = float16.Frombits(s.f16[i]).Float32()
		}
	case graph.StateInt8:
		for i := range out {
			out[i] = s.scales[i/s.row] * float32(s.q8[i])
		}
	}
	return out
}

// stateWrite runs a StateWrite node: the write, then the read of rows [0, keep).
func stateWrite(s *state, n *graph.Node, x []float32, pos []int32) ([]float32, error) {
	if s.f32 == nil && s.f16 == nil && s.q8 == nil {
		return nil, fmt.Errorf("state %q was released", s.spec.Name)
	}
	S := s.spec.Shape[0]
	rowElems := s.spec.Shape[1:].Size()
	T := len(x) / rowElems
	p := int(pos[0])
	if p < 0 || p+T > S {
		return nil, fmt.Errorf("%w: rows [%d, %d) written into state %q of %d rows", graph.ErrShape, p, p+T, s.spec.Name, S)
	}
	s.write(p*rowElems, x)
	return s.read(n.Attr.End * rowElems), nil
}
