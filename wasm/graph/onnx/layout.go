// Package onnx writes nibble graphs as ONNX models for ONNX Runtime (Web): the standard-domain
// ops of opset 17, and com.microsoft MatMulNBits / GatherBlockQuantized for 4-bit weights in
// ORT's layout (ToORT). The protobuf is written by hand (proto.go lists the field numbers), and
// Parse reads it back, so that the exporter is checked natively without ONNX Runtime.
//
// The package is pure Go and must stay free of syscall/js.
package onnx

import (
	"fmt"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// ORTWeight is one weight in the layout of ONNX Runtime's com.microsoft MatMulNBits
// (docs/ContribOperators.md; js/web/lib/wasm/jsep/webgpu/ops/matmulnbits.ts reads it the same way):
//
//	B            uint8 [N][Blocks][BlobSize], BlobSize = BlockSize·Bits/8. Within a blob, element
//	             2i is the low nibble of byte i and 2i+1 the high nibble (the WebGPU kernel reads
//	             little-endian u32 words and takes element j from bits 4j…4j+3).
//	scales       float32 [N·Blocks], row-major (the same type as A).
//	zero_points  uint8 [N][ceil(Blocks/2)] for 4 bits, packed like B (block 2i low nibble), each
//	             row starting on a byte. Absent: every zero point is 2^(Bits−1) = 8.
//
// A weight is (code − zero_point)·scale. A row whose K is not a multiple of BlockSize has a last
// blob that is padded; the padding codes here equal the block's zero point so that they
// dequantize to exactly zero whatever a kernel does with them.
type ORTWeight struct {
	N, K       int
	Bits       int
	BlockSize  int
	Blocks     int // ceil(K / BlockSize)
	BlobSize   int // bytes per block
	B          []byte
	Scales     []float32
	ZeroPoints []byte // nil: ORT's default zero point 8
}

// ortDefaultZero4 is MatMulNBits' zero point for 4-bit weights when zero_points is absent.
const ortDefaultZero4 = 8

// Bytes is what ORT holds for the weight: codes, scales and zero points, blob padding included.
func (w *ORTWeight) Bytes() int { return len(w.B) + 4*len(w.Scales) + len(w.ZeroPoints) }

// ToORT converts a 4-bit nibble tensor to ORT's MatMulNBits layout without changing any
// dequantized value:
//   - symmetric codes q ∈ [−8, 7] become unsigned q+8 with ORT's default zero point 8, so
//     (q+8) − 8 = q exactly and no zero_points input is needed;
//   - asymmetric codes and zero points are unsigned already and are copied as they are;
//   - f16 scales are widened to float32, which is exact.
//
// The block size is nibble's group size, which must be a power of two ≥ 16 as MatMulNBits
// requires; per-channel tensors have no MatMulNBits equivalent.
func ToORT(t *quant.Tensor) (*ORTWeight, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	if t.Bits != 4 {
		return nil, fmt.Errorf("ort layout %q: %d-bit weights: 4-bit weights only", t.Name, t.Bits)
	}
	bs := t.GroupSize
	if bs < 16 || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("ort layout %q: group size %d: MatMulNBits needs a power-of-two block size ≥ 16 (per-channel has no equivalent)", t.Name, bs)
	}
	w := &ORTWeight{N: t.N, K: t.K, Bits: 4, BlockSize: bs, Blocks: t.Groups(t.K), BlobSize: bs * 4 / 8}
	rowBytes := w.Blocks * w.BlobSize
	w.B = make([]byte, t.N*rowBytes)
	w.Scales = make([]float32, t.N*w.Blocks)
	sym := t.Scheme == quant.Symmetric
	if !sym {
		w.ZeroPoints = make([]byte, t.N*((w.Blocks+1)/2))
	}
	stride := t.RowStride(t.K)
	// Fast path: when K fills whole blobs, nibble's row is byte for byte ORT's row (same nibble
	// order), up to the shift of symmetric codes, which is an XOR of 8 on each nibble:
	// (q & 0xF) ^ 8 = q + 8 for q ∈ [−8, 7].
	whole := t.K%bs == 0
	for n := 0; n < t.N; n++ {
		dst := w.B[n*rowBytes : (n+1)*rowBytes]
		if whole {
			copy(dst, t.Data[n*stride:n*stride+rowBytes])
			if sym {
				for i := range dst {
					dst[i] ^= 0x88
				}
			}
		}
		for g := 0; g < w.Blocks; g++ {
			w.Scales[n*w.Blocks+g] = t.Scale(n, g)
			z := ortDefaultZero4
			if !sym {
				z = t.Zero(n, g)
				quant.PutCode(w.ZeroPoints[n*((w.Blocks+1)/2):], 4, g, z)
			}
			if whole {
				continue
			}
			for j := 0; j < bs; j++ {
				k, u := g*bs+j, z
				if k < t.K {
					u = t.Q(n, k)
					if sym {
						u += ortDefaultZero4
					}
				}
				quant.PutCode(dst, 4, g*bs+j, u)
			}
		}
	}
	return w, nil
}

// Dequantize returns the N×K matrix the way MatMulNBits defines it, (code − zero)·scale in
// float32, dropping the blob padding. It is the check that ToORT changed nothing.
func (w *ORTWeight) Dequantize() []float32 {
	out := make([]float32, w.N*w.K)
	rowBytes := w.Blocks * w.BlobSize
	zRow := (w.Blocks + 1) / 2
	for n := 0; n < w.N; n++ {
		row := w.B[n*rowBytes : (n+1)*rowBytes]
		for k := 0; k < w.K; k++ {
			g := k / w.BlockSize
			z := ortDefaultZero4
			if w.ZeroPoints != nil {
				z = quant.Code(w.ZeroPoints[n*zRow:(n+1)*zRow], 4, g, false)
			}
			u := quant.Code(row, 4, k, false)
			out[n*w.K+k] = (float32(u) - float32(z)) * w.Scales[n*w.Blocks+g]
		}
	}
	return out
}
