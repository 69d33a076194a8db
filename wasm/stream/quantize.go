package stream

import (
	"fmt"
	"runtime"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// The quantize and upload stages of the pipeline (see pipeline.go): workers quantize each job's
// rows into the tensor being assembled, and the tensor whose last job is done goes to the upload
// goroutine.

// decodeBlockFloats bounds the float32 rows a worker decodes before quantizing them: 64 KiB,
// within any CPU's L2 alongside the fp16 rows it came from.
const decodeBlockFloats = 16 << 10

// worker quantizes jobs with scratch it reuses.
type worker struct {
	l   *Load
	f32 []float32
}

// do quantizes j, returns its buffer to the pool and, when j was its tensor's last job, hands
// the tensor to uploads.
func (w *worker) do(j job, uploads chan<- *tensorJob) error {
	t := j.t
	t.mu.RLock() // the reader may be growing t.out
	err := w.quantize(j)
	t.mu.RUnlock()
	j.pool.put(j.buf)
	if err != nil {
		return fmt.Errorf("stream: tensor %q rows %d–%d: %w", t.info.Name, j.row0, j.row0+j.rows, err)
	}
	if t.left.Add(-1) == 0 {
		uploads <- t
	}
	return nil
}

// quantize writes job j's rows into j.t.out.
func (w *worker) quantize(j job) error {
	chunk := format.Tensor{TensorInfo: j.t.info, Data: j.buf}
	chunk.Shape = []int{j.rows, j.t.k}
	chunk.Size = int64(len(j.buf))
	if j.t.lossless {
		return w.copyBlocks(j, chunk)
	}
	return w.decodeQuantize(j, chunk)
}

// copyBlocks maps GGUF blocks onto nibble's layout directly. The small per-chunk tensor is
// garbage once copied, which CollectEvery keeps from piling up in memory that never shrinks.
func (w *worker) copyBlocks(j job, chunk format.Tensor) error {
	t := j.t
	f := t.out.Format
	q, err := chunk.Quant()
	if err != nil {
		return err
	}
	copy(t.out.Data[j.row0*f.RowStride(t.k):], q.Data)
	copy(t.out.Scales[j.row0*f.Groups(t.k)*f.Scales.Size():], q.Scales)
	copy(t.out.Zeros[j.row0*f.ZeroStride(t.k):], q.Zeros)
	if w.l.opt.CollectEvery > 0 && w.l.mem.garbage.Add(int64(q.Bytes())) >= w.l.opt.CollectEvery {
		w.l.mem.garbage.Store(0)
		runtime.GC()
	}
	return nil
}

// decodeQuantize decodes and quantizes a few rows at a time, not the whole chunk: the float32
// block stays in the CPU's near cache between the two passes (a whole 1 MiB fp16 chunk decodes
// to 2 MiB, which does not), and the scratch is a block, not twice the chunk. The rows go
// straight into the final tensor: no per-chunk tensor, no garbage.
func (w *worker) decodeQuantize(j job, chunk format.Tensor) error {
	t := j.t
	per := max(1, min(j.rows, decodeBlockFloats/t.k))
	need := per * t.k
	if cap(w.f32) < need {
		w.l.mem.scratch.Add(int64(4 * (need - cap(w.f32))))
		w.f32 = make([]float32, need)
	}
	block := chunk
	block.Shape = []int{0, t.k}
	for r := 0; r < j.rows; r += per {
		n := min(per, j.rows-r)
		block.Shape[0] = n
		block.Data = j.buf[r*t.rowBytes : (r+n)*t.rowBytes]
		block.Size = int64(len(block.Data))
		vals := w.f32[:n*t.k]
		if err := block.DecodeFloat32(vals); err != nil {
			return err
		}
		if err := quant.QuantizeRows(t.out, j.row0+r, vals, w.l.opt.Quant); err != nil {
			return err
		}
	}
	return nil
}

// growOut makes t.out hold at least rows rows. A trusted tensor is allocated whole at once; an
// untrusted one doubles, at most to its declared rows, so its memory is at most about twice
// what the rows that arrived need, whatever its header claims.
func (l *Load) growOut(t *tensorJob, rows int) error {
	old := t.out
	if old != nil && old.N >= rows {
		return nil
	}
	n := t.n
	if !t.trusted {
		n = min(t.n, max(rows, 2*t.rowsOf(old)))
	}
	nt, err := quant.NewTensor(t.info.Name, n, t.k, t.format)
	if err != nil {
		return fmt.Errorf("stream: tensor %q: %w", t.info.Name, err)
	}
	l.mem.pending.Add(int64(nt.Bytes()))
	if old == nil {
		t.out = nt
		return nil
	}
	t.mu.Lock()
	copy(nt.Data, old.Data)
	copy(nt.Scales, old.Scales)
	copy(nt.Zeros, old.Zeros)
	t.out = nt
	t.mu.Unlock()
	l.mem.pending.Add(-int64(old.Bytes()))
	return nil
}

func (t *tensorJob) rowsOf(q *quant.Tensor) int {
	if q == nil {
		return 0
	}
	return q.N
}

// upload runs on the upload goroutine, one tensor at a time.
func (l *Load) upload(t *tensorJob) error {
	q := t.out
	w, err := l.up.Upload(q)
	l.mem.pending.Add(-int64(q.Bytes()))
	t.out = nil // the backend has its copy (or, on the CPU, the only reference)
	if err != nil {
		return fmt.Errorf("stream: upload %q: %w", t.info.Name, err)
	}
	l.mu.Lock()
	l.tensorReadyLocked(t.info.Name, w, t.src)
	l.mu.Unlock()
	l.report()
	if t.entry != nil {
		// After the upload, so the cache write never delays a tensor's residency; backends
		// copy or keep the tensor but never change it.
		t.entry.tensor(q)
	}
	return nil
}
