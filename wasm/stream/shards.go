package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
)

// Shard is one file of a stream split across files: a TF.js model's weight shards.
type Shard struct {
	Name string
	Open Opener
	// Size is the shard's length, 0 if unknown: then it is learned when the shard ends (a clean
	// end of an HTTP body is trusted: net/http and fetch report a body shorter than its
	// Content-Length as an error).
	Size int64
	// SHA256 is the lowercase hex sha256 of the shard, "" to skip the check. It is checked as
	// the shard's last byte passes, so a bad shard fails the load before the next is opened.
	SHA256 string
}

// JoinSource returns one Source reading shards back to back, as format.NewTFJS expects its
// shards. Opening it at an offset opens the shard that holds that byte at the right place
// (HTTP Range mid-shard), so a broken connection resumes where it broke. Each shard's sha256 is
// checked as it ends (ErrChecksum); the hash runs on across resumes, so reads through the
// Source must be sequential, as the loader's are. Size is the sum of the shard sizes when all
// are known; Version (for Options.Cache) is derived from the shard hashes when all are known.
func JoinSource(name string, shards ...Shard) Source {
	j := &joined{shards: shards, start: make([]int64, len(shards)+1), hashes: make([]shardHash, len(shards))}
	src := Source{Name: name, Open: j.open}
	known, hashed := true, true
	id := sha256.New()
	for i, s := range shards {
		known = known && s.Size > 0
		hashed = hashed && s.SHA256 != ""
		src.Size += s.Size
		fmt.Fprintf(id, "%s %d %s\n", s.Name, s.Size, s.SHA256)
		if known {
			j.start[i+1] = j.start[i] + s.Size
		}
	}
	j.known = 0
	for j.known < len(shards) && shards[j.known].Size > 0 {
		j.known++
	}
	if !known {
		src.Size = 0
	}
	if hashed && len(shards) > 0 {
		src.Version = "shards-sha256:" + hex.EncodeToString(id.Sum(nil))
	}
	return src
}

// joined is the state of a JoinSource: where each shard starts (as far as known) and the running
// hash of each.
type joined struct {
	shards []Shard

	mu     sync.Mutex
	start  []int64 // start[i] for i ≤ known; start[i+1] = start[i] + size of shard i
	known  int     // shards whose size is known, from the first
	hashes []shardHash
	// failed is a shard's failed check: sticky, because its bytes were delivered and a resume
	// would open the next shard and carry on as if nothing happened.
	failed error
}

type shardHash struct {
	h    hash.Hash // nil when the shard has no SHA256
	done int64     // bytes of the shard read (and hashed) so far
}

// locate returns the shard holding byte off and the offset within it.
func (j *joined) locateLocked(off int64) (int, int64, error) {
	for i := 0; i < j.known; i++ {
		if off < j.start[i+1] {
			return i, off - j.start[i], nil
		}
	}
	if j.known == len(j.shards) {
		return len(j.shards), 0, nil // at the end
	}
	// Past the shards of known size: only the start of the next one, whose size is not yet known,
	// can be located.
	i := j.known
	if off-j.start[i] != 0 && j.hashes[i].done != off-j.start[i] {
		return 0, 0, Permanent(fmt.Errorf("stream: cannot locate byte %d: the size of shard %s is unknown", off, j.shards[i].Name))
	}
	return i, off - j.start[i], nil
}

func (j *joined) open(ctx context.Context, off int64) (io.ReadCloser, error) {
	j.mu.Lock()
	if off == 0 {
		j.failed = nil // a fresh read
	}
	if j.failed != nil {
		j.mu.Unlock()
		return nil, j.failed
	}
	i, local, err := j.locateLocked(off)
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r := &joinReader{j: j, ctx: ctx, i: i, local: local}
	if err := r.openShard(); err != nil {
		return nil, err
	}
	return r, nil
}

// joinReader reads the shards from one shard and offset on.
type joinReader struct {
	j     *joined
	ctx   context.Context
	i     int   // shard being read
	local int64 // offset in it
	rc    io.ReadCloser
	fresh bool // rc has delivered nothing yet

	mu     sync.Mutex
	closed bool
}

// openShard opens shard r.i at r.local (nothing past the last shard).
func (r *joinReader) openShard() error {
	if r.i >= len(r.j.shards) {
		return nil
	}
	s := r.j.shards[r.i]
	r.j.mu.Lock()
	sh := &r.j.hashes[r.i]
	switch {
	case r.local == 0:
		sh.h, sh.done = nil, 0
		if s.SHA256 != "" {
			sh.h = sha256.New()
		}
	case s.SHA256 == "":
		sh.done = r.local
	case sh.h == nil || sh.done != r.local:
		r.j.mu.Unlock()
		return Permanent(fmt.Errorf("stream: shard %s: opened at byte %d, but only %d were hashed: its sha256 could not be checked (read a joined source sequentially)", s.Name, r.local, sh.done))
	}
	r.j.mu.Unlock()
	rc, err := s.Open(r.ctx, r.local)
	if err != nil {
		return fmt.Errorf("shard %s: %w", s.Name, err)
	}
	if sz, ok := rc.(Sizer); ok && s.Size > 0 && sz.Size() > 0 && sz.Size() != s.Size {
		rc.Close()
		return Permanent(fmt.Errorf("stream: shard %s: the server says %d bytes, the manifest %d: %w", s.Name, sz.Size(), s.Size, ErrSize))
	}
	r.fresh = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		rc.Close()
		return errClosedJoin
	}
	r.rc = rc
	return nil
}

var errClosedJoin = fmt.Errorf("stream: joined source closed")

func (r *joinReader) Read(p []byte) (int, error) {
	for {
		if r.i >= len(r.j.shards) {
			return 0, io.EOF
		}
		r.mu.Lock()
		rc, closed := r.rc, r.closed
		r.mu.Unlock()
		if closed {
			return 0, errClosedJoin
		}
		if rc == nil {
			if err := r.openShard(); err != nil {
				return 0, err
			}
			continue
		}
		s := r.j.shards[r.i]
		if s.Size > 0 && int64(len(p)) > s.Size-r.local {
			p = p[:max(s.Size-r.local, 1)] // one byte more reveals a shard that is too long
		}
		n, err := rc.Read(p)
		if n > 0 {
			r.fresh = false
			if s.Size > 0 && r.local+int64(n) > s.Size {
				return 0, Permanent(fmt.Errorf("stream: shard %s: more than the %d bytes the manifest says: %w", s.Name, s.Size, ErrSize))
			}
			r.j.mu.Lock()
			sh := &r.j.hashes[r.i]
			if sh.h != nil {
				sh.h.Write(p[:n])
			}
			sh.done += int64(n)
			r.j.mu.Unlock()
			r.local += int64(n)
		}
		if err == io.EOF {
			if err := r.endShard(); err != nil {
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// endShard checks the shard that just ended and moves to the next.
func (r *joinReader) endShard() error {
	s := r.j.shards[r.i]
	if s.Size > 0 && r.local < s.Size {
		if r.fresh {
			// Opened right here and ended with no byte: the shard is this short, for good.
			return Permanent(fmt.Errorf("stream: shard %s ends at byte %d, the manifest says %d: %w: %w", s.Name, r.local, s.Size, format.ErrTruncated, ErrSize))
		}
		return fmt.Errorf("stream: shard %s ended at byte %d of %d: %w", s.Name, r.local, s.Size, io.ErrUnexpectedEOF)
	}
	r.j.mu.Lock()
	sh := &r.j.hashes[r.i]
	if s.SHA256 != "" && sh.h != nil {
		if got := hex.EncodeToString(sh.h.Sum(nil)); got != s.SHA256 {
			r.j.failed = Permanent(fmt.Errorf("stream: shard %s: sha256 %s, the manifest says %s: %w", s.Name, got, s.SHA256, ErrChecksum))
			r.j.mu.Unlock()
			return r.j.failed
		}
	}
	if r.i == r.j.known { // learn where the next shard starts
		r.j.start[r.i+1] = r.j.start[r.i] + r.local
		r.j.known++
	}
	r.j.mu.Unlock()
	r.mu.Lock()
	rc := r.rc
	r.rc = nil
	r.mu.Unlock()
	rc.Close()
	r.i++
	r.local = 0
	return nil
}

// Close closes the shard being read; a blocked Read returns.
func (r *joinReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rc != nil {
		return r.rc.Close()
	}
	return nil
}

// HeldBytes passes on what the shard's reader holds outside Go.
func (r *joinReader) HeldBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if hr, ok := r.rc.(HeldReporter); ok {
		return hr.HeldBytes()
	}
	return 0
}

// TFJSShards lists the shard files of a TF.js weights manifest in the order format.NewTFJS reads
// them, each opened with open(base + path), unchecked: for a model.json from elsewhere use
// TFJSShardsAt. Size and SHA256 come from man (the model server's manifest.json) when it lists
// the path; man may be nil.
func TFJSShards(m format.TFJSManifest, base string, man *Manifest, open func(url string) Opener) []Shard {
	out, _ := tfjsShards(m, man, open, func(p string) (string, string, error) { return base + p, strings.TrimPrefix(p, "./"), nil })
	return out
}

// TFJSShardsAt is TFJSShards for the model.json at modelURL: every shard path must resolve
// inside the model's directory (ConfinedURL), or the model is refused (errs.ErrFormat) before
// any shard is requested. Each shard is looked up in man by its path relative to that
// directory, so "./w.bin" gets the size and sha256 of "w.bin".
func TFJSShardsAt(m format.TFJSManifest, modelURL *url.URL, man *Manifest, open func(url string) Opener) ([]Shard, error) {
	return tfjsShards(m, man, open, func(p string) (string, string, error) { return ConfinedURL(modelURL, p) })
}

func tfjsShards(m format.TFJSManifest, man *Manifest, open func(url string) Opener, resolve func(path string) (url, name string, err error)) ([]Shard, error) {
	byName := map[string]format.ManifestFile{}
	if man != nil {
		for _, f := range man.Files {
			byName[f.Name] = f
		}
	}
	var out []Shard
	for _, g := range m {
		for _, p := range g.Paths {
			u, name, err := resolve(p)
			if err != nil {
				return nil, err
			}
			f := byName[name]
			out = append(out, Shard{Name: p, Open: open(u), Size: f.Size, SHA256: f.SHA256})
		}
	}
	return out, nil
}

// ErrOutside (errs.ErrFormat) is wrapped when a manifest or model.json names a file outside its
// model's directory: another model's bytes, or a request the model's author chose for the page.
var ErrOutside = errs.New(errs.ErrFormat, "stream: file outside the model's directory")

// ConfinedURL resolves ref, a file that the file at base (a manifest.json, a model.json) names,
// and accepts it only inside base's directory: the same scheme, host and port, and a path under
// base's directory. Dot segments, plain or percent-encoded, and backslashes are refused outright
// rather than resolved: browsers and servers disagree on them (fetch turns "%2e%2e" into ".."
// and "\" into "/"). It returns the absolute URL and the path relative to the directory, the
// name manifest.json lists the file by.
func ConfinedURL(base *url.URL, ref string) (abs, rel string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %q %s (the model is at %s)", ErrOutside, ref, why, base.Redacted())
	}
	r, err := url.Parse(ref)
	if err != nil {
		return bad("is not a URL path")
	}
	if r.Scheme != "" || r.Host != "" || r.User != nil || strings.HasPrefix(r.Path, "/") {
		return bad("is not a path relative to the model")
	}
	// One leading "./", as written, is how TF.js converters often write shard paths; any other
	// dot segment (decoded: "%2e/" is one) is refused.
	p := r.Path
	if strings.HasPrefix(ref, "./") {
		p = p[2:]
	}
	segs := strings.Split(p, "/")
	for _, seg := range segs {
		if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\\x00") {
			return bad("has a dot segment, a backslash or a NUL")
		}
		// Still encoded after one decoding: a server that decodes twice would see dots or
		// separators.
		if low := strings.ToLower(seg); strings.Contains(low, "%2e") || strings.Contains(low, "%5c") || strings.Contains(low, "%2f") {
			return bad("has an encoded dot, slash or backslash")
		}
	}
	if segs[len(segs)-1] == "" {
		return bad("names a directory, not a file")
	}
	res := base.ResolveReference(r)
	dir := base.Path[:strings.LastIndex(base.Path, "/")+1]
	if res.Scheme != base.Scheme || res.Host != base.Host || !strings.HasPrefix(res.Path, dir) || len(res.Path) == len(dir) {
		return bad("resolves outside the model's directory")
	}
	return res.String(), res.Path[len(dir):], nil
}

// TFJSReader returns an Options.Reader for a TF.js model's joined shards.
func TFJSReader(m format.TFJSManifest, lim *format.Limits) func(io.Reader) (format.Reader, error) {
	return func(r io.Reader) (format.Reader, error) { return format.NewTFJS(m, r, lim) }
}
