package gpu

import "github.com/nibble-ml/nibble/shaders"

// A GEMM may split K across workgroups (Tile.S, shaders.Key.KSlices): each slice's workgroups
// write partial products to a scratch buffer, and a second dispatch (gemm_reduce.wgsl) adds
// them into y. This file is that scheme's pure-Go part; matmul_bind_js.go binds it.

// splitKMaxBytes bounds the scratch of a GEMM split across workgroups along K: S·m·n floats of
// partial products. Larger products run unsplit; at that size tiles are plenty anyway (S·m·n·4
// = 64 MiB is m = 1024 by n = 4096 at S = 4). Below WebGPU's default
// maxStorageBufferBindingSize (128 MiB), so the scratch is one binding on every device.
const splitKMaxBytes = 64 << 20

// reduceWG is gemm_reduce.wgsl's threads per workgroup: one output each.
const reduceWG = 256

// reduceKey is the variant that adds the partial products of a GEMMTile key split along K.
func reduceKey(k shaders.Key) shaders.Key {
	return shaders.Key{Kernel: shaders.GEMMReduce, WG: reduceWG, KSlices: k.KSlices}.Normalize()
}

// partBytes is the scratch a GEMMTile key over m activation rows and rows weight rows writes
// its partial products to: 0 unless K is split across workgroups.
func partBytes(k shaders.Key, m, rows int) int64 {
	if k.KSlices < 2 {
		return 0
	}
	return int64(k.KSlices) * int64(m) * int64(rows) * 4
}
