// Package nn is the WebNN backend. It runs single matmuls (each weight becomes constants of a
// WebNN graph, dequantizeLinear feeding gemm, compiled once per weight and batch-size class) and
// whole networks: Compile lowers a graph.Graph to one MLGraph, built once, and each Run writes
// the inputs, dispatches once and reads the outputs.
//
// What it owns: choosing how a quantized tensor enters the graph from opSupportLimits (Plan, pure
// Go, see layout.go), lowering graph ops to WebNN ops (lower_js.go), the QDQ form of Linears
// (qdq.go), building and caching the graphs, and moving activations in and out. What it must not
// do: quantize (wasm/quant; QDQ requantizes through it), talk to WebNN other than through
// wasm/webnn, or loosen the conformance bound of the exact mode.
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
// # Weights outside graphs
//
// WebNN copies every constant into each graph that reads it (Chromium 153 has no shared
// constant tensors), so a weight's bytes stay in JS and each graph gets its own copy. Weight.Rows
// reads a few rows back, dequantized, without any graph (the llama decoder's token lookup keeps
// a 128256-row table out of its graphs that way); Options.Lazy skips the single-matmul graph
// Upload otherwise builds per weight, which a user of whole graphs never runs.
//
// # Why graphs are shaped as they are
//
// On Chromium's TFLite CPU backend nothing is constant-folded: dequantizeLinear runs on every
// dispatch, so a quantized matmul costs the dequantize (16M weights written as float32) plus the
// float32 product. See bench_js_test.go and the package README numbers for the variants measured.
//
// # DECOMPOSITIONS
//
// Each graph op is the WebNN op of the same meaning where one exists and opSupportLimits accepts
// it; otherwise, or where WebNN's op means something else, it is rewritten as below. Every
// rewrite computes the op's definition in wasm/graph (the cpu interpreter is the oracle, and
// TestGraphConformance holds the exact mode to the suite's float32 bound).
//
//   - Gather(table[V, D], ids): WebNN leaves out-of-range indices to the implementation and reads
//     negative ones from the end, so ids are flattened to [n], valid = (id ≥ 0) ∧ (id < V),
//     gathered at where(valid, id, 0), and the rows are where(valid, row, 0). A quantized table is
//     gathered as codes [V, G, B], scales and zero points [V, G, 1], and only the n gathered rows
//     are dequantized (then sliced to D when the graph-side rows are padded). gather takes no int4
//     tables here: int4 codes are widened to int8 once at Compile.
//   - Linear(x, w, bias): x viewed as [M, K], zero-padded to the weight's graph-side row length,
//     gemm(x, w, {bTranspose: true, c: bias}); w is the weight's dequantizeLinear constant form
//     (see Paths), built once per weight per graph. QDQ form: see qdq.go and CompileOptions.
//   - MatMul(a, b, transB): matmul(a, transpose(b) over the last two axes when transB).
//   - Scale(x, c): mul(x, c) with c a rank-0 constant.
//   - LayerNorm: layerNormalization over the last axis with scale, bias and epsilon where
//     accepted; else mean, x − mean, mean of squares, ÷ √(var + eps), · gamma + beta.
//   - RMSNorm(x, gamma, eps): x ÷ √(reduceMean(x·x) + eps) · gamma.
//   - Softmax(x, mask): keep = cast(mask ≠ 0); softmax(x + (keep − 1)·1e30) · keep. The −1e30
//     bias makes exp of an excluded entry exactly 0 (−∞ would make an all-excluded row NaN);
//     the product by keep zeroes the excluded entries and turns an all-excluded row, which the
//     softmax makes uniform, into all zeros. Without a mask: softmax on the last axis.
//   - GELU: WebNN gelu (the exact erf form) where accepted; else x·½·(1 + erf(x·(1/√2))).
//   - SiLU: x·sigmoid(x).
//   - MeanPool(x[B, T, D], mask[B, T]): reduceSum(x·mask[B, T, 1], T) ÷ max(reduceSum(mask, T), 1).
//     A non-finite x at a masked position would poison the sum (x·0); the reference skips it.
//   - L2Normalize(x, eps): x ÷ √max(reduceSumSquare(x), eps) over the last axis.
//   - RoPE(x[B, T, H, Dh], pos): θ = float(pos)[T, 1] · inv[1, Dh/2] with inv = base^(−2i/Dh)
//     computed in float64 in Go and rounded once; cos θ and sin θ in the graph, so positions stay
//     a runtime input; pairs rotated as (x0·c − x1·s, x0·s + x1·c). NeoX halves are two slices of
//     the last axis joined by concat; interleaved pairs are the last axis viewed as [Dh/2, 2].
//     θ is a float32 product where the reference uses float64: at position 4095 that differs
//     by up to half a float32 ulp of θ (1.2e-4 rad), inside the suite's bound.
//   - Slice: slice with zero starts except along the axis; Concat, Transpose, Reshape, ReLU,
//     Tanh, Add, Sub, Mul, Div: the WebNN op of the same name (same NumPy broadcasting).
//   - Outputs that are graph inputs or constants, or repeat another output, go through identity:
//     an MLGraph output must be an op's own result.
//
// # QDQ
//
// With a calibration (CompileOptions, backend.Calibration) every calibrated Linear whose weight
// has 8 bits is written in the form Chromium's TFLite backend fuses into one int8
// FULLY_CONNECTED (graph_builder_tflite.cc, CanFuseQuantizeAndGetOutput for gemm): x →
// quantizeLinear/dequantizeLinear (int8, per-tensor scale and zero point from the calibrated
// interval) → gemm(bTranspose) with the weight dequantizeLinear(int8 [N, K], positive scale
// [N, 1], zero point 0) and the bias as dequantizeLinear(int32 [N], scale sx·sw[n]) in c →
// quantizeLinear/dequantizeLinear (int8, the output's interval). Without the output quantize
// there is no fusion; with a negative weight scale (quant's symmetric formats store some) the
// graph does not build, so fused weights are always requantized per-channel with positive scales
// (one more rounding of at most half an int8 step). The fusion rule wants the weight codes in the
// activation's type, and quantizeLinear makes no int4, so int4 weights are never fused:
// Int4Policy picks between keeping them exact and widening to int8.
//
// Measured (BenchmarkGraphModes: USE-lite-sized encoder, width 512, FFN 1536, 16 tokens, two
// layers, synthetic weights; Chromium 153 TFLite CPU on the shared 2-core machine under load,
// modes timed round-robin; median Run = write + one dispatch + read):
//
//	                      1 sentence   30 sentences   output error vs cpu, same weights
//	f32                       7.5 ms        101 ms     1e-6
//	q8 per-channel, dq       18.4 ms        136 ms     1e-6
//	q8 per-channel, QDQ       2.2 ms         36 ms     rel. RMS 4.5–4.7%, min cosine 0.9983–0.9990
//	q8 g32, dq / QDQ         18.5 / 2.3     118 / 34   QDQ 4.8–4.9%, min cosine 0.9983–0.9988
//	q4 g32, dq               25.1 ms        141 ms     1e-6
//	q4 g32, QDQ widened       2.1 ms         32 ms     4.7–5.3%, min cosine 0.9985–0.9986
//	q4 g32, int4 QDQ form    24.5 ms        151 ms     33% (not fused, and int4 per-channel)
//
// The QDQ error is the int8 activations' (calibrated on 32 other sentences); the weights' own
// error against float32 is separate (q8 g32 1.5%, q4 g32 23% on these synthetic weights).
package nn
