package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// resumable is the io.Reader the pipeline reads one file through. It hides broken connections:
// on an error, a premature end or a stall it closes the stream and opens it again at the first
// byte it has not delivered, so what the caller reads is the file, byte for byte, or an error.
// It hashes what it delivers and checks size and sha256 at the end.
type resumable struct {
	ctx context.Context
	src Source
	opt *Options

	rc      io.ReadCloser
	off     int64 // bytes delivered
	minEnd  int64 // the file has at least this many bytes (from its header): an EOF before is a break
	size    int64 // the file's length as the transport reported it (see Sizer), 0 if unknown
	h       hash.Hash
	err     error // sticky: io.EOF once the end was verified, or why the file failed
	resumes atomic.Int32
	opened  bool

	onBytes func(n int) // progress, called with every delivery
	held    atomic.Int64
}

func newResumable(ctx context.Context, src Source, opt *Options) *resumable {
	r := &resumable{ctx: ctx, src: src, opt: opt, minEnd: src.Size}
	if src.SHA256 != "" {
		r.h = sha256.New()
	}
	return r
}

// heldBytes is what the current connection holds outside Go memory.
func (r *resumable) heldBytes() int64 { return r.held.Load() }

func (r *resumable) Close() error {
	if r.rc != nil {
		err := r.rc.Close()
		r.rc = nil
		r.held.Store(0)
		return err
	}
	return nil
}

func (r *resumable) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	failures := 0
	delay := r.opt.RetryDelay
	fresh := false // the connection was opened in this call and has delivered nothing yet
	for {
		if err := r.ctx.Err(); err != nil {
			r.Close()
			return 0, fmt.Errorf("stream: %s at byte %d: %w", r.src.Name, r.off, err)
		}
		var err error
		if r.rc == nil {
			if r.opened {
				r.resumes.Add(1)
			}
			r.opened = true
			r.rc, err = r.src.Open(r.ctx, r.off)
			if err != nil {
				r.rc = nil
				err = fmt.Errorf("open at byte %d: %w", r.off, err)
			} else if err = r.checkSize(); err != nil {
				r.Close()
			}
			fresh = true
		}
		if err == nil {
			var n int
			n, err = r.readOnce(p)
			if n > 0 {
				fresh = false
			}
			if n > 0 {
				r.deliver(p[:n])
				if r.src.Size > 0 && r.off > r.src.Size {
					r.Close()
					r.err = fmt.Errorf("stream: %s: more than the %d bytes the manifest says: %w", r.src.Name, r.src.Size, ErrSize)
					return n, r.err
				}
				if err != nil && err != io.EOF {
					r.Close() // resume on the next Read
				}
				return n, nil
			}
			if err == io.EOF {
				if r.off < r.minEnd {
					err = fmt.Errorf("stream ended at byte %d of at least %d: %w", r.off, r.minEnd, io.ErrUnexpectedEOF)
					if fresh {
						// A connection opened right here that ends cleanly with no byte: the file
						// ends here, and no retry will make it longer.
						err = Permanent(fmt.Errorf("the file ends at byte %d, before byte %d: %w: %w", r.off, r.minEnd, format.ErrTruncated, ErrSize))
					}
				} else {
					r.Close()
					r.err = r.finish()
					return 0, r.err
				}
			}
			if err == nil {
				continue // a 0-byte read: ask again
			}
			r.Close()
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			return 0, fmt.Errorf("stream: %s at byte %d: %w", r.src.Name, r.off, ctxErr)
		}
		failures++
		if isPermanent(err) || failures > r.opt.MaxRetries {
			// What failed without saying why (a reset, a refused connection) is the network.
			r.err = fmt.Errorf("stream: %s at byte %d (after %d attempts): %w", r.src.Name, r.off, failures, errs.Mark(err, errs.ErrNetwork))
			return 0, r.err
		}
		select {
		case <-time.After(delay):
		case <-r.ctx.Done():
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// checkSize compares the file length the new connection reports (Sizer) with the manifest's,
// and learns it when the manifest gives none.
func (r *resumable) checkSize() error {
	sz, ok := r.rc.(Sizer)
	if !ok {
		return nil
	}
	n := sz.Size()
	switch {
	case n <= 0:
	case r.src.Size > 0 && n != r.src.Size:
		return Permanent(fmt.Errorf("the server says the file has %d bytes, the manifest %d: %w", n, r.src.Size, ErrSize))
	case r.size > 0 && n != r.size:
		return Permanent(fmt.Errorf("the file was %d bytes, now %d: %w", r.size, n, ErrChanged))
	default:
		r.size = n
		r.minEnd = max(r.minEnd, n)
	}
	return nil
}

// knownSize is the file's length when the manifest or the transport gave it, else 0.
func (r *resumable) knownSize() int64 {
	if r.src.Size > 0 {
		return r.src.Size
	}
	return r.size
}

// readOnce reads from the current connection, closing it (which must end the Read) if no byte
// arrives within the stall timeout.
func (r *resumable) readOnce(p []byte) (int, error) {
	rc := r.rc
	var stalled atomic.Bool
	var timer *time.Timer
	if r.opt.StallTimeout > 0 {
		timer = time.AfterFunc(r.opt.StallTimeout, func() {
			stalled.Store(true)
			rc.Close()
		})
	}
	stopCancel := context.AfterFunc(r.ctx, func() { rc.Close() })
	n, err := rc.Read(p)
	stopCancel()
	if timer != nil {
		timer.Stop()
	}
	if hr, ok := rc.(HeldReporter); ok {
		r.held.Store(hr.HeldBytes())
	}
	if stalled.Load() && n == 0 {
		return 0, fmt.Errorf("no byte for %v: %w", r.opt.StallTimeout, ErrStalled)
	}
	if stalled.Load() && err == nil {
		err = ErrStalled // the connection is closed now: resume on the next Read
	}
	return n, err
}

func (r *resumable) deliver(b []byte) {
	if r.h != nil {
		r.h.Write(b)
	}
	r.off += int64(len(b))
	if r.onBytes != nil {
		r.onBytes(len(b))
	}
}

// finish checks size and hash at the end of the file: io.EOF if they match.
func (r *resumable) finish() error {
	if r.src.Size > 0 && r.off != r.src.Size {
		return fmt.Errorf("stream: %s: %d bytes, the manifest says %d: %w", r.src.Name, r.off, r.src.Size, ErrSize)
	}
	if r.h != nil {
		got := hex.EncodeToString(r.h.Sum(nil))
		if got != r.src.SHA256 {
			return fmt.Errorf("stream: %s: sha256 %s, the manifest says %s (the file on the server is not the one the manifest describes, or it was damaged in transit): %w",
				r.src.Name, got, r.src.SHA256, ErrChecksum)
		}
	}
	return io.EOF
}

// drain reads the rest of the file so that size and hash can be checked.
func (r *resumable) drain(buf []byte) error {
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
