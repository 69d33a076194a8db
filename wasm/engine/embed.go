package engine

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/model/uselite"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// Architectures the engine runs whole (Model.Arch).
const ArchUSELite = "use-lite"

// useLite is what the engine adds to a load of Universal Sentence Encoder Lite: the layout of
// its kernels, the constants its graph is built from, and the encoder once they are in.
type useLite struct {
	spec   *Spec
	shapes map[string][]int
	names  []string

	mu     sync.Mutex
	values map[string][]float32 // config constants, kept as they pass the loader
	enc    *uselite.Encoder

	placement placement // a hybrid load's stages (hybrid.go)
}

// detectArch recognises a model from its tensor names, before any weight arrives.
func detectArch(spec *Spec) *useLite {
	if spec.Kind != KindTFJS {
		return nil
	}
	a := &useLite{spec: spec, shapes: map[string][]int{}, values: map[string][]float32{}}
	for _, g := range spec.TFJS {
		for _, w := range g.Weights {
			a.names = append(a.names, w.Name)
			shape := make([]int, len(w.Shape))
			for i, d := range w.Shape {
				shape[i] = int(d)
			}
			a.shapes[w.Name] = shape
		}
	}
	if !uselite.Detect(a.names) {
		return nil
	}
	return a
}

// wrap adapts a load to the architecture. TF.js stores USE-lite's kernels [in, out], but
// nibble's kernels want [out][in] rows so that quantization groups run along the input: the
// loader keeps those tensors float32 (one tensor at a time, never the model), and the uploader
// transposes each and quantizes it to the format plan gives the transposed shape. Constants
// the graph builder reads as numbers are copied as they pass.
func (a *useLite) wrap(plan stream.Plan, up stream.Uploader) (stream.Plan, stream.Uploader) {
	streamPlan := func(t *format.TensorInfo) quant.Format {
		if uselite.IsKernel(t.Name) {
			return stream.F32
		}
		return plan(t)
	}
	return streamPlan, &arrangeUploader{a: a, plan: plan, up: up}
}

// heldLayout adapts a load outside Model (a reference, a native copy) so its tensors come out
// in the layout a loaded model holds them: the architecture's wrap where one is recognised.
func heldLayout(spec *Spec, plan stream.Plan, up stream.Uploader) (stream.Plan, stream.Uploader) {
	if a := detectArch(spec); a != nil {
		return a.wrap(plan, up)
	}
	return plan, up
}

type arrangeUploader struct {
	a    *useLite
	plan stream.Plan // for the arranged shape
	up   stream.Uploader
}

func (u *arrangeUploader) Upload(t *quant.Tensor) (backend.Weight, error) {
	if uselite.IsConfig(t.Name) {
		u.a.mu.Lock()
		u.a.values[t.Name] = quant.Dequantize(t)
		u.a.mu.Unlock()
	}
	if !uselite.IsKernel(t.Name) || t.Format.Bits != 32 {
		return u.up.Upload(t)
	}
	n, k, rows := uselite.Arrange(t.Name, []int{t.N, t.K}, quant.Dequantize(t))
	info := &format.TensorInfo{Name: t.Name, DType: format.F32, Shape: []int{n, k}}
	q, err := quant.Quantize(t.Name, rows, n, k, u.plan(info), quant.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name, err)
	}
	return u.up.Upload(q)
}

// encoder builds the Encoder once its constants are resident and the vocabulary is fetched.
func (a *useLite) encoder(ctx context.Context, m *Model) (*uselite.Encoder, error) {
	a.mu.Lock()
	enc := a.enc
	a.mu.Unlock()
	if enc != nil {
		return enc, nil
	}
	comp, ok := m.Backend.(backend.Compiler)
	if !ok {
		return nil, fmt.Errorf("%w: the %s backend does not run whole graphs", ErrUnsupported, m.Backend.Name())
	}
	layers := uselite.LayerCount(a.names)
	if err := m.load.Wait(ctx, uselite.ConfigNames(layers)...); err != nil {
		return nil, fmt.Errorf("use-lite: waiting for the model's constants: %w", err)
	}
	base, err := url.Parse(a.spec.URL)
	if err != nil {
		return nil, err
	}
	vocabURL, _, err := stream.ConfinedURL(base, "vocab.json")
	if err != nil {
		return nil, err
	}
	if c := m.opt.Cache; c != nil && !*c {
		ctx = withoutFileCache(ctx)
	}
	vocab, err := get(ctx, vocabURL)
	if err != nil {
		return nil, fmt.Errorf("use-lite vocabulary (vocab.json beside model.json): %w", err)
	}
	tok, err := uselite.NewTokenizer(vocab)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", vocabURL, ErrFormat, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg, err := uselite.ReadConfig(
		func(n string) ([]int, bool) { s, ok := a.shapes[n]; return s, ok },
		func(n string) ([]float32, bool) { v, ok := a.values[n]; return v, ok }, layers)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if a.enc == nil {
		a.enc = &uselite.Encoder{Config: cfg, Tokenizer: tok, Backend: comp, Weights: m.load, Int8Activations: m.opt.Int8Activations}
	}
	return a.enc, nil
}

// Arch names the architecture the engine recognised ("" if none: the model's weights load and
// multiply, but Embed is not available).
func (m *Model) Arch() string {
	if m.arch != nil {
		return ArchUSELite
	}
	if m.llama != nil {
		return ArchLlama
	}
	return ""
}

// Embed returns one unit-length 512-float embedding per text, in order. Texts longer than the
// model's limit (128 tokens for USE-lite) are clipped, as the model itself does. Called while
// the model is still streaming, it runs the embedding and each layer as soon as their weights
// are resident (FirstOutput then says when the first stage ran).
func (m *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if m.arch == nil {
		return nil, fmt.Errorf("%w: %s is not a model nibble can embed with (it runs Universal Sentence Encoder Lite, TF.js model.json); its weights can still be multiplied", ErrModel, m.Spec.URL)
	}
	if len(texts) == 0 {
		return nil, fmt.Errorf("%w: embed needs at least one text", ErrBadArgument)
	}
	enc, err := m.arch.ready(ctx, m)
	if err != nil {
		return nil, m.kinded(fmt.Errorf("embed: %w", err))
	}
	var out [][]float32
	select {
	case <-m.load.Done():
		if err := m.load.Err(); err != nil {
			return nil, m.kinded(fmt.Errorf("embed: %w", err))
		}
		out, err = enc.Embed(ctx, texts)
	default:
		out, err = enc.EmbedWhileLoading(ctx, texts, m.load.Wait, m.markFirstOutput)
	}
	if err != nil {
		return nil, m.kinded(fmt.Errorf("embed on %s: %w", m.Backend.Name(), err))
	}
	m.markFirstOutput()
	return out, nil
}

// kinded gives the encoder's input errors the engine's kind for them.
func (m *Model) kinded(err error) error {
	if ErrorKind(err) == nil && errors.Is(err, uselite.ErrInput) {
		return fmt.Errorf("%w: %w", ErrBadArgument, err)
	}
	return err
}

func (m *Model) markFirstOutput() {
	m.mu.Lock()
	if m.firstOutput == 0 {
		m.firstOutput = time.Since(m.started)
	}
	m.mu.Unlock()
}

// FirstOutput is how long after Load the first output (an embedding stage) was computed; 0 if
// none has been yet. Next to the load time it shows how much of the download inference overlapped.
func (m *Model) FirstOutput() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.firstOutput
}
