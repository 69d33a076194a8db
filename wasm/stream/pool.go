package stream

import (
	"context"
	"io"
	"sync/atomic"
)

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
	size   int           // the largest buffer: a chunk, or one row where a row is larger
	first  int           // the capacity an untrusted buffer starts at (Options.ChunkBytes, at most size)
	window *atomic.Int64 // the capacity of the buffers allocated (heldMemory.window)
	idle   chan []byte
	slots  chan struct{} // one token per buffer that may still be allocated
}

func newChunkPool(l *Load, size, n int) *chunkPool {
	p := &chunkPool{size: size, first: min(size, l.opt.ChunkBytes), window: &l.mem.window, idle: make(chan []byte, n), slots: make(chan struct{}, n)}
	for range n {
		p.slots <- struct{}{}
	}
	return p
}

// get returns a buffer of the pool, of any capacity up to size (none yet for a new slot): read
// fills it.
func (p *chunkPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.idle:
		return b, nil
	default:
	}
	select {
	case b := <-p.idle:
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
	if trusted || n <= p.first {
		// Whole buffers, reused by every later job: wasm memory does not creep up.
		c := p.first
		if trusted {
			c = p.size
		}
		p.window.Add(int64(c - cap(b)))
		b = make([]byte, n, c)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b = b[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			nb := make([]byte, len(b), min(n, max(2*cap(b), p.first)))
			copy(nb, b)
			p.window.Add(int64(cap(nb) - cap(b)))
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

func (p *chunkPool) put(b []byte) { p.idle <- b }

// free drops the pool's buffers (for the collector) and their accounting.
func (p *chunkPool) free() {
	for {
		select {
		case b := <-p.idle:
			p.window.Add(-int64(cap(b)))
		default:
			return
		}
	}
}
