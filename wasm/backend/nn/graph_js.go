//go:build js && wasm

package nn

import (
	"fmt"
	"syscall/js"

	"github.com/nibble-ml/nibble/wasm/jsutil"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

var (
	float32Array = js.Global().Get("Float32Array")
	uint8Array   = js.Global().Get("Uint8Array")
)

// matmulGraph is one compiled product for one weight and batch-size class, with its tensors and the
// typed arrays that stage activations, all reused across calls.
type matmulGraph struct {
	g          *webnn.Graph
	x, y       *webnn.Tensor
	xArr, yArr js.Value
	rows, k    int // class rows; columns of x as the graph takes them (K, or KPad when padded in Go)
	kIn        int // the caller's K
}

func (g *matmulGraph) destroy() {
	g.g.Destroy()
	g.x.Destroy()
	g.y.Destroy()
}

func (g *matmulGraph) run(b *Backend, dst, x []float32, m int) error {
	c := b.ctx
	if g.k == g.kIn {
		jsutil.CopyFloat32sToJS(g.xArr, x)
	} else { // zero-padded rows; the padding columns were zeroed when the array was made
		for i := 0; i < m; i++ {
			row := g.xArr.Call("subarray", i*g.k, i*g.k+g.kIn)
			jsutil.CopyFloat32sToJS(row, x[i*g.kIn:(i+1)*g.kIn])
		}
	}
	// Rows m…class-1 keep whatever an earlier call left: rows are independent in a product, and
	// their outputs are never copied out.
	if err := c.WriteTensor(g.x, g.xArr); err != nil {
		return err
	}
	if err := b.dispatch(g.g, map[string]*webnn.Tensor{"x": g.x}, map[string]*webnn.Tensor{"y": g.y}); err != nil {
		return err
	}
	if err := c.ReadTensorInto(g.y, g.yArr); err != nil {
		return err
	}
	jsutil.CopyFloat32sToGo(dst, g.yArr)
	return nil
}

func (w *Weight) build(rows int) (*matmulGraph, error) {
	b, l := w.b, &w.layout
	label := fmt.Sprintf("%s m%d %s %s", w.name, rows, l.Path, b.graph)
	bd := b.ctx.NewBuilder()
	kp := l.KPad()
	g := &matmulGraph{rows: rows, k: l.K, kIn: l.K}
	if kp > l.K && !b.pad {
		g.k = kp
	}
	x := bd.Input("x", webnn.Descriptor{DataType: webnn.Float32, Shape: []int{rows, g.k}})
	if kp > g.k {
		x = bd.Pad("x-pad", x, []int{0, 0}, []int{0, kp - g.k})
	}
	wt := w.weightOperand(bd, "w")
	var y *webnn.Operand
	switch b.graph.Product {
	case ProductMatmul:
		y = bd.Matmul("y", x, bd.Transpose("wT", wt, nil))
	default:
		y = bd.Gemm("y", x, wt, webnn.GemmOptions{BTranspose: true})
	}
	gr, err := b.build(bd, label, map[string]*webnn.Operand{"y": y})
	if err != nil {
		return nil, fmt.Errorf("webnn backend: %w", err)
	}
	g.g = gr
	if g.x, err = b.ctx.CreateTensor(label+" x", webnn.Descriptor{DataType: webnn.Float32, Shape: []int{rows, g.k}}, webnn.TensorUsage{Writable: true}); err == nil {
		g.y, err = b.ctx.CreateTensor(label+" y", webnn.Descriptor{DataType: webnn.Float32, Shape: []int{rows, l.N}}, webnn.TensorUsage{Readable: true})
	}
	if err != nil {
		g.destroy()
		return nil, err
	}
	g.xArr = float32Array.New(rows * g.k)
	g.yArr = float32Array.New(rows * l.N)
	return g, nil
}

// weightOperand is the [N, KPad] float32 weight as graph operations on the constants; label
// prefixes the nodes' labels.
func (w *Weight) weightOperand(bd *webnn.Builder, label string) *webnn.Operand {
	l, shape := &w.layout, w.b.graph
	kp := l.KPad()
	switch l.Path {
	case PathF32:
		return bd.Constant(label, l.Codes, w.codes)
	case PathF16Cast:
		return bd.Cast(label, bd.Constant(label+"-f16", l.Codes, w.codes), webnn.Float32)
	}
	codes, scales, zeros := l.Codes, l.Scales, l.Zeros
	if shape.Rank2 { // same bytes, block-wise broadcast over [N, KPad] against [N, G]
		codes = webnn.Descriptor{DataType: codes.DataType, Shape: []int{l.N, kp}}
		scales = webnn.Descriptor{DataType: scales.DataType, Shape: []int{l.N, l.G}}
		zeros = webnn.Descriptor{DataType: zeros.DataType, Shape: []int{l.N, l.G}}
	}
	q := bd.Constant(label+"-codes", codes, w.codes)
	s := bd.Constant(label+"-scales", scales, w.scales)
	z := bd.Constant(label+"-zeros", zeros, w.zeros)
	var deq *webnn.Operand
	if shape.Dequant == DequantCast && w.b.limits.Accepts("cast", "input", codes.DataType, len(codes.Shape)) {
		qf := bd.Cast(label+"-codes-f32", q, webnn.Float32)
		if w.format.Scheme == quant.Asymmetric { // subtract the zero point first, as the reference does
			qf = bd.Sub(label+"-centered", qf, bd.Cast(label+"-zeros-f32", z, webnn.Float32))
		}
		deq = bd.Mul(label+"-dequant", qf, s)
	} else {
		deq = bd.DequantizeLinear(label+"-dequant", q, s, z)
	}
	if shape.Rank2 {
		return deq
	}
	return bd.Reshape(label, deq, []int{l.N, kp})
}
