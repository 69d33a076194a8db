package uselite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// MaxBatch is the most sentences one forward pass takes; longer lists run in several passes.
const MaxBatch = 32

// Buckets: a batch is padded to the next of these sizes and lengths, so a backend compiles a few
// graphs and reuses them (a WebNN graph or a set of WGSL pipelines per bucket).
var (
	BatchBuckets  = []int{1, 2, 4, 8, 16, 32}
	LengthBuckets = []int{8, 16, 32, 64, 128}
)

// ErrInput is wrapped by errors about what the caller passed (an empty list).
var ErrInput = errors.New("uselite: bad input")

// Encoder turns sentences into embeddings on a backend that holds the model's weights.
// It is safe for concurrent use; passes run one at a time.
type Encoder struct {
	Config    *Config
	Tokenizer *Tokenizer
	Backend   backend.Compiler
	Weights   backend.Weights
	// Int8Activations runs the Linears with int8 activations (static W8A8, calibrated once on
	// CalibrationSentences) where the backend can (backend.CalibratedCompiler: WebNN, whose
	// TFLite backend then runs fused int8 kernels); other backends ignore it. Faster there, at
	// the cost of the activations' int8 rounding.
	Int8Activations bool

	mu     sync.Mutex
	cal    *backend.Calibration
	whole  map[[2]int]backend.Program
	staged map[[2]int][]backend.Program

	placement []Target                     // per stage (SetPlacement); nil: one backend
	placed    map[[2]int][]backend.Program // per bucket, one program per segment
	crossings Crossings
}

// Target is a backend a stage of the encoder may run on, with the weights it holds.
type Target struct {
	Name    string
	Backend backend.Compiler
	Weights backend.Weights
}

// Crossings count the activations that passed from one backend to another.
type Crossings struct {
	Count int   `json:"count"` // stage boundaries crossed, over every pass run
	Bytes int64 `json:"bytes"` // the activations' bytes that crossed, through host memory
}

// Batch is a bucket of tokenized sentences, padded.
type Batch struct {
	B, T  int
	IDs   []int32   // [B, T], −1 for padding
	Mask  []float32 // [B, T]
	Count int       // real sentences (the first Count rows)
}

// Tokenize tokenizes texts and pads them into a bucket. Tokens past Config.MaxLength are
// dropped, as the model's own ClipToMaxLength does.
func (e *Encoder) Tokenize(texts []string) Batch { return e.pad(e.encode(texts)) }

// encode tokenizes each text, clipped to Config.MaxLength.
func (e *Encoder) encode(texts []string) [][]int32 {
	ids := make([][]int32, len(texts))
	for i, s := range texts {
		t := e.Tokenizer.Encode(s)
		if len(t) > e.Config.MaxLength {
			t = t[:e.Config.MaxLength]
		}
		ids[i] = t
	}
	return ids
}

// pad lays token lists out in a bucket, −1 and mask 0 past each list's end.
func (e *Encoder) pad(ids [][]int32) Batch {
	longest := 1
	for _, t := range ids {
		longest = max(longest, len(t))
	}
	b := Batch{B: bucket(BatchBuckets, len(ids)), T: bucket(LengthBuckets, longest), Count: len(ids)}
	if b.T < longest { // MaxLength above the last bucket
		b.T = longest
	}
	b.IDs = make([]int32, b.B*b.T)
	b.Mask = make([]float32, b.B*b.T)
	for i := range b.IDs {
		b.IDs[i] = -1
	}
	for i, t := range ids {
		for j, id := range t {
			b.IDs[i*b.T+j] = id
			b.Mask[i*b.T+j] = 1
		}
	}
	return b
}

func bucket(sizes []int, n int) int {
	for _, s := range sizes {
		if s >= n {
			return s
		}
	}
	return n
}

// Embed returns one unit-length vector of Config.Out floats per text, in order.
func (e *Encoder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return e.run(ctx, texts, nil)
}

// EmbedWhileLoading runs the encoder stage by stage, waiting (wait) for each stage's weights
// before compiling it: the embedding and layer 0 run while later layers still stream.
// firstOutput, if not nil, is called when the first stage has produced its output.
func (e *Encoder) EmbedWhileLoading(ctx context.Context, texts []string, wait func(ctx context.Context, names ...string) error, firstOutput func()) ([][]float32, error) {
	return e.run(ctx, texts, &staging{wait: wait, first: firstOutput})
}

type staging struct {
	wait  func(ctx context.Context, names ...string) error
	first func()
}

func (e *Encoder) run(ctx context.Context, texts []string, st *staging) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, fmt.Errorf("%w: no texts to embed", ErrInput)
	}
	// Each pass takes sentences of one length bucket, so one long text does not pad every other
	// sentence of the list to its length (the cost grows with B·T).
	ids := e.encode(texts)
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(ids[a]) - len(ids[b]) })
	lengthBucket := func(i int) int { return bucket(LengthBuckets, max(1, len(ids[i]))) }
	out := make([][]float32, len(texts))
	for lo := 0; lo < len(order); {
		// A pass ends at MaxBatch sentences or where the length bucket changes.
		hi := lo + 1
		for hi < len(order) && hi-lo < MaxBatch && lengthBucket(order[hi]) == lengthBucket(order[lo]) {
			hi++
		}
		idx := order[lo:hi]
		lo = hi
		part := make([][]int32, len(idx))
		for j, i := range idx {
			part[j] = ids[i]
		}
		b := e.pad(part)
		var emb []float32
		var err error
		switch {
		case e.placement != nil:
			emb, err = e.runPlaced(ctx, b)
		case st != nil:
			emb, err = e.runStaged(ctx, b, st)
		default:
			emb, err = e.runWhole(ctx, b)
		}
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = slices.Clone(emb[j*e.Config.Out : (j+1)*e.Config.Out])
		}
	}
	return out, nil
}

func (e *Encoder) inputs(b Batch) []graph.Tensor {
	return []graph.Tensor{graph.I32Tensor(b.IDs, b.B, b.T), graph.F32Tensor(b.Mask, b.B, b.T)}
}

func (e *Encoder) runWhole(ctx context.Context, b Batch) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := [2]int{b.B, b.T}
	p, ok := e.whole[key]
	if !ok {
		g, err := e.Config.Build(b.B, b.T)
		if err != nil {
			return nil, err
		}
		if p, err = e.compile(ctx, g); err != nil {
			return nil, fmt.Errorf("use-lite: compile %s: %w", g.Name, err)
		}
		if e.whole == nil {
			e.whole = map[[2]int]backend.Program{}
		}
		e.whole[key] = p
	}
	out, err := p.Run(ctx, e.inputs(b))
	if err != nil {
		return nil, fmt.Errorf("use-lite: run %d×%d: %w", b.B, b.T, err)
	}
	return out[0].F32, nil
}

func (e *Encoder) runStaged(ctx context.Context, b Batch, st *staging) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := [2]int{b.B, b.T}
	stages, err := e.Config.Stages(b.B, b.T)
	if err != nil {
		return nil, err
	}
	progs := e.staged[key]
	batchIn := e.inputs(b)
	ids, mask := batchIn[0], batchIn[1]
	var x graph.Tensor
	for i, s := range stages {
		if err := st.wait(ctx, s.Weights...); err != nil {
			return nil, fmt.Errorf("use-lite: waiting for %s's weights: %w", s.Graph.Name, err)
		}
		if i >= len(progs) {
			p, err := e.Backend.Compile(s.Graph, e.Weights)
			if err != nil {
				return nil, fmt.Errorf("use-lite: compile %s: %w", s.Graph.Name, err)
			}
			progs = append(progs, p)
			if e.staged == nil {
				e.staged = map[[2]int][]backend.Program{}
			}
			e.staged[key] = progs
		}
		in := []graph.Tensor{x, mask}
		if i == 0 {
			in = []graph.Tensor{ids}
		}
		out, err := progs[i].Run(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("use-lite: run %s: %w", s.Graph.Name, err)
		}
		x = out[0]
		if i == 0 && st.first != nil {
			st.first()
		}
	}
	return x.F32, nil
}

// compile builds g exactly, or with calibrated int8 activations when asked and possible.
func (e *Encoder) compile(ctx context.Context, g *graph.Graph) (backend.Program, error) {
	cc, ok := e.Backend.(backend.CalibratedCompiler)
	if !e.Int8Activations || !ok {
		return e.Backend.Compile(g, e.Weights)
	}
	if e.cal == nil {
		cb := e.Tokenize(CalibrationSentences)
		cg, err := e.Config.Build(cb.B, cb.T)
		if err != nil {
			return nil, err
		}
		// The exact graph on the same backend is the reference: its Linears' inputs and
		// outputs are what the int8 graph will see.
		if e.cal, err = backend.Calibrate(ctx, e.Backend, cg, e.Weights, [][]graph.Tensor{e.inputs(cb)}); err != nil {
			return nil, fmt.Errorf("calibrating int8 activations: %w", err)
		}
	}
	return cc.CompileCalibrated(g, e.Weights, e.cal)
}

// Release frees every compiled program.
func (e *Encoder) Release() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, p := range e.whole {
		errs = append(errs, p.Release())
	}
	for _, ps := range e.staged {
		for _, p := range ps {
			errs = append(errs, p.Release())
		}
	}
	errs = append(errs, e.releasePlaced())
	e.whole, e.staged = nil, nil
	return errors.Join(errs...)
}

// Arrange turns a tensor as the file stores it (shape, row-major float32) into the [n][k] rows
// the graph reads: weight matrices stored [in, out] (or [1, 1, in, out]) are transposed to
// [out][in]; everything else keeps its layout, as [1][size] for vectors and scalars.
func Arrange(name string, shape []int, data []float32) (n, k int, rows []float32) {
	size := len(data)
	if !IsKernel(name) || len(shape) < 2 {
		if len(shape) == 2 {
			return shape[0], shape[1], data
		}
		return 1, size, data
	}
	out := shape[len(shape)-1]
	in := size / out
	rows = make([]float32, size)
	for i := 0; i < in; i++ {
		for o := 0; o < out; o++ {
			rows[o*in+i] = data[i*out+o]
		}
	}
	return out, in, rows
}
