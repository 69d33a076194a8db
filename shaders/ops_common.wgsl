// ops_common.wgsl: prepended to every op kernel of whole-graph execution (ops_*.wgsl). The header
// above it defines WG, the threads per workgroup.
//
// Grids are two-dimensional because WebGPU caps one dimension at 65535 workgroups and a graph's
// tensors are larger than 65535·WG elements; the backend picks (min(groups, 65535), ceil(…)) and
// the invocations past the end return.
//
// Shapes and strides travel in uniforms as array<vec4<u32>, 2>: rank ≤ 8 (the backend merges
// dimensions that are contiguous on both sides first, so a rank-6 transpose rarely needs 6).

// Flat index of an invocation of a 2D grid of one-dimensional workgroups.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// Flat index of a workgroup of a 2D grid (row kernels: one workgroup per row).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn at8(a: array<vec4<u32>, 2>, d: u32) -> u32 {
  return a[d / 4u][d % 4u];
}

// Offset of element i of a row-major shape dims (the first rank entries) under strides st.
fn strided(i: u32, rank: u32, dims: array<vec4<u32>, 2>, st: array<vec4<u32>, 2>) -> u32 {
  var rem = i;
  var off = 0u;
  for (var d = rank; d > 0u; d--) {
    let n = at8(dims, d - 1u);
    off += (rem % n) * at8(st, d - 1u);
    rem /= n;
  }
  return off;
}
