//go:build js && wasm

package jsapi

import (
	"context"
	"fmt"
	"sync"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/engine"
)

// A page that loads the same model twice at once (two components, a retry while the first is
// still streaming) must not download it twice: loads of one URL with the same options share
// one engine load, and each caller gets its own handle. The model is released with the last
// handle, and a load nobody waits for any more (every caller aborted) is cancelled.
type shared struct {
	key    string
	done   chan struct{} // closed when the load succeeded or failed
	cancel context.CancelFunc

	// Under sharedMu.
	m         *engine.Model // set when done without error
	err       error
	refs      int
	listeners map[int]js.Value
	nextID    int
}

var (
	sharedMu sync.Mutex
	loads    = map[string]*shared{}
)

func loadKey(url string, opt engine.Options) string {
	cache := "default"
	if opt.Cache != nil {
		cache = fmt.Sprint(*opt.Cache)
	}
	// Int8Activations changes the numbers (the model's own backend, or its compiled graphs):
	// a load with it never shares one without it.
	return fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%v\x00%s\x00%d\x00%v", url, opt.Backend, opt.Format, opt.Policy, opt.Overrides, opt.Search, cache, opt.MemoryBudget, opt.Int8Activations)
}

// acquire joins the load of url with opt, starting it if none is running or loaded, and waits
// for it (or for ctx: the caller's AbortSignal).
func acquire(ctx context.Context, url string, opt engine.Options, onProgress js.Value) (*shared, error) {
	if ctx.Err() != nil { // a signal that had fired: start nothing
		return nil, fmt.Errorf("load %s: %w", url, context.Cause(ctx))
	}
	sharedMu.Lock()
	key := loadKey(url, opt)
	s := loads[key]
	if s == nil {
		lctx, cancel := context.WithCancel(context.Background())
		s = &shared{key: key, done: make(chan struct{}), cancel: cancel, listeners: map[int]js.Value{}}
		loads[key] = s
		opt.OnProgress = s.progress
		go s.run(lctx, url, opt)
	}
	s.refs++
	id := s.nextID
	s.nextID++
	if onProgress.Type() == js.TypeFunction {
		s.listeners[id] = onProgress
	}
	sharedMu.Unlock()

	select {
	case <-s.done:
	case <-ctx.Done():
	}
	sharedMu.Lock()
	delete(s.listeners, id)
	err := s.err
	sharedMu.Unlock()
	select {
	case <-s.done:
		if err != nil {
			s.release()
			return nil, err
		}
		return s, nil
	default:
		s.release()
		return nil, fmt.Errorf("load %s: %w", url, context.Cause(ctx))
	}
}

func (s *shared) run(ctx context.Context, url string, opt engine.Options) {
	m, err := engine.Load(ctx, url, opt)
	if err == nil {
		if err = m.Wait(ctx); err != nil {
			m.Release()
			m = nil
		}
	}
	sharedMu.Lock()
	s.m, s.err = m, err
	if err != nil && loads[s.key] == s {
		delete(loads, s.key) // a failed load is not handed to later callers: they try again
	}
	sharedMu.Unlock()
	close(s.done)
}

// progress hands a progress report to every caller still waiting.
func (s *shared) progress(p engine.Progress) {
	sharedMu.Lock()
	fs := make([]js.Value, 0, len(s.listeners))
	for _, f := range s.listeners {
		fs = append(fs, f)
	}
	sharedMu.Unlock()
	if len(fs) == 0 {
		return
	}
	v := toJS(p)
	for _, f := range fs {
		callSafe(f, v)
	}
}

func (s *shared) handles() int {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	return s.refs
}

// release drops one caller; the last one cancels the load or releases the model.
func (s *shared) release() error {
	sharedMu.Lock()
	s.refs--
	last := s.refs == 0
	if last && loads[s.key] == s {
		delete(loads, s.key)
	}
	sharedMu.Unlock()
	if !last {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return s.free()
	default:
		// Aborted mid-load: the caller's promise rejects now; the load ends in its own time
		// (run releases what it held when Wait returns the cancellation).
		go func() {
			<-s.done
			s.free()
		}()
		return nil
	}
}

func (s *shared) free() error {
	sharedMu.Lock()
	m := s.m
	s.m = nil
	sharedMu.Unlock()
	if m == nil {
		return nil
	}
	return m.Release()
}
