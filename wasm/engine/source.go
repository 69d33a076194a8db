package engine

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"

	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// OpenURL returns an Opener for one URL: fetch in the browser (devices_js.go), net/http natively.
// Tests may replace it.
var OpenURL = openURL

// maxJSONBytes bounds model.json and manifest.json: USE-lite's model.json is 0.2 MB.
const maxJSONBytes = 64 << 20

// Kind says which reader a model's files need.
type Kind string

const (
	KindFile Kind = "file" // safetensors or GGUF, sniffed by the loader
	KindTFJS Kind = "tfjs" // a TF.js model.json and its weight shards, read as one stream
)

// Spec is a model URL resolved into what the loader streams.
type Spec struct {
	URL     string
	Kind    Kind
	Sources []stream.Source
	// Reader is the loader's Options.Reader (nil: sniff safetensors or GGUF).
	Reader func(io.Reader) (format.Reader, error)
	// Notes say what was assumed (no manifest, so no sha256 check...).
	Notes []string
	// TFJS is a TF.js model's weights manifest (nil for other kinds): the tensor names, known
	// before any weight arrives, tell the model's architecture.
	TFJS format.TFJSManifest
}

// Resolve turns a model URL into sources. Every file a manifest or model.json names must lie
// inside the model's directory (stream.ConfinedURL: same origin, path under the directory of the
// URL given), else the model is refused with stream.ErrOutside before any of it is requested. It
// accepts:
//   - a model directory ("…/models/tiny/") or its manifest.json: every .safetensors/.gguf file
//     the manifest lists, with sizes and sha256 checked, or the TF.js model if it lists a
//     model.json;
//   - a TF.js model.json: its weight shards streamed back to back, each checked against the
//     size and sha256 the sibling manifest.json gives when the server has one;
//   - any other URL: one safetensors or GGUF file.
func Resolve(ctx context.Context, rawURL string) (*Spec, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("no model URL: %w", errs.ErrBadArgument)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("model URL %q: %w: %w", rawURL, errs.ErrBadArgument, err)
	}
	if strings.HasSuffix(u.Path, "/") {
		u.Path += "manifest.json"
	}
	base := path.Base(u.Path)
	switch {
	case base == "manifest.json":
		man, err := getManifest(ctx, u.String())
		if err != nil {
			return nil, err
		}
		return fromManifest(ctx, u, man)
	case strings.HasSuffix(base, ".json"):
		// A TF.js model.json; the sibling manifest, if any, gives shard sizes and hashes.
		man, err := getManifest(ctx, resolveRef(u, "manifest.json"))
		var notes []string
		if err != nil {
			man = nil
			notes = append(notes, "no manifest.json beside the model ("+err.Error()+")")
		}
		s, err := tfjsSpec(ctx, u, man)
		if s != nil {
			s.Notes = append(notes, s.Notes...)
		}
		return s, err
	case path.Ext(base) == "" && base != "":
		// "…/models/use-lite" written without its slash: a directory if it has a manifest.
		dir := *u
		dir.Path += "/manifest.json"
		if man, err := getManifest(ctx, dir.String()); err == nil {
			s, err := fromManifest(ctx, &dir, man)
			if s != nil {
				s.Notes = append(s.Notes, fmt.Sprintf("%s read as the directory %s/ (its manifest.json is there)", rawURL, rawURL))
			}
			return s, err
		}
		fallthrough
	default:
		return &Spec{URL: u.String(), Kind: KindFile, Sources: []stream.Source{{Name: base, Open: OpenURL(u.String())}},
			Notes: []string{"a single file without a manifest: no size or sha256 check, and not cached (nothing to key it by)"}}, nil
	}
}

func fromManifest(ctx context.Context, u *url.URL, man *stream.Manifest) (*Spec, error) {
	s := &Spec{URL: u.String(), Kind: KindFile}
	for _, f := range man.Files {
		if f.Name == "model.json" {
			mu, err := url.Parse(resolveRef(u, f.Name))
			if err != nil {
				return nil, err
			}
			return tfjsSpec(ctx, mu, man)
		}
	}
	for _, f := range man.Files {
		switch path.Ext(f.Name) {
		case ".safetensors", ".gguf":
			abs, _, err := stream.ConfinedURL(u, f.Name)
			if err != nil {
				return nil, err
			}
			src, err := stream.ManifestSource(man, f.Name, OpenURL(abs))
			if err != nil {
				return nil, err
			}
			s.Sources = append(s.Sources, src)
		}
	}
	if len(s.Sources) == 0 {
		return nil, fmt.Errorf("%s lists no .safetensors, .gguf or model.json file: %w", u, errs.ErrUnsupported)
	}
	return s, nil
}

// tfjsSpec reads model.json and streams its shards back to back as one source
// (stream.JoinSource), in the order format.NewTFJS reads them. man, if not nil, gives each
// shard's size and sha256: a broken shard then resumes mid-shard with Range, and each shard is
// checked as its last byte passes, so a bad one fails the load before the next is opened.
func tfjsSpec(ctx context.Context, u *url.URL, man *stream.Manifest) (*Spec, error) {
	body, err := get(ctx, u.String())
	if err != nil {
		return nil, err
	}
	m, err := format.ParseTFJSModel(strings.NewReader(string(body)), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	// Shard paths are relative to model.json, as TF.js resolves them; resolving (rather than
	// appending to a base) also cleans "./" prefixes before they reach the server, and a path
	// that leaves the model's directory ("../other/w.bin", "/w.bin", another host) is refused.
	shards, err := stream.TFJSShardsAt(m, u, man, OpenURL)
	if err != nil {
		return nil, err
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("%s: the weights manifest names no shard: %w", u, format.ErrCorrupt)
	}
	return &Spec{
		URL: u.String(), Kind: KindTFJS, Reader: stream.TFJSReader(m, nil), TFJS: m,
		Sources: []stream.Source{stream.JoinSource(path.Base(u.Path)+" shards", shards...)},
		Notes:   []string{shardNote(shards)},
	}, nil
}

// shardNote says how much of a TF.js model's shards the manifest let the loader check.
func shardNote(shards []stream.Shard) string {
	var sized, hashed int
	for _, s := range shards {
		if s.Size > 0 {
			sized++
		}
		if s.SHA256 != "" {
			hashed++
		}
	}
	n := len(shards)
	switch {
	case hashed == n && sized == n:
		return fmt.Sprintf("%d shards streamed back to back, each checked against manifest.json's size and sha256", n)
	case hashed == 0 && sized == 0:
		return fmt.Sprintf("%d shards streamed back to back, unchecked: no size or sha256 for them, and without a hash the model is not cached", n)
	}
	return fmt.Sprintf("%d shards streamed back to back: %d with a size, %d with a sha256 checked (the manifest lists the rest without); the model is cached only when every shard has a sha256", n, sized, hashed)
}

func getManifest(ctx context.Context, u string) (*stream.Manifest, error) {
	body, err := get(ctx, u)
	if err != nil {
		return nil, err
	}
	m, err := format.ParseManifest(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return m, nil
}

// get reads a small file whole.
func get(ctx context.Context, u string) ([]byte, error) {
	b, err := fetchSmall(ctx, u)
	if err != nil {
		if kept, ok := recallFile(ctx, u, err); ok {
			return kept, nil
		}
		return nil, err
	}
	rememberFile(ctx, u, b)
	return b, nil
}

func fetchSmall(ctx context.Context, u string) ([]byte, error) {
	rc, err := OpenURL(u)(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxJSONBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, errs.Mark(err, errs.ErrNetwork))
	}
	if len(b) > maxJSONBytes {
		return nil, fmt.Errorf("%s: over %d bytes: %w", u, maxJSONBytes, errs.ErrTooLarge)
	}
	return b, nil
}

func resolveRef(base *url.URL, name string) string {
	return base.ResolveReference(&url.URL{Path: name}).String()
}

// Get reads a small file (a JSON index, a manifest) whole, through the same opener as models.
func Get(ctx context.Context, u string) ([]byte, error) { return get(ctx, u) }
