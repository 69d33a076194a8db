// Package webnn is a thin typed binding over the browser's WebNN API (navigator.ml,
// https://www.w3.org/TR/webnn/): contexts, graph building, tensors, dispatch and
// opSupportLimits.
//
// It owns the crossing into WebNN and nothing else: no quantization layouts, no graph planning
// (that is wasm/backend/nn), no generic promise or typed-array chores (wasm/jsutil).
// Every promise is awaited with a timeout, because a browser whose WebNN is half-enabled can
// leave createContext or build pending forever; every thrown exception comes back as a Go
// error; every operand gets a label so a failed build names the node.
//
// The types here (DataType, Descriptor, Limits) are pure Go and test natively; the bindings
// themselves are js && wasm only.
package webnn
