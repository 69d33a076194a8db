//go:build js && wasm

package nn

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall/js"
	"unsafe"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

var (
	_          backend.Compiler           = (*Backend)(nil)
	_          backend.CalibratedCompiler = (*Backend)(nil)
	int32Array                            = js.Global().Get("Int32Array")
)

// Compile lowers the whole of g to one MLGraph (see DECOMPOSITIONS in doc.go) in the exact
// mode: float32 everywhere, quantized weights through dequantizeLinear. It builds once; each
// Run is one dispatch.
func (b *Backend) Compile(g *graph.Graph, ws backend.Weights) (backend.Program, error) {
	return b.CompileWith(g, ws, CompileOptions{})
}

// CompileCalibrated is CompileWith with the calibration and the default Int4 policy: the fused
// QDQ form for every calibrated Linear with an 8-bit weight, and with a 2- or 4-bit one widened
// to int8 (Int4Widen).
func (b *Backend) CompileCalibrated(g *graph.Graph, ws backend.Weights, c *backend.Calibration) (backend.Program, error) {
	return b.CompileWith(g, ws, CompileOptions{Calibration: c})
}

// CompileWith lowers g as opt says.
func (b *Backend) CompileWith(g *graph.Graph, ws backend.Weights, opt CompileOptions) (backend.Program, error) {
	bound, err := backend.BindWeights(g, ws)
	if err != nil {
		return nil, err
	}
	weights := map[string]*Weight{}
	for name, bw := range bound {
		w, ok := bw.(*Weight)
		if !ok || w.b != b {
			return nil, fmt.Errorf("webnn compile %q: weight %q was not uploaded to this backend", g.Name, name)
		}
		w.mu.Lock()
		released := w.graphs == nil
		w.mu.Unlock()
		if released {
			return nil, fmt.Errorf("webnn compile %q: weight %q was released", g.Name, name)
		}
		weights[name] = w
	}
	states, err := backend.BindStates(g, ws)
	if err != nil {
		return nil, fmt.Errorf("webnn compile %q: %w", g.Name, err)
	}
	l := newLowering(b, g, weights, opt)
	l.states = states
	outs, err := l.lower()
	if err != nil {
		return nil, fmt.Errorf("webnn compile %q: %w", g.Name, err)
	}
	mg, err := b.build(l.bd, g.Name, outs)
	if err != nil {
		return nil, fmt.Errorf("webnn compile %q: %w", g.Name, err)
	}
	p := &program{b: b, g: g, mg: mg, notes: l.notes, states: l.stateIO}
	for _, v := range g.Inputs {
		n := g.Node(v)
		io := &ioTensor{name: n.Attr.Name, node: v, used: l.used[v]}
		if io.used {
			if err = p.tensor(io, n, webnn.TensorUsage{Writable: true}); err != nil {
				break
			}
		}
		p.ins = append(p.ins, io)
	}
	for i, v := range g.Outputs {
		if err != nil {
			break
		}
		io := &ioTensor{name: outputName(i), node: v, used: true}
		err = p.tensor(io, g.Node(v), webnn.TensorUsage{Readable: true})
		p.outs = append(p.outs, io)
	}
	if err != nil {
		p.Release()
		return nil, fmt.Errorf("webnn compile %q: %w", g.Name, err)
	}
	p.embedded = l.embedded
	for name, n := range l.embedded {
		w := weights[name]
		w.mu.Lock()
		w.inPrograms += n
		w.mu.Unlock()
		p.weights = append(p.weights, w)
	}
	return p, nil
}

func outputName(i int) string { return fmt.Sprintf("out%d", i) }

// program is one compiled graph with an MLTensor and a staging typed array per input and
// output, reused by every Run.
type program struct {
	b        *Backend
	g        *graph.Graph
	mg       *webnn.Graph
	ins      []*ioTensor // in g.Inputs order; unused inputs (read by no output) have no tensor
	outs     []*ioTensor
	weights  []*Weight
	embedded map[string]int64 // constant bytes of each weight inside mg
	notes    []string
	states   []*stateIO // one per StateWrite: its state's tensors, swapped after each dispatch

	mu sync.Mutex
}

type ioTensor struct {
	name  string
	node  graph.Value
	used  bool
	dtype graph.DType
	t     *webnn.Tensor
	arr   js.Value // Float32Array or Int32Array of the tensor's length
}

func (p *program) tensor(io *ioTensor, n *graph.Node, u webnn.TensorUsage) error {
	d := webnn.Descriptor{DataType: dataType(n.DType), Shape: n.Shape}
	t, err := p.b.ctx.CreateTensor(p.g.Name+" "+io.name, d, u)
	if err != nil {
		return err
	}
	io.t, io.dtype = t, n.DType
	if n.DType == graph.Int32 {
		io.arr = int32Array.New(n.Shape.Size())
	} else {
		io.arr = float32Array.New(n.Shape.Size())
	}
	return nil
}

func dataType(d graph.DType) webnn.DataType {
	if d == graph.Int32 {
		return webnn.Int32
	}
	return webnn.Float32
}

// Notes say which parts of the graph did not take the path asked for, and why (a Linear left
// out of the QDQ form, a weight requantized). Callers holding a backend.Program reach it as
// interface{ Notes() []string }.
func (p *program) Notes() []string { return slices.Clone(p.notes) }

// Run writes the inputs, dispatches the graph once and reads every output.
func (p *program) Run(ctx context.Context, in []graph.Tensor) ([]graph.Tensor, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mg == nil {
		return nil, fmt.Errorf("webnn run %q: program released", p.g.Name)
	}
	if err := p.g.CheckInputs(in); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := p.b.ctx
	inputs := map[string]*webnn.Tensor{}
	for i, io := range p.ins {
		if !io.used {
			continue
		}
		if io.dtype == graph.Int32 {
			jsutil.CopyBytesToJS(io.arr, int32Bytes(in[i].I32))
		} else {
			jsutil.CopyFloat32sToJS(io.arr, in[i].F32)
		}
		if err := c.WriteTensor(io.t, io.arr); err != nil {
			return nil, fmt.Errorf("webnn run %q: %w", p.g.Name, err)
		}
		inputs[io.name] = io.t
	}
	outputs := map[string]*webnn.Tensor{}
	for _, io := range p.outs {
		outputs[io.name] = io.t
	}
	if err := p.stateTensors(in, inputs, outputs); err != nil {
		return nil, fmt.Errorf("webnn run %q: %w", p.g.Name, err)
	}
	if err := p.b.dispatch(p.mg, inputs, outputs); err != nil {
		return nil, fmt.Errorf("webnn run %q: %w", p.g.Name, err)
	}
	p.swapStates()
	out := make([]graph.Tensor, len(p.outs))
	for i, io := range p.outs {
		if err := c.ReadTensorInto(io.t, io.arr); err != nil {
			return nil, fmt.Errorf("webnn run %q: %w", p.g.Name, err)
		}
		n := p.g.Node(io.node)
		out[i].Shape = slices.Clone(n.Shape)
		if io.dtype == graph.Int32 {
			out[i].I32 = make([]int32, n.Shape.Size())
			jsutil.CopyBytesToGo(int32Bytes(out[i].I32), io.arr)
		} else {
			out[i].F32 = make([]float32, n.Shape.Size())
			jsutil.CopyFloat32sToGo(out[i].F32, io.arr)
		}
	}
	return out, nil
}

// int32Bytes views v as bytes; wasm and typed arrays are little-endian.
func int32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func (p *program) Release() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mg == nil {
		return nil
	}
	p.mg.Destroy()
	p.mg = nil
	for _, io := range append(p.ins, p.outs...) {
		if io.t != nil {
			io.t.Destroy()
		}
	}
	for _, w := range p.weights {
		w.mu.Lock()
		w.inPrograms -= p.embedded[w.name]
		w.mu.Unlock()
	}
	p.weights = nil
	return nil
}
