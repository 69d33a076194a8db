// Package shaders holds nibble's WGSL kernels as files (embedded) and turns a variant Key into
// the code one pipeline compiles: a generated header of enables and consts, then the files, with
// #if/#else/#endif lines resolved. Removed lines are kept as empty lines so a compiler message
// points at the same line in the .wgsl file (ShaderSource.Locate does the mapping).
//
// Files: decode.wgsl (packed-weight readers, shared); gemv_reduce.wgsl (the workgroup sum both
// GEMV kernels end with); for one to a few activation rows
// (bandwidth-bound) gemv.wgsl (shaped for CPU implementations of WebGPU) and gemv_hw.wgsl (for
// GPUs: codes turned into floats without an int→float conversion) and gemv_a8.wgsl (int8
// activations, integer dot products: an opt-in precision mode); for many rows gemm.wgsl (each
// thread reuses a decoded span across TM rows, no workgroup memory) and gemm_tile.wgsl (tiles in
// workgroup memory, for GPUs), with gemm_reduce.wgsl adding its partial products where K is
// split across workgroups. state_store.wgsl (a cache row's rounding) and handoff.wgsl (a float
// handed between workgroups of a dispatch) are shared with the op families (ops.go). Which
// variant runs where is the backend's policy (wasm/backend/gpu), not this package's.
package shaders

import (
	"embed"
	"fmt"
	"sort"
	"strings"

	"github.com/nibble-ml/nibble/wasm/webgpu"
)

//go:embed *.wgsl
var files embed.FS

// Kernel is a kernel family: one .wgsl file.
type Kernel uint8

const (
	GEMV     Kernel = iota // few activation rows: grid (ceil(n/Rows), m)
	GEMM                   // many activation rows: grid (ceil(n/(WG·Rows)), ceil(m/TM))
	GEMVHW                 // GEMV for GPUs: grid (ceil(n/Rows), m)
	GEMMTile               // GEMM tiled in workgroup memory: grid (ceil(n/BN), ceil(m/BM)·max(KSlices, 1)), see Key.Tile
	// GEMV with int8 activations (an opt-in precision mode): x quantized per block as it is
	// read, packed 4×8-bit integer dot products; weight codes only (Bits 2, 4, 8). Grid as GEMVHW.
	GEMVA8
	// The int8-activation GEMV's pre-pass: x quantized once per GEMV into blocks a GEMVA8 key
	// with XQ reads (gemv_a8.wgsl QUANTX). Grid (ceil(blocks of a row / WG), m).
	A8Quant
	// The sum of a GEMMTile's KSlices partial products (gemm_reduce.wgsl): part at binding 2,
	// y at 3 as the tile kernel stores it. Grid (ceil(n / WG), m).
	GEMMReduce
)

func (k Kernel) String() string {
	switch k {
	case GEMV:
		return "gemv"
	case GEMM:
		return "gemm"
	case GEMVHW:
		return "gemv-hw"
	case GEMMTile:
		return "gemm-tile"
	case GEMVA8:
		return "gemv-a8"
	case A8Quant:
		return "a8-quant"
	case GEMMReduce:
		return "gemm-reduce"
	}
	return fmt.Sprintf("Kernel(%d)", uint8(k))
}

func (k Kernel) file() string {
	if k == A8Quant {
		return "gemv_a8.wgsl" // the pre-pass shares the activations' quantization
	}
	return strings.ReplaceAll(k.String(), "-", "_") + ".wgsl"
}

// IsGEMV reports whether the kernel reduces along K across a workgroup, one activation row per
// grid row (GEMV, GEMVHW, GEMVA8), rather than tiling activation rows (GEMM, GEMMTile).
func (k Kernel) IsGEMV() bool { return k == GEMV || k == GEMVHW || k == GEMVA8 }

// hwGEMV reports whether the kernel is a GEMV for GPUs (GEMVHW, GEMVA8): those take an RMS
// norm's input (Key.Norm) and several weights a dispatch (Key.Weights).
func (k Kernel) hwGEMV() bool { return k == GEMVHW || k == GEMVA8 }

// Key selects one variant. It is comparable, so it keys the backend's pipeline cache directly.
// Use Normalize before comparing keys built by hand: fields that a format does not use are zeroed.
type Key struct {
	Kernel Kernel
	// Bits per weight: 2, 4, 8 (codes and scales), 16 (IEEE half weights), 32 (float32 weights).
	Bits     int
	Asym     bool // asymmetric codes with packed zero points
	ScaleF16 bool // scales stored as IEEE half
	// ScalePerVec is the group class GEMV specializes on: one scale covers each vec4<u32> load
	// (per-channel, or groups a multiple of 4·32/Bits codes). The group length itself is a
	// uniform, so group sizes do not multiply the variants (and SwiftShader's compile times).
	ScalePerVec bool
	F16         bool // products in f16 (needs the shader-f16 feature); sums stay f32. GEMV, GEMM only
	Subgroups   bool // subgroupAdd reductions (needs subgroups and the subgroup_id builtin)

	// Threads per workgroup (power of two); weight rows per workgroup (GEMV, GEMVHW: 1..8;
	// GEMVA8: 1..8 or 16) or per thread (GEMM, GEMMTile).
	WG, Rows int
	TM       int // GEMM, GEMMTile: activation rows per thread (GEMM 4, 8, 12 or 16; GEMMTile 4 or 8)
	// GEMMTile: threads along M (WG/WGM along N) and the K extent of a workgroup-memory tile.
	WGM, BK int
	// GEMMTile: thread groups that split each K step of a tile (1 or 2; 0 means 1): the
	// workgroup has WG·KSplit threads, the groups' sums are added at the end. More threads in
	// flight per tile where tiles are few (m = 128 makes 128 64×64 tiles for 132 SMs).
	KSplit int
	// GEMMTile, GEMMReduce: slices of K across workgroups (0 and 1: none). A GEMMTile workgroup
	// sums one slice's BK steps (grid y: KSlices × ceil(m/BM)) and stores its partial product
	// at binding 3 as [KSlices][m][n] (n: the dispatch's rows); a GEMMReduce dispatch of the
	// same KSlices adds the slices into y. More workgroups where tiles are few, for one more
	// dispatch and KSlices·m·n floats written and read again.
	KSlices int
	// GEMVHW, GEMVA8 with XQ: load the next span while summing this one (software pipelining).
	// Not GEMVA8 quantizing its own x (its x's registers and work per span): on an H200 (run
	// 58, wasm/backend/gpu/NOTES.md) that made a 7B step's o GEMV 0.6 µs slower and its down
	// GEMV 4.6, where the q, k, v GEMV reading blocks took 0.9 less.
	Prefetch bool
	// GEMV, GEMVHW: y = x·wᵀ + res, the residual (binding 6, y's shape) added as the sums are
	// stored: a Linear and the Add that follows it are one dispatch.
	Residual bool
	// GEMVHW, GEMVA8: x is an RMS norm's input, the gain at binding 7 and params.eps: the kernel
	// normalizes as it reads (a norm and the Linears after it, one dispatch each Linear). With
	// XQ the pre-pass has multiplied by the gain and stored each block's Σx² (no binding 7).
	// A8Quant: quantize x·gain (binding 7) and store each block's Σx² for such a GEMV.
	Norm bool
	// GEMVHW, GEMVA8: the weights one dispatch reads, 2 or 3 (0 and 1: one): Linears of one x whose
	// weights share a layout but for N, each workgroup's rows within one weight (gemv_hw.wgsl
	// MULTI; the others' codes, scales and zero points at bindings 8-13, where each weight
	// starts and stores at binding 14). One dispatch instead of q, k, v's three.
	Weights int
	// GEMVA8: x arrives quantized by an A8Quant pre-pass (binding 2 holds its blocks), not as
	// floats it quantizes itself. Not with SiLUX.
	XQ bool
	// GEMVA8: the grid holds at most Persist workgroups along x, each summing the row groups
	// wid.x, wid.x + Persist, …, its activation row quantized once into workgroup memory of XCap
	// blocks (PERSIST; a row of more blocks is quantized per span, as without). 0: one row group
	// a workgroup, as many workgroups as groups. Not with XQ.
	Persist, XCap int
	// GEMVHW, GEMVA8: x is SiLU(x)·u, u at binding 15, formed as x is loaded (SILU_X; GEMVA8
	// then quantizes it): a feed-forward's SiLU·mul and its down projection, one dispatch. Not
	// with Norm.
	SiLUX bool
	// GEMVHW, GEMVA8: the "SwiGLU GEMV": two weights of one x and one N, the gate (bindings 1,
	// 4, 5) and up (8, 10, 12); a workgroup sums Rows/2 rows of each, the same rows (its first
	// half the gate's, its second up's: which weight a row reads is a constant), and stores
	// SiLU(gate)·up, N outputs a row (SWIGLU). Rows even; not with Weights, SiLUX or Residual.
	// Grid: (ceil(N / (Rows/2)), m).
	SwiGLU bool
	// GEMVHW, GEMVA8 with 3 Weights (a decoder's q, k, v; one activation row): the second
	// weight's outputs, rotated by cos and sin tables, and the third's are written into the
	// caches at bindings 17, 18 at row pos rather than into y (gemv_reduce.wgsl KV_WRITE; pos
	// and the tables one range at binding 16): the cache write is no dispatch of its own. Rows
	// even; the caches f32, or packed halves with KVF16.
	KVWrite, KVF16 bool
	// GEMVHW and GEMVA8 without Weights, SwiGLU or KVWrite, 8 rows a workgroup (GEMVA8: or 16,
	// two groups of 8 that each hand their outputs over as an 8-row workgroup would): y is also an RMS
	// norm's input, which the GEMVs after it read without a dispatch of the norm's own: a
	// residual Linear and the RMS norm after it, one dispatch. GEMVHW writes the norm's x·gain
	// at binding 21 (the gain at 20) and the Σy² of each workgroup's 8 rows at 19
	// (gemv_reduce.wgsl NORM_TAIL), for GEMVs with NormPart to read. GEMVA8 (not with Persist)
	// writes x·gain quantized into activation blocks for codes of TailBits (TailAsym), each with
	// its Σy², as the A8Quant pre-pass with Norm writes them, at binding 21 (the gain at 20;
	// 19 the counts and the handoff, gemv_a8.wgsl QTAIL), for GEMVs with XQ and Norm.
	NormTail bool
	// GEMVA8 with SwiGLU: y is read by a GEMV with XQ (a feed-forward's down projection), whose
	// activation blocks for codes of TailBits (TailAsym) this dispatch writes as NormTail does,
	// but of y itself (XTAIL): the down GEMV reads blocks rather than quantizing y's row in every
	// workgroup.
	XTail bool
	// GEMVA8 with NormTail or XTail: the bits and the scheme of the codes that read the blocks.
	TailBits int
	TailAsym bool
	// GEMVHW with Norm: x is x·gain already and binding 7 holds the Σx² of each 8 elements of
	// its rows (at most 32·WG elements), as a NormTail GEMV wrote them (NORM_PART).
	NormPart bool
}

// Tile is the block of outputs one GEMMTile workgroup computes: BM activation rows × BN weight
// rows, with BK elements of K staged in workgroup memory per step.
func (k Key) Tile() (bm, bn, bk int) {
	if k.Kernel != GEMMTile || k.WGM == 0 {
		return 0, 0, 0
	}
	return k.WGM * k.TM, k.WG / k.WGM * k.Rows, k.BK
}

// WorkgroupBytes is the workgroup memory a variant declares, to check against the device's
// maxComputeWorkgroupStorageSize before asking for it.
func (k Key) WorkgroupBytes() int {
	switch k.Kernel {
	case GEMV, GEMVHW, GEMVA8:
		b := 2 * 16 * k.WG // two vec4<f32> per thread for the reduction
		if k.Kernel.hwGEMV() && k.Norm {
			b += 4 * k.WG // and Σx²
		}
		if k.Kernel == GEMVA8 && k.Persist > 0 {
			b += k.XCap * k.persistBlockBytes() // the activation row, quantized
		}
		return b
	case GEMMTile:
		bm, bn, bk := k.Tile()
		return 4 * bk * (bm + bn)
	}
	return 0
}

// persistBlockBytes is the workgroup memory a PERSIST GEMVA8 holds per block of its activation
// row: the block's packed int8 words (16 or 32 activations: 4 or 8 words), its scale, Σq and
// base.
func (k Key) persistBlockBytes() int { return 4 * (min(32, 4*32/k.Bits)/4 + 3) }

// Quantized reports whether the weights are codes with scales.
func (k Key) Quantized() bool { return k.Bits == 2 || k.Bits == 4 || k.Bits == 8 }

// Normalize zeroes the fields the variant does not use, so equal kernels get equal keys.
func (k Key) Normalize() Key {
	if !k.Quantized() {
		k.Asym, k.ScaleF16, k.ScalePerVec = false, false, false
	}
	if k.Kernel.IsGEMV() {
		k.TM = 0
	} else {
		k.Subgroups = false
	}
	if k.Kernel != GEMMTile {
		k.WGM, k.BK, k.KSplit = 0, 0, 0
	} else if k.KSplit == 0 {
		k.KSplit = 1
	}
	if k.Kernel != GEMMTile && k.Kernel != GEMMReduce || k.KSlices == 1 {
		k.KSlices = 0 // one slice is the unsplit kernel
	}
	if k.Kernel == GEMMReduce {
		// It adds floats: nothing of the weights' format or the launch shape but WG matters.
		k = Key{Kernel: GEMMReduce, Bits: 32, WG: k.WG, KSlices: k.KSlices}
	}
	if !k.Kernel.IsGEMV() {
		k.Residual = false
	}
	if !k.Kernel.hwGEMV() && k.Kernel != A8Quant {
		k.Norm = false
	}
	if !k.Kernel.hwGEMV() || k.Weights < 2 {
		k.Weights = 0
	}
	if k.Kernel == GEMVA8 || k.Kernel == A8Quant {
		k.ScalePerVec = false // it reads a scale per activation block whatever the group
	}
	if k.Kernel != GEMVA8 {
		k.XQ = false
	}
	if k.Kernel != GEMVA8 || k.XQ || k.Persist <= 0 {
		k.Persist, k.XCap = 0, 0
	}
	if k.Kernel != GEMVHW && (k.Kernel != GEMVA8 || !k.XQ || k.Persist > 0) {
		k.Prefetch = false
	}
	if !k.Kernel.hwGEMV() {
		k.SiLUX, k.SwiGLU = false, false
	}
	if k.Kernel == A8Quant {
		k.Rows, k.ScaleF16 = 1, false // a thread per block; scales are the GEMV's
	}
	if !k.Kernel.hwGEMV() || k.Weights != 3 {
		k.KVWrite = false
	}
	if !k.KVWrite {
		k.KVF16 = false
	}
	if k.Kernel != GEMVHW && k.Kernel != GEMVA8 {
		k.NormTail = false
	}
	if k.Kernel != GEMVA8 || !k.SwiGLU {
		k.XTail = false
	}
	if k.Kernel != GEMVA8 || !k.NormTail && !k.XTail {
		k.TailBits, k.TailAsym = 0, false
	}
	if k.Kernel != GEMVHW || !k.Norm {
		k.NormPart = false
	}
	if k.Kernel == GEMVHW || k.Kernel == GEMMTile || k.Kernel == GEMVA8 {
		// Their codes become f32 by the exponent trick (GEMVHW) or once per tile (GEMMTile), or
		// their products are integers (GEMVA8): products in f16 would add conversions.
		k.F16 = false
	}
	return k
}

// Name is a short stable variant name, used as the label of the module and the pipeline.
func (k Key) Name() string {
	var b strings.Builder
	b.WriteString(k.Kernel.String())
	switch {
	case k.Quantized():
		sch, g, st := "sym", "", "f32s"
		if k.Asym {
			sch = "asym"
		}
		if k.ScalePerVec {
			g = "-spv"
		}
		if k.ScaleF16 {
			st = "f16s"
		}
		fmt.Fprintf(&b, "-q%d-%s-%s%s", k.Bits, sch, st, g)
	default:
		fmt.Fprintf(&b, "-f%d", k.Bits)
	}
	switch k.Kernel {
	case GEMV, GEMVHW, GEMVA8:
		fmt.Fprintf(&b, "-wg%dr%d", k.WG, k.Rows)
	case A8Quant:
		fmt.Fprintf(&b, "-wg%d", k.WG)
	case GEMMTile:
		bm, bn, bk := k.Tile()
		fmt.Fprintf(&b, "-%dx%dx%d-t%dx%d", bm, bn, bk, k.TM, k.Rows)
		if k.KSplit > 1 {
			fmt.Fprintf(&b, "-ks%d", k.KSplit)
		}
		if k.KSlices > 1 {
			fmt.Fprintf(&b, "-sk%d", k.KSlices)
		}
	case GEMMReduce:
		fmt.Fprintf(&b, "-wg%d-sk%d", k.WG, k.KSlices)
	default:
		fmt.Fprintf(&b, "-wg%dr%dm%d", k.WG, k.Rows, k.TM)
	}
	if k.F16 {
		b.WriteString("-f16")
	}
	if k.Subgroups {
		b.WriteString("-sg")
	}
	if k.Prefetch {
		b.WriteString("-pf")
	}
	if k.Residual {
		b.WriteString("-res")
	}
	if k.Norm {
		b.WriteString("-norm")
	}
	if k.XQ {
		b.WriteString("-xq")
	}
	if k.Persist > 0 {
		fmt.Fprintf(&b, "-p%dx%d", k.Persist, k.XCap)
	}
	if k.Weights > 1 {
		fmt.Fprintf(&b, "-w%d", k.Weights)
	}
	if k.SiLUX {
		b.WriteString("-silux")
	}
	if k.SwiGLU {
		b.WriteString("-swiglu")
	}
	if k.KVWrite {
		b.WriteString(map[bool]string{false: "-kv32", true: "-kv16"}[k.KVF16])
	}
	if k.NormTail {
		b.WriteString("-normtail")
		if k.Kernel == GEMVA8 {
			fmt.Fprintf(&b, "%d%s", k.TailBits, map[bool]string{false: "", true: "a"}[k.TailAsym])
		}
	}
	if k.XTail {
		fmt.Fprintf(&b, "-xtail%d%s", k.TailBits, map[bool]string{false: "", true: "a"}[k.TailAsym])
	}
	if k.NormPart {
		b.WriteString("-normpart")
	}
	return b.String()
}

// maxKSlices bounds Key.KSlices: past a few slices the partial products' traffic and the
// reduction cost more than the extra workgroups gain.
const maxKSlices = 16

// Validate says why a key cannot be compiled, before any browser sees it.
func (k Key) Validate() error {
	switch k.Bits {
	case 2, 4, 8, 16, 32:
	default:
		return fmt.Errorf("shaders: %s: Bits %d (want 2, 4, 8, 16 or 32)", k.Name(), k.Bits)
	}
	if (k.Kernel == GEMVA8 || k.Kernel == A8Quant) && !k.Quantized() {
		return fmt.Errorf("shaders: %s: int8 activations need weight codes (Bits 2, 4 or 8), not Bits %d", k.Name(), k.Bits)
	}
	switch k.Kernel {
	case GEMV, GEMVHW, GEMVA8:
		// Two vec4<f32> of partial sums per thread in workgroup memory: WG ≤ 256 is 8 KiB.
		// GEMVA8 may also take 16 rows: two groups of 8, reduced in turn.
		a8Rows := k.Kernel == GEMVA8 && k.Rows == 16
		if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 256 || k.Rows < 1 || k.Rows > 8 && !a8Rows {
			return fmt.Errorf("shaders: %s: WG %d must be a power of two ≤ 256 and Rows %d in 1..8 (one vec4 accumulator per 4 rows)", k.Name(), k.WG, k.Rows)
		}
		if k.Weights > 3 {
			return fmt.Errorf("shaders: %s: %d weights in one dispatch (at most 3)", k.Name(), k.Weights)
		}
		if k.SiLUX && k.Norm {
			return fmt.Errorf("shaders: %s: x is either SiLU(x)·u or an RMS norm's input, not both", k.Name())
		}
		if k.XQ && k.SiLUX {
			return fmt.Errorf("shaders: %s: x quantized ahead cannot be a SiLU product", k.Name())
		}
		if k.Persist > 0 && k.XCap < 1 {
			return fmt.Errorf("shaders: %s: Persist %d needs XCap ≥ 1 blocks of workgroup memory for x", k.Name(), k.Persist)
		}
		if k.SwiGLU && (k.Rows%2 != 0 || k.Weights > 1 || k.SiLUX || k.Residual) {
			return fmt.Errorf("shaders: %s: SwiGLU needs an even Rows (half the gate's, half up's) and no Weights, SiLUX or Residual", k.Name())
		}
		if k.KVWrite && (k.Rows%2 != 0 || k.Weights != 3 || k.Residual) {
			return fmt.Errorf("shaders: %s: the KV cache write needs an even Rows (a rotated pair in one workgroup), 3 Weights and no Residual", k.Name())
		}
		if k.NormTail && (k.Weights > 1 || k.SwiGLU || k.KVWrite || k.Rows != 8 && (k.Kernel != GEMVA8 || k.Rows != 16)) {
			return fmt.Errorf("shaders: %s: writing a norm's x·gain and sums needs one weight, 8 rows a workgroup (or 16 for GEMVA8) and no SwiGLU or KV write", k.Name())
		}
		if k.Kernel == GEMVA8 && (k.NormTail || k.XTail) && (k.Persist > 0 || k.TailBits != 2 && k.TailBits != 4 && k.TailBits != 8) {
			return fmt.Errorf("shaders: %s: activation blocks for a GEMV after need TailBits 2, 4 or 8 (got %d) and no Persist", k.Name(), k.TailBits)
		}
		if k.XTail && k.Rows != 16 && k.Rows != 8 {
			return fmt.Errorf("shaders: %s: the down GEMV's blocks need 8 or 16 rows a workgroup (got %d)", k.Name(), k.Rows)
		}
	case A8Quant:
		if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 256 {
			return fmt.Errorf("shaders: %s: WG %d must be a power of two ≤ 256", k.Name(), k.WG)
		}
	case GEMM:
		// Accumulators are two arrays of four vec4 (rows × activation rows), written out.
		if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 256 || k.Rows < 1 || k.Rows > 2 || k.TM < 4 || k.TM > 16 || k.TM%4 != 0 {
			return fmt.Errorf("shaders: %s: WG %d must be a power of two ≤ 256, Rows %d 1 or 2 and TM %d one of 4, 8, 12, 16 (four vec4 accumulators per row)", k.Name(), k.WG, k.Rows, k.TM)
		}
	case GEMMTile:
		// Each thread holds TM×Rows sums as vec4s along N; a tile row of K is whole words of
		// every width (16 codes of int2 are one word).
		if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 256 || k.WGM < 1 || k.WGM&(k.WGM-1) != 0 || k.WGM > k.WG ||
			(k.TM != 4 && k.TM != 8) || (k.Rows != 4 && k.Rows != 8) || (k.BK != 16 && k.BK != 32) ||
			(k.KSplit > 2) || (k.KSplit == 2 && k.WG < 32) {
			return fmt.Errorf("shaders: %s: WG %d and WGM %d must be powers of two, WGM ≤ WG ≤ 256; TM %d and Rows %d 4 or 8; BK %d 16 or 32; KSplit %d 1 or 2 (2 with WG ≥ 32, so a subgroup stays within one group)", k.Name(), k.WG, k.WGM, k.TM, k.Rows, k.BK, k.KSplit)
		}
		if k.KSlices < 0 || k.KSlices > maxKSlices {
			return fmt.Errorf("shaders: %s: KSlices %d (want 0..%d)", k.Name(), k.KSlices, maxKSlices)
		}
	case GEMMReduce:
		if k.WG < 1 || k.WG&(k.WG-1) != 0 || k.WG > 256 || k.KSlices < 2 || k.KSlices > maxKSlices {
			return fmt.Errorf("shaders: %s: WG %d must be a power of two ≤ 256 and KSlices %d in 2..%d", k.Name(), k.WG, k.KSlices, maxKSlices)
		}
	default:
		return fmt.Errorf("shaders: unknown kernel %v", k.Kernel)
	}
	return nil
}

// Defines are the #if names a key turns on.
func (k Key) Defines() map[string]bool {
	return map[string]bool{
		"QUANT":     k.Quantized(),
		"ASYM":      k.Quantized() && k.Asym,
		"SCALE_F16": k.Quantized() && k.ScaleF16,
		"F16W":      k.Bits == 16,
		"F16":       k.F16,
		"SUBGROUPS": k.Kernel.IsGEMV() && k.Subgroups,
		"RESIDUAL":  k.Kernel.IsGEMV() && k.Residual,
		"NORM":      (k.Kernel.hwGEMV() || k.Kernel == A8Quant) && k.Norm,
		"MULTI":     k.Kernel.hwGEMV() && k.Weights > 1,
		"MULTI3":    k.Kernel.hwGEMV() && k.Weights > 2,
		"XQ":        k.Kernel == GEMVA8 && k.XQ,
		"PERSIST":   k.Kernel == GEMVA8 && k.Persist > 0,
		"QUANTX":    k.Kernel == A8Quant,
		"KSLICES":   k.Kernel == GEMMTile && k.KSlices > 1,
		"SILU_X":    k.Kernel.hwGEMV() && k.SiLUX,
		"SWIGLU":    k.Kernel.hwGEMV() && k.SwiGLU,
		"KV_WRITE":  k.Kernel.hwGEMV() && k.KVWrite,
		"KV_F16":    k.Kernel.hwGEMV() && k.KVWrite && k.KVF16,
		"NORM_TAIL": k.Kernel == GEMVHW && k.NormTail,
		"QTAIL":     k.Kernel == GEMVA8 && (k.NormTail || k.XTail),
		"TAIL_NORM": k.Kernel == GEMVA8 && k.NormTail,
		"NORM_PART": k.Kernel == GEMVHW && k.Norm && k.NormPart,
		// A second weight's bindings (decode.wgsl's w1): MULTI's, or SWIGLU's up.
		"W1": k.Kernel.hwGEMV() && (k.Weights > 1 || k.SwiGLU),
	}
}

func (k Key) header() []string {
	var h []string
	if k.F16 {
		h = append(h, "enable f16;")
	}
	if k.Defines()["SUBGROUPS"] {
		h = append(h, "enable subgroups;")
	}
	u := func(name string, v int) { h = append(h, fmt.Sprintf("const %s: u32 = %du;", name, v)) }
	u("BITS", k.Bits)
	u("EW", 32/k.Bits)
	u("WG", k.WG)
	if k.Kernel == GEMVA8 || k.Kernel == A8Quant {
		// gemv_reduce.wgsl sums 8 rows at a time: 16 rows are two groups (RG) of 8 (ROWS).
		u("ROWS", min(k.Rows, 8))
		u("RG", (k.Rows+7)/8)
	} else {
		u("ROWS", k.Rows)
	}
	h = append(h, fmt.Sprintf("const SCALE_PER_VEC: bool = %v;", k.ScalePerVec))
	if !k.Kernel.IsGEMV() {
		u("TM", k.TM)
	}
	if k.Kernel == GEMMTile {
		u("WGM", k.WGM)
		u("BK", k.BK)
		u("KS", max(k.KSplit, 1))
	}
	if k.KSlices > 1 {
		u("SLICES", k.KSlices)
	}
	if k.Kernel == GEMVHW || k.Kernel == GEMVA8 {
		h = append(h, fmt.Sprintf("const PREFETCH: bool = %v;", k.Prefetch))
	}
	if k.Defines()["SWIGLU"] {
		u("HALF", k.Rows/2) // a workgroup's rows of each weight
	}
	if k.Defines()["PERSIST"] {
		u("XCAP", k.XCap)
	}
	if k.Kernel == GEMVA8 || k.Kernel == A8Quant {
		h = append(h, fmt.Sprintf("const ASYM_CODES: bool = %v;", k.Asym))
	}
	if k.Defines()["QTAIL"] {
		u("TBITS", k.TailBits)
		h = append(h, fmt.Sprintf("const TASYM: bool = %v;", k.TailAsym))
		if k.SwiGLU {
			u("TROWS", k.Rows/2) // a workgroup's outputs
		} else {
			u("TROWS", min(k.Rows, 8))
		}
	}
	return h
}

// Source returns the WGSL of the variant with its line map.
func (k Key) Source() (webgpu.ShaderSource, error) {
	k = k.Normalize()
	if err := k.Validate(); err != nil {
		return webgpu.ShaderSource{}, err
	}
	src := webgpu.ShaderSource{Variant: k.Name()}
	lines := k.header()
	defs := k.Defines()
	parts := []string{"decode.wgsl"}
	if defs["KV_WRITE"] {
		parts = append(parts, "state_store.wgsl")
	}
	if defs["QTAIL"] {
		parts = append(parts, "handoff.wgsl")
	}
	if k.Kernel.IsGEMV() {
		parts = append(parts, "gemv_reduce.wgsl")
	}
	return assemble(src, lines, append(parts, k.Kernel.file()), defs)
}

// assemble appends the preprocessed files to the header lines and records where each file's
// lines start, so a compile error maps back to the file and line it came from.
func assemble(src webgpu.ShaderSource, lines, parts []string, defs map[string]bool) (webgpu.ShaderSource, error) {
	for _, f := range parts {
		text, err := files.ReadFile(f)
		if err != nil {
			return src, fmt.Errorf("shaders: %w", err)
		}
		body, err := Preprocess(string(text), defs)
		if err != nil {
			return src, fmt.Errorf("shaders: %s: %w", f, err)
		}
		src.Spans = append(src.Spans, webgpu.SourceSpan{File: "shaders/" + f, Start: len(lines) + 1, Lines: len(body)})
		lines = append(lines, body...)
	}
	src.Code = strings.Join(lines, "\n") + "\n"
	return src, nil
}

// Preprocess resolves #if NAME, #if !NAME, #else and #endif lines (nesting allowed). Every name
// must be in defs, so a misspelt name is an error rather than a silently dropped block. Directive
// and dropped lines become empty lines: line i of the result is line i of text.
func Preprocess(text string, defs map[string]bool) ([]string, error) {
	in := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	out := make([]string, len(in))
	type frame struct{ cond, seenElse bool }
	var stack []frame
	active := func() bool {
		for _, f := range stack {
			if !f.cond {
				return false
			}
		}
		return true
	}
	for i, line := range in {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "#if "):
			name := strings.TrimSpace(t[4:])
			neg := strings.HasPrefix(name, "!")
			name = strings.TrimPrefix(name, "!")
			v, ok := defs[name]
			if !ok {
				return nil, fmt.Errorf("line %d: #if %s: unknown name (known: %v)", i+1, name, keys(defs))
			}
			stack = append(stack, frame{cond: v != neg})
		case t == "#else":
			if len(stack) == 0 || stack[len(stack)-1].seenElse {
				return nil, fmt.Errorf("line %d: #else without #if", i+1)
			}
			top := &stack[len(stack)-1]
			top.cond, top.seenElse = !top.cond, true
		case t == "#endif":
			if len(stack) == 0 {
				return nil, fmt.Errorf("line %d: #endif without #if", i+1)
			}
			stack = stack[:len(stack)-1]
		case strings.HasPrefix(t, "#"):
			return nil, fmt.Errorf("line %d: unknown directive %q", i+1, t)
		default:
			if active() {
				out[i] = line
			}
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%d #if without #endif", len(stack))
	}
	return out, nil
}

func keys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks) // a stable message
	return ks
}
