package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// noteCacheErr records the first cache problem (see Load.CacheErr).
func (l *Load) noteCacheErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cache.err == nil {
		l.cache.err = err
	}
}

// CacheErr returns the first problem the load had with Options.Cache: an entry it ignored
// (damaged, truncated, stale) or one it could not store. Such problems never fail the load.
func (l *Load) CacheErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cache.err
}

// loadCached delivers src's tensors from the cache entry under key. hit reports that every
// tensor came from there. On a miss or an unusable entry the caller loads from the network:
// tensors already uploaded from the entry (each checked) stay resident, and the network pass
// skips them. err is set only for failures that end the load (cancellation, an upload error).
func (l *Load) loadCached(ctx context.Context, src Source, key string) (hit bool, err error) {
	rc, cr := l.openEntry(src, key)
	if cr == nil {
		return false, nil
	}
	defer rc.Close()
	quantized, err := l.registerEntry(src, cr)
	if err != nil {
		return false, err
	}
	l.report()
	damage, err := l.uploadEntry(ctx, cr)
	if damage != nil {
		l.unregisterEntry(src, key, cr, quantized, damage)
		return false, nil
	}
	return err == nil, err
}

// openEntry opens the entry under key and reads its header: nil (and rc closed) on a miss, a
// damaged header (the entry is deleted) or an entry for another plan (the network load
// overwrites it).
func (l *Load) openEntry(src Source, key string) (rc io.ReadCloser, cr *cacheReader) {
	rc, err := l.opt.Cache.Get(key)
	if err != nil {
		if !errors.Is(err, ErrCacheMiss) {
			l.noteCacheErr(fmt.Errorf("stream: cache get %s: %w", src.Name, err))
		}
		return nil, nil
	}
	cr, err = newCacheReader(rc, key)
	if err != nil {
		l.noteCacheErr(fmt.Errorf("stream: cache entry of %s: %w", src.Name, err))
		l.opt.Cache.Delete(key)
		rc.Close()
		return nil, nil
	}
	for i := range cr.h.Tensors {
		ct := &cr.h.Tensors[i]
		if f := l.opt.Plan(&ct.TensorInfo); f != ct.format() {
			// Not damage: the plan changed.
			l.noteCacheErr(fmt.Errorf("stream: cache entry of %s: tensor %q is %v, the plan now says %v: %w", src.Name, ct.Name, ct.format(), f, ErrCacheEntry))
			rc.Close()
			return nil, nil
		}
	}
	return rc, cr
}

// registerEntry registers the entry's tensors as the plan stage registers a file's (undone by
// unregisterEntry if the entry turns out damaged); the tensors without bytes are ready at once.
// It returns the quantized bytes the entry declares.
func (l *Load) registerEntry(src Source, cr *cacheReader) (quantized int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range cr.h.Tensors {
		ct := &cr.h.Tensors[i]
		if _, dup := l.tensors.formats[ct.Name]; dup {
			return 0, fmt.Errorf("stream: %s: tensor %q is also in an earlier file: %w", src.Name, ct.Name, format.ErrCorrupt)
		}
	}
	for i := range cr.h.Tensors {
		ct := &cr.h.Tensors[i]
		n, k, _ := ct.nk()
		l.tensors.formats[ct.Name] = ct.format()
		l.tensors.infos = append(l.tensors.infos, ct.TensorInfo)
		if ct.hasBytes() {
			quantized += int64(ct.format().TensorBytes(n, k))
		}
	}
	l.prog.Source = src.Name
	l.prog.TensorsTotal += len(cr.h.Tensors)
	l.prog.QuantizedTotal += quantized
	l.prog.BytesTotal -= src.Size
	l.prog.CacheHits++
	l.prog.CacheRead += cr.n
	for i := range cr.h.Tensors {
		if ct := &cr.h.Tensors[i]; !ct.hasBytes() && !l.cache.fromCache[ct.Name] {
			l.cache.fromCache[ct.Name] = true
			l.tensorReadyLocked(ct.Name, nil, "")
		}
	}
	return quantized, nil
}

// unregisterEntry undoes registerEntry after the entry turned out damaged (cause), but for the
// tensors already uploaded from it, and deletes the entry.
func (l *Load) unregisterEntry(src Source, key string, cr *cacheReader, quantized int64, cause error) {
	l.noteCacheErr(fmt.Errorf("stream: cache entry of %s: %w", src.Name, cause))
	l.opt.Cache.Delete(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	drop := make(map[string]bool, len(cr.h.Tensors))
	for _, ct := range cr.h.Tensors {
		drop[ct.Name] = true
		delete(l.tensors.formats, ct.Name)
	}
	kept := l.tensors.infos[:0]
	for _, ti := range l.tensors.infos {
		if !drop[ti.Name] {
			kept = append(kept, ti)
		}
	}
	l.tensors.infos = kept
	l.prog.TensorsTotal -= len(cr.h.Tensors)
	l.prog.QuantizedTotal -= quantized
	l.prog.BytesTotal += src.Size
	l.prog.CacheHits--
}

// uploadEntry uploads the entry's tensors one at a time as they are read and checked. damage is
// what was wrong with the entry (its reader's error before the end); err a failure that ends the
// load (cancellation, an upload error).
func (l *Load) uploadEntry(ctx context.Context, cr *cacheReader) (damage, err error) {
	last := cr.n
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, t, err := cr.next()
		l.mu.Lock()
		l.prog.CacheRead += cr.n - last
		l.mu.Unlock()
		last = cr.n
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
		l.mem.pending.Add(int64(t.Bytes()))
		w, err := l.up.Upload(t)
		l.mem.pending.Add(-int64(t.Bytes()))
		if err != nil {
			return nil, fmt.Errorf("stream: upload %q (from the cache): %w", t.Name, err)
		}
		l.mu.Lock()
		l.cache.fromCache[t.Name] = true
		l.tensorReadyLocked(t.Name, w, "")
		l.mu.Unlock()
		l.report()
	}
}

// entryWriter streams one file's cache entry into Cache.Put through a pipe, one tensor record
// at a time as tensors are uploaded, so the entry is never held whole. It ends the entry (and
// so lets Put commit it) only once the file was verified and every tensor was written.
type entryWriter struct {
	l   *Load
	key string
	pw  *io.PipeWriter

	mu       sync.Mutex
	cw       *cacheWriter
	left     int
	verified bool
	closed   bool
}

// startEntry begins the entry for src's tensors (ts, in file order, with the formats chosen).
func (l *Load) startEntry(src Source, key string, ts []*tensorJob) *entryWriter {
	pr, pw := io.Pipe()
	entry := &entryWriter{l: l, key: key, pw: pw}
	l.cache.puts.Add(1)
	go func() {
		defer l.cache.puts.Done()
		err := l.opt.Cache.Put(key, pr)
		// Put may return before reading everything (a full quota): unblock the writer.
		pr.CloseWithError(errors.New("stream: cache put returned"))
		if err != nil && !entry.aborted() {
			l.noteCacheErr(fmt.Errorf("stream: cache put %s: %w", src.Name, err))
		}
	}()
	h := &cacheHeader{Key: key, Tensors: make([]cacheTensor, len(ts))}
	for i, t := range ts {
		h.Tensors[i] = newCacheTensor(t.info, t.format)
		if t.info.Size > 0 {
			entry.left++
		}
	}
	cw, err := newCacheWriter(countWriter{pw, l}, h)
	if err != nil {
		entry.abort(err)
		l.noteCacheErr(fmt.Errorf("stream: cache put %s: %w", src.Name, err))
		return entry
	}
	entry.cw = cw
	l.mu.Lock()
	l.cache.entries = append(l.cache.entries, entry)
	l.mu.Unlock()
	return entry
}

type countWriter struct {
	w io.Writer
	l *Load
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.l.mu.Lock()
	c.l.prog.CacheWritten += int64(n)
	c.l.mu.Unlock()
	return n, err
}

func (entry *entryWriter) aborted() bool {
	entry.mu.Lock()
	defer entry.mu.Unlock()
	return entry.closed && entry.cw == nil
}

// tensor writes one uploaded tensor's record.
func (entry *entryWriter) tensor(t *quant.Tensor) {
	entry.mu.Lock()
	defer entry.mu.Unlock()
	if entry.closed || entry.cw == nil {
		return
	}
	if err := entry.cw.tensor(t); err != nil {
		entry.abortLocked(err)
		return
	}
	entry.left--
	entry.finishLocked()
}

// verify says the file's size and hash checked out.
func (entry *entryWriter) verify() {
	entry.mu.Lock()
	defer entry.mu.Unlock()
	entry.verified = true
	entry.finishLocked()
}

func (entry *entryWriter) finishLocked() {
	if entry.closed || entry.cw == nil || !entry.verified || entry.left > 0 {
		return
	}
	if err := entry.cw.end(); err != nil {
		entry.abortLocked(err)
		return
	}
	entry.closed = true
	entry.pw.Close()
}

// abort ends the entry with err: Put sees it and stores nothing.
func (entry *entryWriter) abort(err error) {
	entry.mu.Lock()
	defer entry.mu.Unlock()
	entry.abortLocked(err)
}

func (entry *entryWriter) abortLocked(err error) {
	if entry.closed {
		return
	}
	entry.closed = true
	entry.cw = nil
	entry.pw.CloseWithError(err)
}
