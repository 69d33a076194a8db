package nn

// Product is the op that multiplies x by the weight.
type Product uint8

const (
	ProductGemm   Product = iota // gemm(x, w, {bTranspose: true})
	ProductMatmul                // matmul(x, transpose(w))
)

// Dequant is how codes become float32.
type Dequant uint8

const (
	DequantLinear Dequant = iota // dequantizeLinear(codes, scales, zeros)
	// DequantCast is cast(codes) − cast(zeros), times scales: the same values (the integer
	// difference is exact in float32) through cheaper kernels on TFLite. Not for int4, which
	// cast rejects; those weights keep dequantizeLinear. Measured on TFLite CPU it was not
	// reliably faster than dequantizeLinear (faster on 11008×4096, slower on 4096×11008 and
	// 128×4096×4096), so it is not the default.
	DequantCast
)

// GraphShape is one way of wiring the same computation; bench_js_test.go measures them.
type GraphShape struct {
	Product Product
	Dequant Dequant
	// Rank2 uses dequantizeLinear's block-wise broadcast directly: codes [N, KPad], scales
	// [N, G]. Measured 15× slower than the [N, G, B] × [N, G, 1] default on TFLite (1.0 s against
	// 69 ms for int8 g32 4096×4096): TFLite runs the block-wise form as a generic broadcast.
	Rank2 bool
}

func (g GraphShape) String() string {
	s := "gemm"
	if g.Product == ProductMatmul {
		s = "matmul-transpose"
	}
	if g.Dequant == DequantCast {
		s += "+cast"
	} else {
		s += "+dq"
	}
	if g.Rank2 {
		s += "+rank2"
	} else {
		s += "+rank3"
	}
	return s
}
