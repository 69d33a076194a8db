package stream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Load is a model being streamed into a backend. Its methods are safe for concurrent use.
type Load struct {
	opt    Options
	up     Uploader
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change a waiter may care about
	err      error
	tensors  []format.TensorInfo
	formats  map[string]quant.Format
	weights  map[string]backend.Weight // uploaded (maybe not yet published)
	resident map[string]bool           // published: usable
	hold     map[string][]string       // file → uploaded tensors waiting for its hash check
	prog     Progress

	// Memory the pipeline holds, beyond resident weights (see Progress.HeldBytes).
	window, scratch, pending atomic.Int64
	src                      atomic.Pointer[resumable]
	garbage                  atomic.Int64

	// Options.Cache: the first problem with it, the tensors uploaded from an entry (a network
	// pass after a damaged entry skips them), the entries being written and their Put calls.
	cacheErr  error
	fromCache map[string]bool
	entries   []*entryWriter
	cacheWG   sync.WaitGroup
}

// Start begins loading srcs, one after the other, into up and returns at once. Tensor names must
// be unique across the files. Cancelling ctx (or calling Release) stops the load and releases
// everything uploaded.
func Start(ctx context.Context, up Uploader, opt Options, srcs ...Source) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{
		opt:      opt.withDefaults(),
		up:       up,
		start:    time.Now(),
		cancel:   cancel,
		done:     make(chan struct{}),
		changed:  make(chan struct{}),
		formats:  map[string]quant.Format{},
		weights:  map[string]backend.Weight{},
		resident: map[string]bool{},

		fromCache: map[string]bool{},
	}
	for _, s := range srcs {
		l.prog.BytesTotal += s.Size
	}
	go l.run(ctx, srcs)
	return l
}

// Done is closed when the load has finished, successfully or not.
func (l *Load) Done() <-chan struct{} { return l.done }

// Err returns why the load failed, nil while it runs or once it succeeded.
func (l *Load) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Result waits for the whole load and returns every weight by name.
func (l *Load) Result(ctx context.Context) (map[string]backend.Weight, error) {
	select {
	case <-l.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	out := make(map[string]backend.Weight, len(l.weights))
	for n, w := range l.weights {
		out[n] = w
	}
	return out, nil
}

// Tensors lists the tensors declared by the headers read so far, in file order.
func (l *Load) Tensors() []format.TensorInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]format.TensorInfo(nil), l.tensors...)
}

// IsResident reports whether every named tensor is uploaded and usable now.
func (l *Load) IsResident(names ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		if !l.resident[n] {
			return false
		}
	}
	return true
}

// Weight returns a resident tensor.
func (l *Load) Weight(name string) (backend.Weight, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.resident[name] {
		return nil, false
	}
	return l.weights[name], true
}

// Wait blocks until every named tensor is resident, the load fails (its error), a name turns out
// not to be in any file once all headers are read, or ctx ends.
func (l *Load) Wait(ctx context.Context, names ...string) error {
	for {
		l.mu.Lock()
		ok, err, ch := true, l.err, l.changed
		for _, n := range names {
			if !l.resident[n] {
				ok = false
				break
			}
		}
		l.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-l.done:
			if l.Err() == nil && !l.IsResident(names...) {
				return fmt.Errorf("stream: wait: %v: not all of these tensors are in the model", names)
			}
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Progress returns a snapshot of the load.
func (l *Load) Progress() Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snapshotLocked()
}

// Release stops the load if it is still running and releases every uploaded weight. Afterwards
// nothing of the load is usable.
func (l *Load) Release() error {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = ErrReleased
	}
	return l.releaseLocked()
}

func (l *Load) releaseLocked() error {
	var first error
	for n, w := range l.weights {
		if w == nil {
			continue
		}
		if err := w.Release(); err != nil && first == nil {
			first = fmt.Errorf("stream: release %q: %w", n, err)
		}
	}
	l.weights = map[string]backend.Weight{}
	l.resident = map[string]bool{}
	l.hold = nil
	l.prog.ResidentBytes = 0
	l.broadcastLocked()
	return first
}

func (l *Load) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Load) heldNow() int64 {
	h := l.window.Load() + l.scratch.Load() + l.pending.Load()
	if r := l.src.Load(); r != nil {
		h += r.heldBytes()
	}
	return h
}

func (l *Load) snapshotLocked() Progress {
	p := l.prog
	p.WindowBytes = l.window.Load()
	p.HeldBytes = l.heldNow()
	if r := l.src.Load(); r != nil {
		p.ExternalBytes = r.heldBytes()
	}
	if p.HeldBytes > l.prog.PeakHeldBytes {
		l.prog.PeakHeldBytes = p.HeldBytes
	}
	p.PeakHeldBytes = l.prog.PeakHeldBytes
	p.Elapsed = time.Since(l.start)
	if r := l.src.Load(); r != nil {
		p.Resumes += int(r.resumes.Load())
	}
	return p
}

// report updates the peak and calls OnProgress.
func (l *Load) report() {
	l.mu.Lock()
	p := l.snapshotLocked()
	l.mu.Unlock()
	if l.opt.OnProgress != nil {
		l.opt.OnProgress(p)
	}
}

func (l *Load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	l.releaseLocked()
}

// run is the load's main goroutine: it reads each file in turn and feeds the workers.
func (l *Load) run(ctx context.Context, srcs []Source) {
	defer close(l.done)
	defer l.cancel()
	jobs := make(chan job)
	uploads := make(chan *tensorJob)
	var wg sync.WaitGroup
	var workerErr atomic.Pointer[error]
	failOnce := func(err error) {
		workerErr.CompareAndSwap(nil, &err)
		l.cancel()
	}
	for range l.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{l: l}
			for j := range jobs {
				if err := w.do(j, uploads); err != nil {
					failOnce(err)
				}
			}
			l.scratch.Add(-int64(4 * cap(w.f32)))
		}()
	}
	uploadDone := make(chan struct{})
	go func() {
		defer close(uploadDone)
		for t := range uploads {
			if err := l.upload(t); err != nil {
				failOnce(err)
			}
		}
	}()

	var err error
	var pool *chunkPool
	for i := range srcs {
		if pool, err = l.readSource(ctx, srcs[i], jobs, pool); err != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	close(uploads)
	<-uploadDone
	if pool != nil {
		pool.free()
	}
	if p := workerErr.Load(); p != nil {
		err = *p // the first cause, not the cancellation it triggered
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		l.fail(err)
	} else {
		l.mu.Lock()
		l.publishLocked("")
		l.mu.Unlock()
	}
	// An entry still open belongs to a file that failed (or to a load that did): store nothing.
	l.mu.Lock()
	entries := l.entries
	l.entries = nil
	l.mu.Unlock()
	for _, ew := range entries {
		ew.abort(fmt.Errorf("stream: load ended before the cache entry was complete: %w", ErrReleased))
	}
	// The load is done once its cache entries are stored: a reload right after finds them.
	l.cacheWG.Wait()
	l.report()
}

// tensorJob is one tensor on its way through the pipeline.
type tensorJob struct {
	info     format.TensorInfo
	src      string // file name, for VerifyBeforeUse
	n, k     int
	rowBytes int
	lossless bool // GGUF blocks mapped as they are
	skip     bool // already resident from a cache entry that failed later: read past it
	ew       *entryWriter
	left     atomic.Int64 // chunks not yet quantized

	// out is the tensor being filled. Unless the file's size vouches for the tensor's bytes
	// (trusted), it holds only the rows that arrived so far, grown (doubling) as more arrive:
	// the workers write into it under mu's read lock, the reader swaps it under the write lock.
	mu      sync.RWMutex
	out     *quant.Tensor
	trusted bool
}

// job is a run of whole rows of one tensor, in a pooled buffer.
type job struct {
	t          *tensorJob
	row0, rows int
	buf        []byte
	pool       *chunkPool
}

// readSource parses one file's header and cuts its tensors into jobs. It returns the chunk pool
// it used so the next file can reuse its buffers.
func (l *Load) readSource(ctx context.Context, src Source, jobs chan<- job, pool *chunkPool) (_ *chunkPool, err error) {
	key := ""
	if l.opt.Cache != nil {
		key = CacheKey(src, l.opt)
	}
	if key != "" {
		hit, err := l.loadCached(ctx, src, key)
		if hit || err != nil {
			return pool, err
		}
	}
	r := newResumable(ctx, src, &l.opt)
	r.onBytes = func(n int) {
		l.mu.Lock()
		l.prog.BytesReceived += int64(n)
		l.mu.Unlock()
	}
	l.src.Store(r)
	defer func() {
		l.mu.Lock()
		l.prog.Resumes += int(r.resumes.Load())
		l.src.Store(nil)
		l.mu.Unlock()
	}()
	l.mu.Lock()
	l.prog.Source = src.Name
	if l.opt.VerifyBeforeUse && src.SHA256 != "" {
		if l.hold == nil {
			l.hold = map[string][]string{}
		}
		l.hold[src.Name] = []string{}
	}
	l.mu.Unlock()
	defer r.Close()

	// The header parser may read ahead (GGUF buffers 64 KiB): keep what it was given so the bytes
	// past the header can be replayed to the tensor reader.
	var head bytes.Buffer
	fr, err := l.openReader(io.TeeReader(r, &head))
	if err != nil {
		return pool, fmt.Errorf("stream: %s: %w", src.Name, err)
	}
	size := r.knownSize() // known once the header arrived, if the manifest or the server says
	pos := int64(0)
	if o, ok := fr.(interface{ Offset() int64 }); ok {
		pos = o.Offset()
	}
	if pos > int64(head.Len()) {
		return pool, fmt.Errorf("stream: %s: header reader at byte %d, only %d read", src.Name, pos, head.Len())
	}
	data := &countReader{r: io.MultiReader(bytes.NewReader(bytes.Clone(head.Bytes()[pos:])), r), off: pos}
	head = bytes.Buffer{}

	infos := fr.Tensors()
	tjs := make([]*tensorJob, 0, len(infos))
	maxRow, end := 0, int64(0)
	for _, info := range infos {
		// Whatever reader parsed the header, nothing past the end of the file is planned, let
		// alone allocated.
		if e := info.Offset + info.Size; size > 0 && e > size {
			return pool, fmt.Errorf("stream: %s: tensor %q (bytes %d–%d): %w: %w: the file has %d bytes", src.Name, info.Name, info.Offset, e, format.ErrTruncated, ErrSize, size)
		}
	}
	l.mu.Lock()
	for i := range infos {
		t, err := l.planLocked(&infos[i], src.Name)
		if err != nil {
			l.mu.Unlock()
			return pool, err
		}
		t.trusted = size > 0
		tjs = append(tjs, t)
		maxRow = max(maxRow, t.rowBytes)
		end = max(end, infos[i].Offset+infos[i].Size)
	}
	if src.Size == 0 {
		l.prog.BytesTotal += max(size, end)
	}
	need := l.prog.QuantizedTotal + l.opt.Window
	l.mu.Unlock()
	if b := l.opt.MemoryBudget; b > 0 && need > b {
		return pool, fmt.Errorf("stream: %s: the model needs %d bytes quantized, plus a %d-byte window, the budget is %d: %w", src.Name, need-l.opt.Window, l.opt.Window, b, ErrBudget)
	}
	r.minEnd = max(r.minEnd, end)
	l.report()

	var ew *entryWriter
	if key != "" {
		skipped := false
		for _, t := range tjs {
			skipped = skipped || t.skip
		}
		if skipped {
			// Part of the model came from the damaged entry and is not quantized again: the next
			// load writes a whole entry.
			l.noteCacheErr(fmt.Errorf("stream: %s: not cached again this time (part of it came from a damaged entry): %w", src.Name, ErrCacheEntry))
		} else {
			ew = l.startEntry(src, key, tjs)
			for _, t := range tjs {
				t.ew = ew
			}
			defer func() {
				if err != nil {
					ew.abort(err)
				}
			}()
		}
	}

	chunk := max(l.opt.ChunkBytes, maxRow)
	if pool == nil || pool.size < chunk {
		if pool != nil {
			pool.free()
		}
		pool = newChunkPool(l, chunk, int(max(2, l.opt.Window/int64(chunk))))
	}
	for _, t := range tjs {
		if gap := t.info.Offset - data.off; gap > 0 {
			if _, err := io.CopyN(io.Discard, data, gap); err != nil {
				return pool, truncatedErr(src.Name, t.info, data.off, err)
			}
		}
		if t.skip {
			if _, err := io.CopyN(io.Discard, data, t.info.Size); err != nil {
				return pool, truncatedErr(src.Name, t.info, data.off, err)
			}
			continue
		}
		if t.info.Size == 0 {
			l.mu.Lock()
			l.tensorReadyLocked(t.info.Name, nil, src.Name)
			l.mu.Unlock()
			continue
		}
		per := max(1, pool.size/t.rowBytes)
		t.left.Store(int64((t.n + per - 1) / per))
		for row := 0; row < t.n; row += per {
			rows := min(per, t.n-row)
			buf, err := pool.get(ctx)
			if err != nil {
				return pool, abortedErr(src.Name, err)
			}
			if buf, err = pool.read(data, buf, rows*t.rowBytes, t.trusted); err != nil {
				pool.put(buf)
				return pool, truncatedErr(src.Name, t.info, data.off, err)
			}
			// The rows are here: only now is room made for them.
			if err := l.growOut(t, row+rows); err != nil {
				pool.put(buf)
				return pool, err
			}
			select {
			case jobs <- job{t: t, row0: row, rows: rows, buf: buf, pool: pool}:
			case <-ctx.Done():
				pool.put(buf)
				return pool, abortedErr(src.Name, ctx.Err())
			}
			l.report()
		}
	}
	if src.Size > 0 || src.SHA256 != "" {
		// The hash covers the whole file: read what follows the last tensor too.
		if err := r.drain(make([]byte, 32<<10)); err != nil {
			return pool, err
		}
	}
	if ew != nil {
		ew.verify()
	}
	if l.opt.VerifyBeforeUse && src.SHA256 != "" {
		// The file is verified, but its last tensors may still be in the workers: publish what is
		// uploaded now, the rest as it arrives (publishLocked runs again at the end).
		l.mu.Lock()
		l.publishLocked(src.Name)
		l.mu.Unlock()
	}
	return pool, nil
}

func truncatedErr(file string, t format.TensorInfo, off int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("%w: %w", format.ErrTruncated, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("stream: %s: tensor %q (bytes %d–%d) at byte %d: %w", file, t.Name, t.Offset, t.Offset+t.Size, off, err)
}

// abortedErr wraps the end of a load its context ended (Release, a cancelled page).
func abortedErr(file string, err error) error {
	return fmt.Errorf("stream: %s: %w: %w", file, errs.ErrAborted, err)
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
	nt, err := quant.NewTensor(t.info.Name, n, t.k, l.formats[t.info.Name])
	if err != nil {
		return fmt.Errorf("stream: tensor %q: %w", t.info.Name, err)
	}
	l.pending.Add(int64(nt.Bytes()))
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
	l.pending.Add(-int64(old.Bytes()))
	return nil
}

func (t *tensorJob) rowsOf(q *quant.Tensor) int {
	if q == nil {
		return 0
	}
	return q.N
}

func (l *Load) openReader(r io.Reader) (format.Reader, error) {
	if l.opt.Reader != nil {
		return l.opt.Reader(r)
	}
	// Sniff without reading ahead, so the reader sees every byte from the first.
	var magic [9]byte
	if n, err := io.ReadFull(r, magic[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: the file has %d bytes, too few for any model header", format.ErrTruncated, n)
		}
		return nil, fmt.Errorf("reading the first bytes: %w", err)
	}
	full := io.MultiReader(bytes.NewReader(magic[:]), r)
	if string(magic[:4]) == format.GGUFMagic {
		return format.NewGGUF(full, l.opt.Limits)
	}
	if magic[8] == '{' {
		return format.NewSafetensors(full, l.opt.Limits)
	}
	return nil, fmt.Errorf("%w: first bytes %q are neither GGUF nor safetensors", format.ErrUnsupported, magic[:])
}

// planLocked registers one tensor and chooses its format.
func (l *Load) planLocked(info *format.TensorInfo, file string) (*tensorJob, error) {
	if _, dup := l.formats[info.Name]; dup {
		return nil, fmt.Errorf("stream: %s: tensor %q is also in an earlier file: %w", file, info.Name, format.ErrCorrupt)
	}
	t := &tensorJob{info: *info, src: file, n: 1, k: 1}
	if len(info.Shape) > 0 {
		t.k = info.Shape[len(info.Shape)-1]
		if t.k > 0 {
			t.n = int(info.NumElements() / int64(t.k))
		}
	}
	f := l.opt.Plan(info)
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("stream: %s: plan for tensor %q: %w", file, info.Name, err)
	}
	if info.Size > 0 {
		if t.k <= 0 || info.Size%int64(t.n) != 0 {
			return nil, fmt.Errorf("stream: %s: tensor %q: %d bytes do not split into %d rows: %w", file, info.Name, info.Size, t.n, format.ErrCorrupt)
		}
		t.rowBytes = int(info.Size / int64(t.n))
	}
	switch info.DType {
	case format.Q4_0, format.Q8_0:
		// Blocks map onto quant's layout exactly; any other format would be a lossy round trip
		// through float32 (allowed, if the plan asks for it).
		t.lossless = f == DefaultPlan(info)
	}
	t.skip = l.fromCache[info.Name]
	l.formats[info.Name] = f
	l.tensors = append(l.tensors, *info)
	l.prog.TensorsTotal++
	if info.Size > 0 {
		l.prog.QuantizedTotal += int64(f.TensorBytes(t.n, t.k))
	}
	return t, nil
}

// upload runs on the upload goroutine, one tensor at a time.
func (l *Load) upload(t *tensorJob) error {
	q := t.out
	w, err := l.up.Upload(q)
	l.pending.Add(-int64(q.Bytes()))
	t.out = nil // the backend has its copy (or, on the CPU, the only reference)
	if err != nil {
		return fmt.Errorf("stream: upload %q: %w", t.info.Name, err)
	}
	l.mu.Lock()
	l.tensorReadyLocked(t.info.Name, w, t.src)
	l.mu.Unlock()
	l.report()
	if t.ew != nil {
		// After the upload, so the cache write never delays a tensor's residency; backends
		// copy or keep the tensor but never change it.
		t.ew.tensor(q)
	}
	return nil
}

func (l *Load) tensorReadyLocked(name string, w backend.Weight, file string) {
	if l.err != nil {
		// Failed meanwhile: nothing may stay resident.
		if w != nil {
			w.Release()
		}
		return
	}
	l.weights[name] = w
	if w != nil {
		l.prog.ResidentBytes += w.Bytes()
	}
	l.prog.TensorsReady++
	if l.prog.FirstReady == 0 {
		l.prog.FirstReady = time.Since(l.start)
	}
	if names, ok := l.hold[file]; ok {
		l.hold[file] = append(names, name)
		return
	}
	l.resident[name] = true
	l.broadcastLocked()
}

// publishLocked makes the held-back tensors of file usable ("" for every file).
func (l *Load) publishLocked(file string) {
	for f, names := range l.hold {
		if file == "" || f == file {
			for _, n := range names {
				l.resident[n] = true
			}
			delete(l.hold, f)
		}
	}
	l.broadcastLocked()
}

// decodeBlockFloats bounds the float32 rows a worker decodes before quantizing them: 64 KiB,
// within any CPU's L2 alongside the fp16 rows it came from.
const decodeBlockFloats = 16 << 10

// worker quantizes jobs with scratch it reuses.
type worker struct {
	l   *Load
	f32 []float32
}

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
	t := j.t
	f := t.out.Format
	chunk := format.Tensor{TensorInfo: t.info, Data: j.buf}
	chunk.Shape = []int{j.rows, t.k}
	chunk.Size = int64(len(j.buf))
	var err error
	if t.lossless {
		// GGUF blocks map onto nibble's layout directly; the small per-chunk tensor is garbage
		// once copied, which CollectEvery keeps from piling up in memory that never shrinks.
		var q *quant.Tensor
		if q, err = chunk.Quant(); err == nil {
			copy(t.out.Data[j.row0*f.RowStride(t.k):], q.Data)
			copy(t.out.Scales[j.row0*f.Groups(t.k)*f.Scales.Size():], q.Scales)
			copy(t.out.Zeros[j.row0*f.ZeroStride(t.k):], q.Zeros)
			if w.l.opt.CollectEvery > 0 && w.l.garbage.Add(int64(q.Bytes())) >= w.l.opt.CollectEvery {
				w.l.garbage.Store(0)
				runtime.GC()
			}
		}
	} else {
		// Decode and quantize a few rows at a time, not the whole chunk: the float32 block stays
		// in the CPU's near cache between the two passes (a whole 1 MiB fp16 chunk decodes to
		// 2 MiB, which does not), and the scratch is a block, not twice the chunk.
		per := max(1, min(j.rows, decodeBlockFloats/t.k))
		need := per * t.k
		if cap(w.f32) < need {
			w.l.scratch.Add(int64(4 * (need - cap(w.f32))))
			w.f32 = make([]float32, need)
		}
		block := chunk
		block.Shape = []int{0, t.k}
		for r := 0; r < j.rows && err == nil; r += per {
			n := min(per, j.rows-r)
			block.Shape[0] = n
			block.Data = j.buf[r*t.rowBytes : (r+n)*t.rowBytes]
			block.Size = int64(len(block.Data))
			vals := w.f32[:n*t.k]
			if err = block.DecodeFloat32(vals); err == nil {
				// Straight into the final tensor: no per-chunk tensor, no garbage.
				err = quant.QuantizeRows(t.out, j.row0+r, vals, w.l.opt.Quant)
			}
		}
	}
	return err
}

// countReader tracks the absolute offset of the tensor data reader.
type countReader struct {
	r   io.Reader
	off int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.off += int64(n)
	return n, err
}

// chunkPool is the in-flight window: a fixed number of equal buffers, allocated on first use and
// reused, so the window's memory is bounded and wasm's linear memory does not creep up.
type chunkPool struct {
	l     *Load
	size  int
	free_ chan []byte
	slots chan struct{} // one token per buffer that may still be allocated
}

func newChunkPool(l *Load, size, n int) *chunkPool {
	p := &chunkPool{l: l, size: size, free_: make(chan []byte, n), slots: make(chan struct{}, n)}
	for range n {
		p.slots <- struct{}{}
	}
	return p
}

// get returns a buffer of the pool, of any capacity up to size (none yet for a new slot): read
// fills it.
func (p *chunkPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free_:
		return b, nil
	default:
	}
	select {
	case b := <-p.free_:
		return b, nil
	case <-p.slots:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read fills b with exactly n bytes of r (n ≤ size), reallocating it when it is too small.
// Unless trusted (the file's size vouches for the bytes), a buffer beyond ChunkBytes grows by
// doubling as the bytes arrive, so a row a header declares far larger than the stream costs
// about what the stream held.
func (p *chunkPool) read(r io.Reader, b []byte, n int, trusted bool) ([]byte, error) {
	if cap(b) >= n {
		b = b[:n]
		_, err := io.ReadFull(r, b)
		return b, err
	}
	first := min(p.size, p.l.opt.ChunkBytes)
	if trusted || n <= first {
		// Whole buffers, reused by every later job: wasm memory does not creep up.
		c := first
		if trusted {
			c = p.size
		}
		p.l.window.Add(int64(c - cap(b)))
		b = make([]byte, n, c)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b = b[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, max(2*cap(b), first)))
			copy(nb, b)
			p.l.window.Add(int64(cap(nb) - cap(b)))
			b = nb
		}
		m, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func (p *chunkPool) put(b []byte) { p.free_ <- b }

// free drops the pool's buffers (for the collector) and their accounting.
func (p *chunkPool) free() {
	for {
		select {
		case b := <-p.free_:
			p.l.window.Add(-int64(cap(b)))
		default:
			return
		}
	}
}
