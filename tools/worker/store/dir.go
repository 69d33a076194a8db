package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Dir serves model files from a directory laid out as <dir>/<model>/<file>. All access goes
// through an os.Root, so even a symbolic link inside the directory cannot lead outside it.
type Dir struct {
	root *os.Root

	mu   sync.Mutex
	sums map[string]cachedSum // key → sha256 of the version identified by size and mtime
}

type cachedSum struct {
	size  int64
	mtime time.Time
	hex   string
}

var _ Store = (*Dir)(nil)

// OpenDir opens path as a Dir.
func OpenDir(path string) (*Dir, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("store: open models directory: %w", err)
	}
	return &Dir{root: root, sums: map[string]cachedSum{}}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// dirInfo turns a stat result into an Info. The entity tag is size and modification time in
// hex, as nginx does: stable across restarts, and changed by any rewrite of the file.
func dirInfo(key string, fi fs.FileInfo) Info {
	mt := fi.ModTime()
	return Info{
		Key:      key,
		Size:     fi.Size(),
		ETag:     `"` + strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(mt.UnixNano(), 16) + `"`,
		Modified: mt,
	}
}

func (d *Dir) stat(key string) (fs.FileInfo, error) {
	if _, _, err := SplitKey(key); err != nil {
		return nil, err
	}
	fi, err := d.root.Stat(key)
	if missing(err) || (err == nil && !fi.Mode().IsRegular()) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: stat %s: %w", key, err)
	}
	return fi, nil
}

// Head implements Store.
func (d *Dir) Head(ctx context.Context, key string) (Info, error) {
	fi, err := d.stat(key)
	if err != nil {
		return Info{}, err
	}
	info := dirInfo(key, fi)
	info.SHA256 = d.cachedSum(key, fi)
	return info, nil
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string, r *Range, etag string) (*Object, error) {
	if _, _, err := SplitKey(key); err != nil {
		return nil, err
	}
	f, err := d.root.Open(key)
	if missing(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("store: stat %s: %w", key, err)
		}
		return nil, ErrNotFound
	}
	info := dirInfo(key, fi)
	if etag != "" && etag != info.ETag {
		f.Close()
		return nil, ErrChanged
	}
	n := info.Size
	if r != nil {
		if r.Offset < 0 || r.Length <= 0 || r.Offset+r.Length > info.Size || r.Offset+r.Length < r.Offset {
			f.Close()
			return nil, fmt.Errorf("store: range %d+%d outside %s (%d bytes)", r.Offset, r.Length, key, info.Size)
		}
		if _, err := f.Seek(r.Offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: seek %s: %w", key, err)
		}
		n = r.Length
	}
	info.SHA256 = d.cachedSum(key, fi)
	return &Object{Info: info, Body: &fileBody{lr: io.LimitedReader{R: f, N: n}, f: f}}, nil
}

// fileBody reads n bytes of an open file. Its WriteTo hands the *io.LimitedReader of the
// *os.File itself to the destination, so net/http's ResponseWriter can use sendfile(2).
type fileBody struct {
	lr io.LimitedReader
	f  *os.File
}

var (
	_ io.ReadCloser = (*fileBody)(nil)
	_ io.WriterTo   = (*fileBody)(nil)
)

func (b *fileBody) Read(p []byte) (int, error)         { return b.lr.Read(p) }
func (b *fileBody) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, &b.lr) }
func (b *fileBody) Close() error                       { return b.f.Close() }

// List implements Store. It hashes every file it has not hashed at this size and mtime
// before, so the first manifest of a large model takes a while (about 1 s per GB).
func (d *Dir) List(ctx context.Context, model string) ([]Info, error) {
	if !ValidSegment(model) {
		return nil, ErrNotFound
	}
	f, err := d.root.Open(model)
	if missing(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: open model %s: %w", model, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if missing(err) {
		return nil, ErrNotFound // a regular file where a model directory would be
	}
	if err != nil {
		return nil, fmt.Errorf("store: list model %s: %w", model, err)
	}
	var out []Info
	for _, e := range entries {
		if !ValidSegment(e.Name()) {
			continue // not reachable through the handler either
		}
		key := model + "/" + e.Name()
		fi, err := d.stat(key) // follows symlinks, within the root
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		info := dirInfo(key, fi)
		if info.SHA256, err = d.sum(ctx, key, fi); err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (d *Dir) cachedSum(key string, fi fs.FileInfo) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.sums[key]; ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.hex
	}
	return ""
}

func (d *Dir) sum(ctx context.Context, key string, fi fs.FileInfo) (string, error) {
	if s := d.cachedSum(key, fi); s != "" {
		return s, nil
	}
	f, err := d.root.Open(key)
	if err != nil {
		return "", fmt.Errorf("store: hash %s: %w", key, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("store: hash %s: %w", key, err)
	}
	s := hex.EncodeToString(h.Sum(nil))
	d.mu.Lock()
	d.sums[key] = cachedSum{size: fi.Size(), mtime: fi.ModTime(), hex: s}
	d.mu.Unlock()
	return s, nil
}

// ctxReader stops a long hash when the request that wanted it has gone away.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// missing reports whether err means the key names nothing servable: absent, under a regular
// file ("file/x": ENOTDIR, a client's mistake, not a storage failure), or a symbolic link
// leading out of the root, which os.Root refuses with an unexported error ("path escapes from
// parent") that can only be recognised by its text.
func missing(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return true
	}
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}
