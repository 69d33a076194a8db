package stream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// The pipeline reads one file at a time (readSource) through these stages:
//
//	source    openSource    the file as one byte stream that resumes where it broke, hashed and sized
//	header    readHeader    the format's reader parses the header; the bytes it read ahead are replayed
//	plan      planSource    each tensor checked against the file's size, registered, its format chosen;
//	                        the whole model checked against the memory budget
//	rows      readRows      each tensor's bytes cut into jobs of whole rows, in the pool's buffers
//	quantize  worker.do     (Options.Workers goroutines, quantize.go) a job's rows into the tensor
//	upload    Load.upload   (one goroutine, quantize.go) a finished tensor into the backend
//	publish   finishSource  the file read to its end and verified; its held tensors made usable
//
// A file the cache holds skips them all (loadCached, cacheload.go).

// tensorJob is one tensor on its way through the pipeline.
type tensorJob struct {
	info     format.TensorInfo
	src      string // file name, for VerifyBeforeUse
	n, k     int
	rowBytes int
	format   quant.Format // the plan's choice
	lossless bool         // GGUF blocks mapped as they are
	skip     bool         // already resident from a cache entry that failed later: read past it
	entry    *entryWriter
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

// run is the load's main goroutine: it reads each file in turn and feeds the workers.
func (l *Load) run(ctx context.Context, srcs []Source) {
	defer close(l.done)
	defer l.cancel()
	var firstErr atomic.Pointer[error]
	failOnce := func(err error) {
		firstErr.CompareAndSwap(nil, &err)
		l.cancel()
	}
	jobs, stop := l.startWorkers(failOnce)
	var err error
	var pool *chunkPool
	for i := range srcs {
		if pool, err = l.readSource(ctx, srcs[i], jobs, pool); err != nil {
			break
		}
	}
	stop()
	if pool != nil {
		pool.free()
	}
	if p := firstErr.Load(); p != nil {
		err = *p // the first cause, not the cancellation it triggered
	}
	if err == nil {
		err = ctx.Err()
	}
	l.finish(err)
}

// startWorkers starts the quantize workers and the upload goroutine, which report a failure to
// fail. The returned stop closes jobs and waits until every job is quantized and every finished
// tensor uploaded.
func (l *Load) startWorkers(fail func(error)) (jobs chan<- job, stop func()) {
	jobc := make(chan job)
	uploads := make(chan *tensorJob)
	var wg sync.WaitGroup
	for range l.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{l: l}
			for j := range jobc {
				if err := w.do(j, uploads); err != nil {
					fail(err)
				}
			}
			l.mem.scratch.Add(-int64(4 * cap(w.f32)))
		}()
	}
	uploadDone := make(chan struct{})
	go func() {
		defer close(uploadDone)
		for t := range uploads {
			if err := l.upload(t); err != nil {
				fail(err)
			}
		}
	}()
	return jobc, func() {
		close(jobc)
		wg.Wait()
		close(uploads)
		<-uploadDone
	}
}

// finish ends the load with err (nil: success, every held tensor published) once the pipeline
// has stopped, and waits for the cache entries to be stored.
func (l *Load) finish(err error) {
	if err != nil {
		l.fail(err)
	} else {
		l.mu.Lock()
		l.publishLocked("")
		l.mu.Unlock()
	}
	// An entry still open belongs to a file that failed (or to a load that did): store nothing.
	l.mu.Lock()
	entries := l.cache.entries
	l.cache.entries = nil
	l.mu.Unlock()
	for _, e := range entries {
		e.abort(fmt.Errorf("stream: load ended before the cache entry was complete: %w", ErrReleased))
	}
	// The load is done once its cache entries are stored: a reload right after finds them.
	l.cache.puts.Wait()
	l.report()
}

// readSource loads one file, from the cache entry that holds its tensors or else through the
// stages above, and returns the chunk pool it used so the next file can reuse its buffers.
func (l *Load) readSource(ctx context.Context, src Source, jobs chan<- job, pool *chunkPool) (_ *chunkPool, err error) {
	key := ""
	if l.opt.Cache != nil {
		key = CacheKey(src, l.opt)
	}
	if key != "" {
		if hit, err := l.loadCached(ctx, src, key); hit || err != nil {
			return pool, err
		}
	}

	r := l.openSource(ctx, src)
	defer l.closeSource(r)
	fr, data, err := readHeader(r, l.openReader)
	if err != nil {
		return pool, fmt.Errorf("stream: %s: %w", src.Name, err)
	}
	// The size is known once the header arrived, if the manifest or the server says.
	ts, end, err := l.planSource(src, fr.Tensors(), r.knownSize())
	if err != nil {
		return pool, err
	}
	r.minEnd = max(r.minEnd, end)
	l.report()

	var entry *entryWriter
	if key != "" {
		if entry = l.cacheEntry(src, key, ts); entry != nil {
			defer func() {
				if err != nil {
					entry.abort(err)
				}
			}()
		}
	}
	pool = l.poolFor(pool, ts)
	if err := l.readRows(ctx, data, ts, pool, jobs); err != nil {
		return pool, err
	}
	return pool, l.finishSource(r, src, entry)
}

// openSource is the source stage: src as one resumable byte stream, its bytes counted as
// received and what it holds as the load's. closeSource ends it.
func (l *Load) openSource(ctx context.Context, src Source) *resumable {
	r := newResumable(ctx, src, &l.opt)
	r.onBytes = func(n int) {
		l.mu.Lock()
		l.prog.BytesReceived += int64(n)
		l.mu.Unlock()
	}
	l.mem.src.Store(r)
	l.mu.Lock()
	l.prog.Source = src.Name
	if l.opt.VerifyBeforeUse && src.SHA256 != "" {
		if l.tensors.hold == nil {
			l.tensors.hold = map[string][]string{}
		}
		l.tensors.hold[src.Name] = []string{}
	}
	l.mu.Unlock()
	return r
}

func (l *Load) closeSource(r *resumable) {
	r.Close()
	l.mu.Lock()
	l.prog.Resumes += int(r.resumes.Load())
	l.mem.src.Store(nil)
	l.mu.Unlock()
}

// readHeader is the header stage: open parses the header from r. A parser may read ahead (GGUF
// buffers 64 KiB), so what it was given is kept, and the returned reader replays the bytes past
// the header before reading on from r; its offset counts from the file's first byte.
func readHeader(r io.Reader, open func(io.Reader) (format.Reader, error)) (format.Reader, *countReader, error) {
	var head bytes.Buffer
	fr, err := open(io.TeeReader(r, &head))
	if err != nil {
		return nil, nil, err
	}
	pos := int64(0)
	if o, ok := fr.(interface{ Offset() int64 }); ok {
		pos = o.Offset()
	}
	if pos > int64(head.Len()) {
		return nil, nil, fmt.Errorf("header reader at byte %d, only %d read", pos, head.Len())
	}
	data := &countReader{r: io.MultiReader(bytes.NewReader(bytes.Clone(head.Bytes()[pos:])), r), off: pos}
	head = bytes.Buffer{} // the tee still points here: drop what it kept
	return fr, data, nil
}

// openReader parses a file's header with Options.Reader, else with the reader its first bytes
// name.
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

// planSource is the plan stage: it checks infos against the file's size (0: unknown), registers
// each tensor with the format the plan chooses, and checks everything declared so far against
// the memory budget. It returns the tensors in file order and the byte where the last one ends.
func (l *Load) planSource(src Source, infos []format.TensorInfo, size int64) (ts []*tensorJob, end int64, err error) {
	if err := checkExtent(src.Name, infos, size); err != nil {
		return nil, 0, err
	}
	ts = make([]*tensorJob, 0, len(infos))
	l.mu.Lock()
	for i := range infos {
		t, err := l.planLocked(&infos[i], src.Name)
		if err != nil {
			l.mu.Unlock()
			return nil, 0, err
		}
		t.trusted = size > 0
		ts = append(ts, t)
		end = max(end, infos[i].Offset+infos[i].Size)
	}
	if src.Size == 0 {
		l.prog.BytesTotal += max(size, end)
	}
	need := l.prog.QuantizedTotal + l.opt.Window
	l.mu.Unlock()
	if b := l.opt.MemoryBudget; b > 0 && need > b {
		return nil, 0, fmt.Errorf("stream: %s: the model needs %d bytes quantized, plus a %d-byte window, the budget is %d: %w", src.Name, need-l.opt.Window, l.opt.Window, b, ErrBudget)
	}
	return ts, end, nil
}

// checkExtent refuses a tensor that ends past the file's size (0: unknown): whatever reader
// parsed the header, nothing past the end of the file is planned, let alone allocated.
func checkExtent(file string, infos []format.TensorInfo, size int64) error {
	for _, info := range infos {
		if e := info.Offset + info.Size; size > 0 && e > size {
			return fmt.Errorf("stream: %s: tensor %q (bytes %d–%d): %w: %w: the file has %d bytes", file, info.Name, info.Offset, e, format.ErrTruncated, ErrSize, size)
		}
	}
	return nil
}

// planLocked registers one tensor and chooses its format.
func (l *Load) planLocked(info *format.TensorInfo, file string) (*tensorJob, error) {
	if _, dup := l.tensors.formats[info.Name]; dup {
		return nil, fmt.Errorf("stream: %s: tensor %q is also in an earlier file: %w", file, info.Name, format.ErrCorrupt)
	}
	t := &tensorJob{info: *info, src: file, n: 1, k: 1, format: l.opt.Plan(info)}
	if len(info.Shape) > 0 {
		t.k = info.Shape[len(info.Shape)-1]
		if t.k > 0 {
			t.n = int(info.NumElements() / int64(t.k))
		}
	}
	f := t.format
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
	t.skip = l.cache.fromCache[info.Name]
	l.tensors.formats[info.Name] = f
	l.tensors.infos = append(l.tensors.infos, *info)
	l.prog.TensorsTotal++
	if info.Size > 0 {
		l.prog.QuantizedTotal += int64(f.TensorBytes(t.n, t.k))
	}
	return t, nil
}

// cacheEntry starts the cache entry the file's tensors are written to as they are uploaded. It
// returns nil when part of the file came from a damaged entry and is not quantized again: the
// next load writes a whole entry.
func (l *Load) cacheEntry(src Source, key string, ts []*tensorJob) *entryWriter {
	for _, t := range ts {
		if t.skip {
			l.noteCacheErr(fmt.Errorf("stream: %s: not cached again this time (part of it came from a damaged entry): %w", src.Name, ErrCacheEntry))
			return nil
		}
	}
	entry := l.startEntry(src, key, ts)
	for _, t := range ts {
		t.entry = entry
	}
	return entry
}

// poolFor returns a chunk pool whose buffers hold a chunk and a row of every tensor in ts:
// pool itself when its buffers are large enough, else a new one (and pool's buffers freed).
func (l *Load) poolFor(pool *chunkPool, ts []*tensorJob) *chunkPool {
	chunk := l.opt.ChunkBytes
	for _, t := range ts {
		chunk = max(chunk, t.rowBytes)
	}
	if pool != nil && pool.size >= chunk {
		return pool
	}
	if pool != nil {
		pool.free()
	}
	return newChunkPool(l, chunk, int(max(2, l.opt.Window/int64(chunk))))
}

// readRows is the rows stage: it reads the tensors' bytes from data in file order, past what
// lies between them and past the tensors already resident (skip), and hands each tensor to the
// workers as jobs (a tensor without bytes is ready at once).
func (l *Load) readRows(ctx context.Context, data *countReader, ts []*tensorJob, pool *chunkPool, jobs chan<- job) error {
	for _, t := range ts {
		if gap := t.info.Offset - data.off; gap > 0 {
			if _, err := io.CopyN(io.Discard, data, gap); err != nil {
				return truncatedErr(t.src, t.info, data.off, err)
			}
		}
		switch {
		case t.skip:
			if _, err := io.CopyN(io.Discard, data, t.info.Size); err != nil {
				return truncatedErr(t.src, t.info, data.off, err)
			}
		case t.info.Size == 0:
			l.mu.Lock()
			l.tensorReadyLocked(t.info.Name, nil, t.src)
			l.mu.Unlock()
		default:
			if err := l.readTensor(ctx, data, t, pool, jobs); err != nil {
				return err
			}
		}
	}
	return nil
}

// readTensor cuts t's bytes into jobs of as many whole rows as a pool buffer holds, making room
// in t.out for each job's rows only once they have arrived.
func (l *Load) readTensor(ctx context.Context, data *countReader, t *tensorJob, pool *chunkPool, jobs chan<- job) error {
	per := max(1, pool.size/t.rowBytes)
	t.left.Store(int64((t.n + per - 1) / per))
	for row := 0; row < t.n; row += per {
		rows := min(per, t.n-row)
		buf, err := pool.get(ctx)
		if err != nil {
			return abortedErr(t.src, err)
		}
		if buf, err = pool.read(data, buf, rows*t.rowBytes, t.trusted); err != nil {
			pool.put(buf)
			return truncatedErr(t.src, t.info, data.off, err)
		}
		if err := l.growOut(t, row+rows); err != nil {
			pool.put(buf)
			return err
		}
		select {
		case jobs <- job{t: t, row0: row, rows: rows, buf: buf, pool: pool}:
		case <-ctx.Done():
			pool.put(buf)
			return abortedErr(t.src, ctx.Err())
		}
		l.report()
	}
	return nil
}

// finishSource is the publish stage: it reads what follows the last tensor (the size and the
// hash cover the whole file), lets the file's cache entry end, and publishes the file's held
// tensors uploaded so far (publishLocked runs again when the load ends, for the tensors still
// in the workers).
func (l *Load) finishSource(r *resumable, src Source, entry *entryWriter) error {
	if src.Size > 0 || src.SHA256 != "" {
		if err := r.drain(make([]byte, 32<<10)); err != nil {
			return err
		}
	}
	if entry != nil {
		entry.verify()
	}
	if l.opt.VerifyBeforeUse && src.SHA256 != "" {
		l.mu.Lock()
		l.publishLocked(src.Name)
		l.mu.Unlock()
	}
	return nil
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
