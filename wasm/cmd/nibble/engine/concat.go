package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/nibble-ml/nibble/wasm/stream"
)

// Part is one file of a multi-file stream (a TF.js weight shard).
type Part struct {
	Name string
	Open stream.Opener
	Size int64 // bytes; must be exact when Concat is told sizes are known
}

// Concat returns an Opener over parts read back to back, as one file. With known sizes an open
// at any offset starts in the right part at the right byte (so the loader's Range resume works
// across shards) and each part must deliver exactly its size; without them only offset 0 can be
// opened and parts are read to their end.
func Concat(parts []Part, sizesKnown bool) stream.Opener {
	return func(ctx context.Context, off int64) (io.ReadCloser, error) {
		i, local := 0, off
		if off > 0 {
			if !sizesKnown {
				return nil, stream.Permanent(fmt.Errorf("cannot resume %d files at byte %d without their sizes", len(parts), off))
			}
			for i < len(parts) && local >= parts[i].Size {
				local -= parts[i].Size
				i++
			}
			if i == len(parts) && local == 0 {
				return io.NopCloser(eofReader{}), nil
			}
			if i == len(parts) {
				return nil, stream.Permanent(fmt.Errorf("offset %d is past the end of %d files", off, len(parts)))
			}
		}
		c := &concatReader{ctx: ctx, parts: parts, i: i, sizesKnown: sizesKnown}
		if err := c.open(local); err != nil {
			return nil, err
		}
		return c, nil
	}
}

// concatReader reads parts[i:] in order. Close may run while Read blocks (the loader's stall
// timer): it closes the current part, which makes that Read return.
type concatReader struct {
	ctx        context.Context
	parts      []Part
	sizesKnown bool

	mu     sync.Mutex
	i      int
	rc     io.ReadCloser
	left   int64 // bytes the current part still owes, when sizes are known
	closed bool
}

func (c *concatReader) open(local int64) error {
	rc, err := c.parts[c.i].Open(c.ctx, local)
	if err != nil {
		return fmt.Errorf("%s: %w", c.parts[c.i].Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		rc.Close()
		return errors.New("closed")
	}
	c.rc, c.left = rc, c.parts[c.i].Size-local
	return nil
}

func (c *concatReader) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		rc, closed := c.rc, c.closed
		c.mu.Unlock()
		if closed || rc == nil {
			return 0, errors.New("read after close")
		}
		if c.sizesKnown && int64(len(p)) > c.left && c.left > 0 {
			p = p[:c.left]
		}
		n, err := rc.Read(p)
		c.left -= int64(n)
		if c.sizesKnown && c.left < 0 {
			return n, fmt.Errorf("%s: longer than its %d bytes", c.parts[c.i].Name, c.parts[c.i].Size)
		}
		partDone := err == io.EOF || (c.sizesKnown && c.left == 0 && err == nil)
		if err != nil && err != io.EOF {
			return n, fmt.Errorf("%s: %w", c.parts[c.i].Name, err)
		}
		if !partDone {
			return n, nil
		}
		if c.sizesKnown && c.left != 0 {
			return n, fmt.Errorf("%s: ended %d bytes early: %w", c.parts[c.i].Name, c.left, io.ErrUnexpectedEOF)
		}
		rc.Close()
		if c.i+1 == len(c.parts) {
			c.mu.Lock()
			c.rc = io.NopCloser(eofReader{})
			c.mu.Unlock()
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		c.i++
		if err := c.open(0); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (c *concatReader) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.rc != nil {
		return c.rc.Close()
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
