package stream

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Load is a model being streamed into a backend. Its methods are safe for concurrent use.
//
// This file holds the load's state and its public methods; the stages that fill it are in
// pipeline.go (source → header → plan → rows → publish), quantize.go (the workers and the
// upload), pool.go (the in-flight window) and cacheload.go (a load from Options.Cache).
type Load struct {
	opt    Options
	up     Uploader
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change a waiter may care about
	err     error
	prog    Progress
	tensors tensorSet  // guarded by mu
	cache   cacheState // guarded by mu (but for its WaitGroup)

	mem heldMemory
}

// tensorSet is what the load knows of its tensors.
type tensorSet struct {
	infos    []format.TensorInfo       // declared by the headers read so far, in file order
	formats  map[string]quant.Format   // the format chosen for each declared tensor
	weights  map[string]backend.Weight // uploaded (maybe not yet published)
	resident map[string]bool           // published: usable
	hold     map[string][]string       // file → uploaded tensors waiting for its hash check
}

// cacheState is the load's side of Options.Cache.
type cacheState struct {
	err       error           // the first problem with the cache (Load.CacheErr)
	fromCache map[string]bool // tensors uploaded from an entry: a network pass after a damaged entry skips them
	entries   []*entryWriter  // the entries being written
	puts      sync.WaitGroup  // their Put calls
}

// heldMemory is the memory the pipeline holds beyond resident weights (see Progress.HeldBytes),
// each part counted where it is allocated and freed.
type heldMemory struct {
	window  atomic.Int64              // chunk buffers (chunkPool)
	scratch atomic.Int64              // the workers' float32 decode blocks
	pending atomic.Int64              // quantized tensors being assembled or waiting for their upload
	src     atomic.Pointer[resumable] // the file being read: its connection holds bytes outside Go
	// garbage is the scratch left to the collector since the last forced collection
	// (Options.CollectEvery); it is not held, only not yet collected.
	garbage atomic.Int64
}

// now is the memory held at this moment.
func (m *heldMemory) now() int64 {
	return m.window.Load() + m.scratch.Load() + m.pending.Load() + m.external()
}

// external is the part of it outside Go memory: what the byte source holds.
func (m *heldMemory) external() int64 {
	if r := m.src.Load(); r != nil {
		return r.heldBytes()
	}
	return 0
}

// Start begins loading srcs, one after the other, into up and returns at once. Tensor names must
// be unique across the files. Cancelling ctx (or calling Release) stops the load and releases
// everything uploaded.
func Start(ctx context.Context, up Uploader, opt Options, srcs ...Source) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := newLoad(up, opt, cancel)
	for _, s := range srcs {
		l.prog.BytesTotal += s.Size
	}
	go l.run(ctx, srcs)
	return l
}

// newLoad is a load that has not started: the state every stage works on.
func newLoad(up Uploader, opt Options, cancel context.CancelFunc) *Load {
	return &Load{
		opt:     opt.withDefaults(),
		up:      up,
		start:   time.Now(),
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		tensors: tensorSet{
			formats:  map[string]quant.Format{},
			weights:  map[string]backend.Weight{},
			resident: map[string]bool{},
		},
		cache: cacheState{fromCache: map[string]bool{}},
	}
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
	out := make(map[string]backend.Weight, len(l.tensors.weights))
	for n, w := range l.tensors.weights {
		out[n] = w
	}
	return out, nil
}

// Tensors lists the tensors declared by the headers read so far, in file order.
func (l *Load) Tensors() []format.TensorInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]format.TensorInfo(nil), l.tensors.infos...)
}

// IsResident reports whether every named tensor is uploaded and usable now.
func (l *Load) IsResident(names ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.residentLocked(names)
}

func (l *Load) residentLocked(names []string) bool {
	for _, n := range names {
		if !l.tensors.resident[n] {
			return false
		}
	}
	return true
}

// Weight returns a resident tensor.
func (l *Load) Weight(name string) (backend.Weight, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tensors.resident[name] {
		return nil, false
	}
	return l.tensors.weights[name], true
}

// Wait blocks until every named tensor is resident, the load fails (its error), a name turns out
// not to be in any file once all headers are read, or ctx ends.
func (l *Load) Wait(ctx context.Context, names ...string) error {
	for {
		l.mu.Lock()
		ok, err, ch := l.residentLocked(names), l.err, l.changed
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
	for n, w := range l.tensors.weights {
		if w == nil {
			continue
		}
		if err := w.Release(); err != nil && first == nil {
			first = fmt.Errorf("stream: release %q: %w", n, err)
		}
	}
	l.tensors.weights = map[string]backend.Weight{}
	l.tensors.resident = map[string]bool{}
	l.tensors.hold = nil
	l.prog.ResidentBytes = 0
	l.broadcastLocked()
	return first
}

func (l *Load) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Load) snapshotLocked() Progress {
	p := l.prog
	p.WindowBytes = l.mem.window.Load()
	p.HeldBytes = l.mem.now()
	p.ExternalBytes = l.mem.external()
	if p.HeldBytes > l.prog.PeakHeldBytes {
		l.prog.PeakHeldBytes = p.HeldBytes
	}
	p.PeakHeldBytes = l.prog.PeakHeldBytes
	p.Elapsed = time.Since(l.start)
	if r := l.mem.src.Load(); r != nil {
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

// tensorReadyLocked records an uploaded tensor (w nil for one without bytes) of file: usable
// now, or once file is verified (Options.VerifyBeforeUse).
func (l *Load) tensorReadyLocked(name string, w backend.Weight, file string) {
	if l.err != nil {
		// Failed meanwhile: nothing may stay resident.
		if w != nil {
			w.Release()
		}
		return
	}
	l.tensors.weights[name] = w
	if w != nil {
		l.prog.ResidentBytes += w.Bytes()
	}
	l.prog.TensorsReady++
	if l.prog.FirstReady == 0 {
		l.prog.FirstReady = time.Since(l.start)
	}
	if names, ok := l.tensors.hold[file]; ok {
		l.tensors.hold[file] = append(names, name)
		return
	}
	l.tensors.resident[name] = true
	l.broadcastLocked()
}

// publishLocked makes the held-back tensors of file usable ("" for every file).
func (l *Load) publishLocked(file string) {
	for f, names := range l.tensors.hold {
		if file == "" || f == file {
			for _, n := range names {
				l.tensors.resident[n] = true
			}
			delete(l.tensors.hold, f)
		}
	}
	l.broadcastLocked()
}
