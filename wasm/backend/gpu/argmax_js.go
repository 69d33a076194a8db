//go:build js && wasm

package gpu

import (
	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// argMax queues ArgMax node i: one workgroup per row of x's last dimension (ops_argmax.wgsl),
// int32 indices into n's storage.
func (c *compiler) argMax(what string, i int, n *graph.Node) error {
	p := c.p
	xs := c.shape(n, 0)
	D := xs[len(xs)-1]
	rows := xs.Size() / D
	k := shaders.OpKey{Family: shaders.OpArgMax, Variant: "last", WG: rowWorkgroup(D, p.b.caps.Software)}
	return c.dispatch(what, k, []uint32{uint32(rows), uint32(D), 0, 0}, rows, p.bind(1, n.Inputs[0]), p.bind(2, graph.Value(i)))
}
