// ops_common.wgsl: prepended to every op kernel of whole-graph execution (ops_*.wgsl). The header
// above it defines WG, the threads per workgroup.
//
// Grids are two-dimensional because WebGPU caps one dimension at 65535 workgroups and a graph's
// tensors are larger than 65535·WG elements; the backend picks (min(groups, 65535), ceil(…)) and
// the invocations past the end return.
//
// Shapes and strides travel in uniforms as array<vec4<u32>, 2>: rank ≤ 8 (the backend merges
// dimensions that are contiguous on both sides first, so a rank-6 transpose rarely needs 6).
// Kernels walk them in loops that read the uniform in place: a helper taking the arrays as
// arguments would copy them per call, which SwiftShader does through memory, lane by lane.

// Flat index of an invocation of a 2D grid of one-dimensional workgroups.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// Flat index of a workgroup of a 2D grid (row kernels: one workgroup per row).
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Workgroup memory of the row reductions (ops_norm, ops_softmax); kernels that do not reduce
// never touch it, so their pipelines do not allocate it.
var<workgroup> red: array<f32, WG>;

// Max (is_max) or sum of v over the workgroup, returned to every thread. Call it in uniform
// control flow; the trailing barrier lets red be reused at once.
fn wg_reduce(v: f32, tid: u32, is_max: bool) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red[tid] = select(red[tid] + red[tid + s], max(red[tid], red[tid + s]), is_max);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
