// Package nn is the WebNN backend: each weight becomes constants of a WebNN graph
// (dequantizeLinear feeding gemm), compiled once per weight and batch-size class and run with
// reusable MLTensors.
//
// What it owns: choosing how a quantized tensor enters the graph from opSupportLimits (Plan, pure
// Go, see layout.go), building and caching the graphs, and moving activations in and out. What
// it must not do: quantize (wasm/quant), talk to WebNN other than through wasm/webnn, or loosen
// the conformance bound.
//
// # Paths
//
// int4 constants for 2- and 4-bit weights where dequantizeLinear accepts int4, int8/uint8 for
// 8-bit (and for 2/4-bit where int4 is rejected), float32 constants dequantized in Go only where
// no integer type is accepted. Unsigned (asymmetric) codes are shifted into the signed type when
// the unsigned one is rejected: (q−2^(b−1)) − (z−2^(b−1)) = q − z exactly. f16 scales are widened
// to f32 in Go (exact) so dequantizeLinear outputs float32 and the product accumulates in float32,
// the conformance suite's float32 bound applies unchanged. Every weight reports its Path and a
// note saying why.
//
// # Why graphs are shaped as they are
//
// On Chromium's TFLite CPU backend nothing is constant-folded: dequantizeLinear runs on every
// dispatch, so a quantized matmul costs the dequantize (16M weights written as float32) plus the
// float32 product. See bench_js_test.go and the package README numbers for the variants measured.
package nn
