// Package gpu is the WebGPU backend: quantized weights live in storage buffers exactly as
// wasm/quant packs them (rows padded to 16 bytes), and WGSL kernels from shaders/ dequantize
// them on the fly inside GEMV (few activation rows) or a tiled GEMM (many).
//
// This file is the pure-Go part — layout, splitting, kernel choice — so it tests natively in
// milliseconds; gpu_js.go does the browser work. The backend owns policy (which variant runs,
// how a tensor is split); wasm/webgpu owns the raw API and must not learn either.
package gpu

import (
	"fmt"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// RowAlign is the byte alignment of every weight row on the device. 16 bytes lets GEMV load a
// row as vec4<u32>; quant pads rows only to 4, so Upload re-pads (at most 12 bytes a row).
const RowAlign = 16

// GEMVMaxM is the largest activation row count that runs GEMV: it reads the weights once per
// activation row, which is what a bandwidth-bound decode step wants and what a prefill does not.
const GEMVMaxM = 4

// layout is how one weight sits in device memory.
type layout struct {
	n, k       int
	format     quant.Format
	rowStride  int // bytes of one packed row as quant stores it
	rowBytes   int // bytes of one device row (rowStride padded to RowAlign)
	kp         int // elements a device row holds: K plus zero-code padding; x rows are padded to it
	groups     int // scale groups per row (0 for f16/f32 weights)
	group      int // group length along K (K itself when per-channel)
	scaleBytes int // bytes of scales per row
	zeroBytes  int // bytes of packed zero points per row (0 when symmetric)
}

func newLayout(t *quant.Tensor) layout {
	f := t.Format
	l := layout{n: t.N, k: t.K, format: f, rowStride: f.RowStride(t.K)}
	l.rowBytes = (l.rowStride + RowAlign - 1) / RowAlign * RowAlign
	l.kp = l.rowBytes * 8 / f.Bits
	if f.Quantized() {
		l.groups, l.group = f.Groups(t.K), f.Group(t.K)
		l.scaleBytes = l.groups * f.Scales.Size()
		l.zeroBytes = f.ZeroStride(t.K)
	}
	return l
}

// chunk is a range of weight rows bound and dispatched together.
type chunk struct{ r0, r1 int }

// planChunks splits n rows so that no chunk's data, scales or zero points exceed maxBytes (the
// device's maxStorageBufferBindingSize, or a smaller cap), and no dispatch needs more than
// maxRows rows (the workgroup-count limit times rows per workgroup).
func planChunks(l layout, maxBytes int64, maxRows int) ([]chunk, error) {
	per := func(rowBytes int) int64 {
		if rowBytes == 0 {
			return int64(l.n)
		}
		// Scale rows of f16 need not end on 4 bytes; the buffer is padded by up to 3 bytes.
		return (maxBytes - 3) / int64(rowBytes)
	}
	rows := min(per(l.rowBytes), per(l.scaleBytes), per(l.zeroBytes), int64(maxRows), int64(l.n))
	if rows < 1 {
		return nil, fmt.Errorf("gpu: %dx%d %v: one row needs %d bytes of codes, %d of scales, %d of zero points, more than a binding may hold (%d bytes): rows cannot be split further",
			l.n, l.k, l.format, l.rowBytes, l.scaleBytes, l.zeroBytes, maxBytes)
	}
	var cs []chunk
	for r := 0; r < l.n; r += int(rows) {
		cs = append(cs, chunk{r, min(l.n, r+int(rows))})
	}
	return cs, nil
}

// padRows copies rows [r0, r1) of data (rowStride bytes each) into rowBytes-strided rows.
// The padding bytes are zero codes, which the kernels multiply by zero activations.
func padRows(data []byte, r0, r1, rowStride, rowBytes int) []byte {
	if rowStride == rowBytes {
		return data[r0*rowStride : r1*rowStride]
	}
	out := make([]byte, (r1-r0)*rowBytes)
	for r := r0; r < r1; r++ {
		copy(out[(r-r0)*rowBytes:], data[r*rowStride:(r+1)*rowStride])
	}
	return out
}

// pad4 extends b with zero bytes to a multiple of 4 (writeBuffer and buffer sizes need it).
func pad4(b []byte) []byte {
	if len(b)%4 == 0 {
		return b
	}
	return append(b[:len(b):len(b)], make([]byte, 4-len(b)%4)...)
}

// Tuning is the launch shape of the kernels.
type Tuning struct {
	// GEMV: the kernel (shaders.GEMV or shaders.GEMVHW), threads per workgroup (power of two),
	// weight rows per workgroup.
	GEMVKernel              shaders.Kernel
	GEMVWorkgroup, GEMVRows int
	GEMVPrefetch            bool // gemv_hw.wgsl: load the next span while summing this one
	// GEMVInt8 runs GEMV with int8 activations (gemv_a8.wgsl)
	// where the weights fit (quant.Int8ActivationsFit) and the device has packed integer dot
	// products. A precision mode (Options.Int8Activations), off in every default Tuning.
	GEMVInt8 bool
	// GEMVInt8Workgroup, GEMVInt8Rows are gemv_a8.wgsl's launch shape (Rows 1..8 or 16); 0
	// takes GEMVWorkgroup, GEMVRows. GEMVInt8Wide replaces it for large weights.
	GEMVInt8Workgroup, GEMVInt8Rows int
	GEMVInt8Wide                    A8Wide
	// GEMVInt8Narrow, when its WG is set, is the shape of codes of at most its MaxBits bits
	// and at least its MinN rows that GEMVInt8Wide does not take (a 7B step's down projection:
	// 4096 rows of 11008 int4 codes). Unset in every default Tuning: on an H200 (run 54,
	// NOTES.md) that GEMV took 19.5 µs a layer at 64×8 and 22.5 at 256×8 against 16.3 at the
	// plain 128×8.
	GEMVInt8Narrow A8Wide
	// GEMVInt8Prepass quantizes x for the int8-activation GEMV in a dispatch of its own
	// (shaders.A8Quant) before MatMul's GEMV (key XQ), rather than in every workgroup: the
	// activations are quantized once, for one more dispatch (~5 µs on an H200). MatMul only;
	// the graph runtime keeps the kernel's own quantization.
	GEMVInt8Prepass bool
	// GEMVInt8Persist launches gemv_a8.wgsl with at most Groups workgroups along the rows (0:
	// one workgroup a row group), each looping over row groups with its activation row
	// quantized once into workgroup memory: room for MaxK activations (rows beyond it quantize
	// per span). Fewer workgroups quantize x fewer times and leave no partial last wave.
	GEMVInt8Persist A8Persist
	// GEMVInt8Prefetch, when > 0, has gemv_a8.wgsl launches of at most that many rows a
	// workgroup that read x quantized ahead (Key.XQ) load a thread's next span while they sum
	// this one (Key.Prefetch). Unset in every default Tuning: on an H200 (runs 58–59, NOTES.md)
	// a 7B step's q, k, v GEMV timed alone took 20.1 µs with it against 21.0, but the step
	// did not get faster (GPU 2.447–2.462 ms against 2.422–2.454), and at 16 rows (the SwiGLU
	// GEMV) it took 22.3 against 18.8.
	GEMVInt8Prefetch int
	// GEMM without workgroup memory: threads per workgroup (power of two), weight rows per
	// thread (1 or 2), activation rows per thread (4, 8, 12 or 16). Used when Tiles is empty.
	GEMMWorkgroup, GEMMRows, TM int
	// Tiles, when Tiles[0] is set, run shaders.GEMMTile for m > GEMVMaxM: the first tile whose
	// MaxM ≥ m, else the last one set. An array, not a slice, so Tunings compare with ==.
	Tiles [6]Tile
}

// A8Wide is the int8-activation GEMV's launch shape for large weights: codes of at most MaxBits
// bits and weights of at least MinN rows run WG threads × Rows rows a workgroup (WG 0: none).
// 16 rows halve the activations' quantization a weight (each workgroup quantizes x's whole
// row), and MinN/Rows workgroups still fill the GPU.
type A8Wide struct{ MinN, MaxBits, WG, Rows int }

// A8Persist is the int8-activation GEMV's persistent launch (Tuning.GEMVInt8Persist): at most
// Groups workgroups a dispatch, x rows of up to MaxK activations held in workgroup memory.
type A8Persist struct{ Groups, MaxK int }

// weightBuffers is the storage buffers one weight of a GEMV key binds: its codes (or floats),
// and for codes their scales, and for asymmetric codes their zero points.
func weightBuffers(k shaders.Key) int {
	switch {
	case !k.Quantized():
		return 1
	case k.Asym:
		return 3
	}
	return 2
}

// key is the persistent variant of an int8-activation GEMV key k (its Bits set).
func (p A8Persist) key(k shaders.Key) shaders.Key {
	if p.Groups <= 0 || k.XQ {
		return k
	}
	qb := quant.ActivationBlock(k.Bits)
	k.Persist, k.XCap = p.Groups, (p.MaxK+qb-1)/qb
	return k
}

// Tile is one launch shape of shaders.GEMMTile: WG threads per tile, WGM of them along M; each
// thread TM activation rows × TN weight rows; BK elements of K per workgroup-memory step; KS
// groups of WG threads splitting each step (0 or 1: one group); S slices of K across
// workgroups, added by a second dispatch (0 or 1: none; shaders.Key.KSlices).
type Tile struct{ MaxM, WG, WGM, TM, TN, BK, KS, S int }

func (t Tile) set() bool { return t.WG > 0 }

// key is the tile's variant of a base key (format fields set).
func (t Tile) key(k shaders.Key) shaders.Key {
	k.Kernel, k.WG, k.WGM, k.TM, k.Rows, k.BK, k.KSplit, k.KSlices = shaders.GEMMTile, t.WG, t.WGM, t.TM, t.TN, t.BK, t.KS, t.S
	return k
}

// DefaultTuning is the launch shape on hardware adapters, from sweeps on an NVIDIA H200 (Dawn
// over Vulkan; NOTES.md has the figures). With int8 activations (GEMVInt8, off here), int4 and
// int2 weights of ≥ 8192 rows run 64 threads × 16 rows (q4 16384²: 3664 GB/s against 2836 at
// 128×8), the rest 128 × 8 (q8 at every size, and 4096-row weights, where 16 rows make too few
// workgroups). GEMV: gemv_hw.wgsl, 128 threads × 8 rows, the fastest
// or within 5% of it on every GEMV case swept (1×4096² to 1×16384², int2/4/8), where 64×4 was
// 5-45% slower and prefetching the next span 5-30% slower (its registers cost more threads than
// its loads gain). GEMM: workgroup-memory tiles by m, each the fastest of the 21 of run 20's
// split sweep at its m (4096×4096 int4, TFLOP/s against the unsplit tiles' best): 16×64 split
// in two thread groups and K in 4 slices for m ≤ 16 (10.7 against 4.6), 32×64 with K in 4 to 32
// (14.4 against 9.4), 64×128 split with K in 4 to 64 (22.7 against 13.0), 128×64 with K in 4 to
// 128 (26.2 against 19.7), in 2 to 256 (27.3 against 24.7), unsplit beyond (27.9 at 512). With
// K in slices across workgroups a tile's grid fills the GPU where m is small (m = 128, n = 4096:
// 32 tiles of 128×64, 128 workgroups with 4 slices), for one more dispatch that adds the slices.
// The GEMM fields are the fallback where a device's workgroup memory cannot hold a tile.
var DefaultTuning = Tuning{
	GEMVKernel: shaders.GEMVHW, GEMVWorkgroup: 128, GEMVRows: 8,
	GEMVInt8Wide:  A8Wide{MinN: 8192, MaxBits: 4, WG: 64, Rows: 16},
	GEMMWorkgroup: 64, GEMMRows: 2, TM: 16,
	Tiles: [6]Tile{
		{MaxM: 16, WG: 64, WGM: 4, TM: 4, TN: 4, BK: 32, KS: 2, S: 4},
		{MaxM: 32, WG: 128, WGM: 8, TM: 4, TN: 4, BK: 32, S: 4},
		{MaxM: 64, WG: 256, WGM: 8, TM: 8, TN: 4, BK: 32, KS: 2, S: 4},
		{MaxM: 128, WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32, S: 4},
		{MaxM: 256, WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32, S: 2},
		{MaxM: 1 << 30, WG: 256, WGM: 16, TM: 8, TN: 4, BK: 32},
	},
}

// SoftwareTuning is the launch shape for CPU implementations of WebGPU: gemv.wgsl and gemm.wgsl,
// no workgroup memory. GEMM 64 threads × 2 weight rows × 16 activation rows per thread (TM 16 is
// the kernel's limit; one variant per format keeps SwiftShader's compiles at ~1-2 s each). GEMV
// 8 threads × 4 rows: SwiftShader runs a workgroup as 4-lane SIMD groups on its CPU threads, and
// few groups that each loop over many spans beat many groups of one span each (the sweep and its
// figures: NOTES.md, "SwiftShader's launch shape").
var SoftwareTuning = Tuning{GEMVKernel: shaders.GEMV, GEMVWorkgroup: 8, GEMVRows: 4, GEMMWorkgroup: 64, GEMMRows: 2, TM: 16}

// softwareNames are what software adapters put in GPUAdapterInfo when the browser does not set
// isFallbackAdapter for them: Firefox on lavapipe reports "llvmpipe (…)" and no flag, and a
// Chromium run with --use-vulkan=swiftshader (rather than its fallback adapter) says
// "swiftshader" in architecture or description.
var softwareNames = []string{"swiftshader", "llvmpipe", "lavapipe"}

// softwareAdapter reports whether info describes WebGPU emulated on the CPU.
func softwareAdapter(info webgpu.AdapterInfo) bool {
	if info.IsFallbackAdapter {
		return true
	}
	s := strings.ToLower(strings.Join([]string{info.Vendor, info.Architecture, info.Device, info.Description}, " "))
	for _, name := range softwareNames {
		if strings.Contains(s, name) {
			return true
		}
	}
	return false
}

// tuningFor is the launch shape New uses on an adapter unless Options.Tuning overrides it. The
// adapter class decides, not the vendor: a GPU wants many threads per row to hide memory latency
// and workgroup memory to reuse operands, a CPU emulation wants few workgroups' worth of
// barriers and scheduling. Each class's shape comes from sweeps measured on one adapter of it
// (NOTES.md); within a class, what the device grants decides (fit).
func tuningFor(info webgpu.AdapterInfo) Tuning {
	if softwareAdapter(info) {
		return SoftwareTuning
	}
	return DefaultTuning
}

// fit adapts the tiles to what a device grants: a tile whose split K steps need more threads
// than a workgroup may have runs unsplit; when workgroup memory cannot hold a tile, GEMM runs
// without workgroup memory. It says what it changed, for Caps.Notes.
func (tu Tuning) fit(l webgpu.Limits) (Tuning, string) {
	var notes []string
	maxThreads := min(l.MaxComputeInvocationsPerWorkgroup, l.MaxComputeWorkgroupSizeX)
	if p := tu.GEMVInt8Persist; p.Groups > 0 {
		// The largest workgroup memory any of its keys takes: int8 codes (the most blocks a K),
		// the widest workgroup, a norm.
		wg := max(tu.GEMVWorkgroup, tu.GEMVInt8Workgroup, tu.GEMVInt8Wide.WG)
		k := p.key(shaders.Key{Kernel: shaders.GEMVA8, Bits: 8, WG: wg, Norm: true})
		if over := k.WorkgroupBytes() - l.MaxComputeWorkgroupStorageSize; over > 0 {
			tu.GEMVInt8Persist.MaxK -= (over + 27) / 28 * 16 // 28 B a block of 16 int8 activations
			if tu.GEMVInt8Persist.MaxK < 16 {
				tu.GEMVInt8Persist = A8Persist{}
			}
			notes = append(notes, fmt.Sprintf("int8-activation GEMV holds x rows of %d activations, not %d: the device has %d B of workgroup memory",
				tu.GEMVInt8Persist.MaxK, p.MaxK, l.MaxComputeWorkgroupStorageSize))
		}
	}
	for i, t := range tu.Tiles {
		if !t.set() {
			continue
		}
		k := t.key(shaders.Key{Bits: 32})
		if t.KS > 1 && t.WG*t.KS > maxThreads {
			tu.Tiles[i].KS = 1
			notes = append(notes, fmt.Sprintf("tile %s unsplit: %d threads, the device allows %d", k.Name(), t.WG*t.KS, maxThreads))
			t.KS = 1
		}
		if b := k.WorkgroupBytes(); b > l.MaxComputeWorkgroupStorageSize || t.WG > maxThreads {
			tu.Tiles = [6]Tile{}
			return tu, fmt.Sprintf("GEMM without workgroup memory: tile %s needs %d B and %d threads, the device has %d B and %d",
				k.Name(), b, t.WG, l.MaxComputeWorkgroupStorageSize, maxThreads)
		}
	}
	return tu, strings.Join(notes, "; ")
}

// features are what the device grants that changes the variant: shader-f16, subgroups (with
// the subgroup_id builtin), and WGSL's packed_4x8_integer_dot_product (dot4I8Packed).
type features struct{ f16, subgroups, dot4 bool }

// keyFor picks the variant for a weight of n rows in format f and m activation rows. With
// tu.GEMVInt8 a GEMV whose weights fit runs gemv_a8.wgsl; any other keeps the f32 kernels.
func keyFor(f quant.Format, n, m int, feat features, tu Tuning) shaders.Key {
	k := shaders.Key{
		Bits: f.Bits, Asym: f.Scheme == quant.Asymmetric,
		ScaleF16: f.Scales == quant.ScaleF16, F16: feat.f16,
	}
	if f.Quantized() {
		// A vec4<u32> load holds 4·32/Bits codes; groups that are multiples of it (and
		// per-channel rows) need one scale per load.
		k.ScalePerVec = f.GroupSize == 0 || f.GroupSize%(4*32/f.Bits) == 0
	}
	switch {
	case m <= GEMVMaxM && tu.GEMVInt8 && feat.dot4 && quant.Int8ActivationsFit(f):
		k.Kernel, k.WG, k.Rows, k.Subgroups = shaders.GEMVA8, tu.GEMVWorkgroup, tu.GEMVRows, feat.subgroups
		if tu.GEMVInt8Workgroup > 0 {
			k.WG = tu.GEMVInt8Workgroup
		}
		if tu.GEMVInt8Rows > 0 {
			k.Rows = tu.GEMVInt8Rows
		}
		for _, w := range []A8Wide{tu.GEMVInt8Narrow, tu.GEMVInt8Wide} { // the wide shape wins
			if w.WG > 0 && n >= w.MinN && f.Bits <= w.MaxBits {
				k.WG, k.Rows = w.WG, w.Rows
			}
		}
		k = tu.GEMVInt8Persist.key(k)
	case m <= GEMVMaxM:
		k.Kernel, k.WG, k.Rows, k.Subgroups, k.Prefetch = tu.GEMVKernel, tu.GEMVWorkgroup, tu.GEMVRows, feat.subgroups, tu.GEMVPrefetch
	case tu.Tiles[0].set():
		k = tu.tileFor(m).key(k)
		if int64(k.KSlices)*int64(m)*int64(n)*4 > splitKMaxBytes {
			k.KSlices = 1 // the partial products would not fit the scratch: unsplit
		}
	default:
		k.Kernel, k.WG, k.Rows, k.TM = shaders.GEMM, tu.GEMMWorkgroup, tu.GEMMRows, tu.TM
	}
	return k.Normalize()
}

// readXQ has GEMVA8 key k read x quantized ahead (Key.XQ), loading a thread's next span ahead
// where the tuning says (GEMVInt8Prefetch).
func (tu Tuning) readXQ(k *shaders.Key) {
	k.XQ = true
	k.Prefetch = k.Rows <= tu.GEMVInt8Prefetch
}

// tileFor is the first tile whose MaxM covers m, else the last one set.
func (tu Tuning) tileFor(m int) Tile {
	var t Tile
	for _, c := range tu.Tiles {
		if !c.set() {
			break
		}
		t = c
		if m <= c.MaxM {
			break
		}
	}
	return t
}

// grid is the workgroup count of one dispatch of key over rows weight rows and m activation rows
// (A8Quant: rows is the activation blocks of a row).
func grid(k shaders.Key, rows, m int) (x, y int) {
	switch k.Kernel {
	case shaders.A8Quant:
		return (rows + k.WG - 1) / k.WG, m
	case shaders.GEMV, shaders.GEMVHW, shaders.GEMVA8:
		x = (rows + k.Rows - 1) / k.Rows
		if k.Persist > 0 {
			x = min(x, k.Persist) // each workgroup loops over row groups
		}
		return x, m
	case shaders.GEMMTile:
		bm, bn, _ := k.Tile()
		return (rows + bn - 1) / bn, (m + bm - 1) / bm * max(k.KSlices, 1)
	case shaders.GEMMReduce:
		return (rows + k.WG - 1) / k.WG, m
	}
	per := k.WG * k.Rows
	return (rows + per - 1) / per, (m + k.TM - 1) / k.TM
}

// rowsPerWorkgroup is the smallest row count one workgroup covers in any kernel, which bounds
// the rows of one dispatch by the device's workgroups-per-dimension limit.
func (tu Tuning) rowsPerWorkgroup() int {
	r := min(tu.GEMVRows, tu.GEMMWorkgroup*tu.GEMMRows)
	if tu.GEMVInt8Rows > 0 {
		r = min(r, tu.GEMVInt8Rows)
	}
	if tu.GEMVInt8Narrow.WG > 0 {
		r = min(r, tu.GEMVInt8Narrow.Rows)
	}
	for _, t := range tu.Tiles {
		if t.set() {
			r = min(r, t.WG/t.WGM*t.TN)
		}
	}
	return r
}

// paramBlock is the uniform block of every matmul dispatch: decode.wgsl's struct Params.
type paramBlock [12]uint32

// paramBytes is a paramBlock's size on the device.
const paramBytes = int64(unsafe.Sizeof(paramBlock{}))

// params is the uniform block of the dispatch over chunk c of a weight for m activation rows.
func params(l layout, c chunk, m int) paramBlock {
	return paramBlock{
		uint32(c.r1 - c.r0), uint32(l.k), uint32(l.kp), uint32(l.rowBytes / 4), uint32(l.groups),
		uint32(l.zeroBytes / 4), uint32(m), uint32(l.n), uint32(c.r0), uint32(max(l.group, 1)), groupShift(l.group), 0,
	}
}

// groupShift is decode.wgsl's params.group_shift: log2(group) for a power of two, else 32 (the
// kernels divide).
func groupShift(group int) uint32 {
	if group < 1 || group&(group-1) != 0 {
		return 32
	}
	return uint32(bits.TrailingZeros(uint(group)))
}

// padX copies x (m rows of k) into dst (m rows of kp), zero-filling each row's tail.
func padX(dst, x []float32, m, k, kp int) {
	for i := 0; i < m; i++ {
		copy(dst[i*kp:i*kp+k], x[i*k:(i+1)*k])
		clear(dst[i*kp+k : (i+1)*kp])
	}
}

// a8QuantWG is the pre-pass's threads per workgroup: one block of activations each.
const a8QuantWG = 64

// a8Quant is the pre-pass of an int8-activation GEMV key with XQ: its activations' blocks per
// row (of l's padded rows), its key, and the bytes of its output for m rows (gemv_a8.wgsl XS
// vec4<u32>s a block: the packed codes, then d, Σq and the shared offset).
func a8Quant(k shaders.Key, l layout, m int) (blocks int, qk shaders.Key, bytes int64) {
	qb := quant.ActivationBlock(k.Bits)
	xs := (qb/4 + 6) / 4
	qk = shaders.Key{Kernel: shaders.A8Quant, Bits: k.Bits, Asym: k.Asym, WG: a8QuantWG}.Normalize()
	return l.kp / qb, qk, int64(m*(l.kp/qb)*xs) * 16
}
