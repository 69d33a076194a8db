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
	"strings"

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
	GEMVWorkgroup, GEMVRows int // threads per workgroup (power of two), weight rows per workgroup
	// GEMM: threads per workgroup (power of two), weight rows per thread (1 or 2), activation
	// rows per thread (4, 8, 12 or 16).
	GEMMWorkgroup, GEMMRows, TM int
}

// DefaultTuning: GEMM 64 threads × 2 weight rows × 16 activation rows per thread: one decoded
// span serves 32 products of four elements, and a 4096-row weight still makes 32 workgroups per
// 16 activation rows, plenty for SwiftShader's CPU threads (not swept: TM 16 is the kernel's
// limit, and one variant per format keeps SwiftShader's compiles at ~1-2 s each). GEMV 128×4:
// on an H100 (Dawn/Vulkan, -nibble.gemv sweep of 32×8, 64×4, 64×8, 128×4, 256×2) it was the
// best or within 10% of the best for every format and shape of BenchmarkMatMul; 64×8 wins
// int2/int4 at 11008×4096 by ~15% but loses f32 at 4096×11008 by 25%.
var DefaultTuning = Tuning{GEMVWorkgroup: 128, GEMVRows: 4, GEMMWorkgroup: 64, GEMMRows: 2, TM: 16}

// SoftwareTuning is DefaultTuning with the GEMV shape for CPU implementations of WebGPU. GEMV
// 8×4: on SwiftShader (headless Chromium, 2 CPU cores, shared and noisy) a -nibble.gemv sweep of
// int4 g32 over 20 shapes from 1×8 to 256×1 put 8×4 at 67-128 ms for 1×4096×4096 (median of 3:
// 73), 207-465 ms for 1×11008×4096 (238) and 143-589 ms for 1×4096×11008 (205), against
// 689-1216, 1283-3785 and 700-1696 ms for 128×4, five to eight times slower; 4×4, 4×8 and
// 8×8 were within the noise of 8×4, ≥ 32 threads at least twice as slow, 256×1 ten seconds.
// Why, as far as the sweep shows (not profiled): SwiftShader runs a workgroup as 4-lane SIMD
// groups (its subgroups, size 4) on 2 CPU threads, switching between groups at each barrier. At
// 128 threads a 4096-long int4 row is one span per thread: every group pays the setup, the
// subgroupAdd, the barrier and a 32-entry final sum for one span per row. At 8 threads, 2 groups
// each loop over 16 spans with the x of a span in registers for 4 rows. Below 4 threads lanes go
// idle (1×8: 359 ms).
var SoftwareTuning = Tuning{GEMVWorkgroup: 8, GEMVRows: 4, GEMMWorkgroup: 64, GEMMRows: 2, TM: 16}

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
// adapter class decides, not the adapter: a GPU wants many threads per row to hide memory
// latency, a CPU emulation wants few workgroups' worth of barriers and scheduling.
func tuningFor(info webgpu.AdapterInfo) Tuning {
	if softwareAdapter(info) {
		return SoftwareTuning
	}
	return DefaultTuning
}

// features are what the device grants that changes the variant.
type features struct{ f16, subgroups bool }

// keyFor picks the variant for a weight format and an activation row count.
func keyFor(f quant.Format, m int, feat features, tu Tuning) shaders.Key {
	k := shaders.Key{
		Bits: f.Bits, Asym: f.Scheme == quant.Asymmetric,
		ScaleF16: f.Scales == quant.ScaleF16, F16: feat.f16,
	}
	if f.Quantized() {
		// A vec4<u32> load holds 4·32/Bits codes; groups that are multiples of it (and
		// per-channel rows) need one scale per load.
		k.ScalePerVec = f.GroupSize == 0 || f.GroupSize%(4*32/f.Bits) == 0
	}
	if m <= GEMVMaxM {
		k.Kernel, k.WG, k.Rows, k.Subgroups = shaders.GEMV, tu.GEMVWorkgroup, tu.GEMVRows, feat.subgroups
	} else {
		k.Kernel, k.WG, k.Rows, k.TM = shaders.GEMM, tu.GEMMWorkgroup, tu.GEMMRows, tu.TM
	}
	return k.Normalize()
}

// grid is the workgroup count of one dispatch of key over rows weight rows and m activation rows.
func grid(k shaders.Key, rows, m int) (x, y int) {
	if k.Kernel == shaders.GEMV {
		return (rows + k.Rows - 1) / k.Rows, m
	}
	per := k.WG * k.Rows
	return (rows + per - 1) / per, (m + k.TM - 1) / k.TM
}

// rowsPerWorkgroup is the smallest row count one workgroup covers in any kernel, which bounds
// the rows of one dispatch by the device's workgroups-per-dimension limit.
func (tu Tuning) rowsPerWorkgroup() int { return min(tu.GEMVRows, tu.GEMMWorkgroup*tu.GEMMRows) }

// params is the uniform block of decode.wgsl (struct Params), 12 u32.
func params(l layout, c chunk, m int) [12]uint32 {
	return [12]uint32{
		uint32(c.r1 - c.r0), uint32(l.k), uint32(l.kp), uint32(l.rowBytes / 4), uint32(l.groups),
		uint32(l.zeroBytes / 4), uint32(m), uint32(l.n), uint32(c.r0), uint32(max(l.group, 1)), 0, 0,
	}
}

// padX copies x (m rows of k) into dst (m rows of kp), zero-filling each row's tail.
func padX(dst, x []float32, m, k, kp int) {
	for i := 0; i < m; i++ {
		copy(dst[i*kp:i*kp+k], x[i*k:(i+1)*k])
		clear(dst[i*kp+k : (i+1)*kp])
	}
}
