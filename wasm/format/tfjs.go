package format

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// TFJSManifest is a TF.js graph or layers model's "weightsManifest": groups of shard files, each
// group's weights laid out back to back across its shards in manifest order.
type TFJSManifest []TFJSGroup

// TFJSGroup is one group of the manifest.
type TFJSGroup struct {
	Paths   []string     `json:"paths"`
	Weights []TFJSWeight `json:"weights"`
}

// TFJSWeight describes one weight of a group.
type TFJSWeight struct {
	Name         string            `json:"name"`
	Shape        []int64           `json:"shape"`
	DType        string            `json:"dtype"` // "float32", "int32", "bool"
	Quantization *TFJSQuantization `json:"quantization,omitempty"`
}

// TFJSQuantization is TF.js's quantization for download: uint8/uint16 store q with
// w = q·Scale + Min; float16 stores IEEE half.
type TFJSQuantization struct {
	DType         string  `json:"dtype"` // "uint8", "uint16", "float16"
	Scale         float64 `json:"scale"`
	Min           float64 `json:"min"`
	OriginalDType string  `json:"original_dtype,omitempty"`
}

// ParseTFJSModel reads a model.json (at most lim.MaxHeaderBytes) and returns its weights manifest.
func ParseTFJSModel(r io.Reader, lim *Limits) (TFJSManifest, error) {
	l := lim.withDefaults()
	b, err := io.ReadAll(io.LimitReader(r, l.MaxHeaderBytes+1))
	if err != nil {
		return nil, fmt.Errorf("format: tfjs: model.json: %w", err)
	}
	if int64(len(b)) > l.MaxHeaderBytes {
		return nil, fmt.Errorf("format: tfjs: model.json: %w: more than %d bytes", ErrLimit, l.MaxHeaderBytes)
	}
	var doc struct {
		WeightsManifest TFJSManifest `json:"weightsManifest"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("format: tfjs: model.json: %w: %v", ErrCorrupt, err)
	}
	if doc.WeightsManifest == nil {
		return nil, fmt.Errorf("format: tfjs: model.json: %w: no weightsManifest", ErrCorrupt)
	}
	return doc.WeightsManifest, nil
}

// TFJSReader reads the weights of a manifest from the concatenation of all its groups' shards, in
// manifest order. It implements Reader.
type TFJSReader struct {
	stream
	Manifest   TFJSManifest
	groupBytes []int64
}

var _ Reader = (*TFJSReader)(nil)

// NewTFJS validates the manifest and returns a reader of shards, the concatenation of every
// group's shard files in manifest order (the order TF.js's loader fetches them in).
func NewTFJS(m TFJSManifest, shards io.Reader, lim *Limits) (*TFJSReader, error) {
	l := lim.withDefaults()
	r := &TFJSReader{stream: stream{format: "tfjs", r: countingReader{r: shards}, size: l.StreamSize}, Manifest: m}
	var off int64
	n := 0
	for gi, g := range m {
		start := off
		for _, w := range g.Weights {
			if n++; n > l.MaxTensors {
				return nil, fmt.Errorf("format: tfjs: %w: more than %d weights", ErrLimit, l.MaxTensors)
			}
			info, err := tfjsInfo(w, &l)
			if err != nil {
				return nil, fmt.Errorf("format: tfjs: group %d weight %q at byte %d: %w", gi, w.Name, off, err)
			}
			info.Offset = off
			if off > (1<<62)-info.Size {
				return nil, fmt.Errorf("format: tfjs: group %d weight %q: %w: offsets overflow", gi, w.Name, ErrLimit)
			}
			off += info.Size
			r.infos = append(r.infos, info)
		}
		r.groupBytes = append(r.groupBytes, off-start)
	}
	if err := checkEnds(r.infos, r.size); err != nil {
		return nil, fmt.Errorf("format: tfjs: %w", err)
	}
	return r, nil
}

func tfjsInfo(w TFJSWeight, l *Limits) (TensorInfo, error) {
	info := TensorInfo{Name: w.Name}
	var stored DType
	switch w.DType {
	case "float32":
		stored = F32
	case "int32":
		stored = I32
	case "bool":
		stored = Bool
	default:
		return info, fmt.Errorf("%w: dtype %q", ErrUnsupported, w.DType)
	}
	if q := w.Quantization; q != nil {
		if stored == Bool {
			return info, fmt.Errorf("%w: quantized bool", ErrUnsupported)
		}
		switch q.DType {
		case "uint8", "uint16":
			stored = U8
			if q.DType == "uint16" {
				stored = U16
			}
			info.Affine = &Affine{Scale: q.Scale, Min: q.Min, Int: w.DType == "int32"}
		case "float16":
			if w.DType != "float32" {
				return info, fmt.Errorf("%w: float16 quantization of %s", ErrUnsupported, w.DType)
			}
			stored = F16
		default:
			return info, fmt.Errorf("%w: quantization dtype %q", ErrUnsupported, q.DType)
		}
	}
	shape, _, size, err := checkShape(w.Shape, stored, l)
	if err != nil {
		return info, err
	}
	info.DType, info.Shape, info.Size = stored, shape, size
	return info, nil
}

// TFJSModel is a TF.js model read from a directory: model.json plus its shard files.
type TFJSModel struct {
	*TFJSReader
	Dir   string
	files *fileChain
}

// OpenTFJSDir parses dir/model.json, checks that every shard exists with the size the manifest
// implies, and returns a reader that streams the shards one file at a time. Close it when done.
//
//	m, err := format.OpenTFJSDir(dir)
//	for {
//		t, err := m.Next()
//		if err == io.EOF { break }
//		w, err := t.Float32()
//	}
func OpenTFJSDir(dir string) (*TFJSModel, error) {
	f, err := os.Open(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("format: tfjs: %w", localErr("model.json", err))
	}
	m, err := ParseTFJSModel(f, nil)
	f.Close()
	if err != nil {
		return nil, err
	}
	chain := &fileChain{}
	r, err := NewTFJS(m, chain, nil)
	if err != nil {
		return nil, err
	}
	for gi, g := range m {
		var have int64
		for _, p := range g.Paths {
			// A manifest from elsewhere must not name files outside its directory.
			if !filepath.IsLocal(p) {
				return nil, fmt.Errorf("format: tfjs: group %d: %w: shard path %q leaves the model directory", gi, ErrCorrupt, p)
			}
			full := filepath.Join(dir, p)
			st, err := os.Stat(full)
			if err != nil {
				return nil, fmt.Errorf("format: tfjs: group %d: %w", gi, localErr(p, err))
			}
			have += st.Size()
			chain.paths = append(chain.paths, full)
		}
		if want := r.groupBytes[gi]; have != want {
			sentinel := ErrCorrupt
			if have < want {
				sentinel = ErrTruncated
			}
			return nil, fmt.Errorf("format: tfjs: group %d: %w: shards %v hold %d bytes, weights need %d", gi, sentinel, g.Paths, have, want)
		}
	}
	// The shards' sizes are now known to match: read each tensor into one exact allocation.
	r.size = r.r.off
	for _, n := range r.groupBytes {
		r.size += n
	}
	return &TFJSModel{TFJSReader: r, Dir: dir, files: chain}, nil
}

// Close closes the shard file being read, if any.
func (m *TFJSModel) Close() error { return m.files.Close() }

// fileChain reads files one after another, opening each only when the previous is exhausted, so a
// manifest with many shards never holds many descriptors.
type fileChain struct {
	paths []string
	cur   *os.File
}

func (c *fileChain) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			if len(c.paths) == 0 {
				return 0, io.EOF
			}
			f, err := os.Open(c.paths[0])
			if err != nil {
				return 0, localErr(filepath.Base(c.paths[0]), err)
			}
			c.cur, c.paths = f, c.paths[1:]
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur.Close()
			c.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// localErr names a file of a model directory by its name in the model (never the absolute
// path, which says where the page or the server keeps its files) and gives err its kind.
func localErr(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (%v)", name, errs.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", name, errs.Mark(err, errs.ErrNotFound))
}

func (c *fileChain) Close() error {
	if c.cur == nil {
		return nil
	}
	err := c.cur.Close()
	c.cur = nil
	return err
}
