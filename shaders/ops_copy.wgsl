// ops_copy.wgsl: y[dbase + Σ idx·ds] = x[sbase + Σ idx·ss] over every index idx of dims. One kernel
// serves every layout op: transpose (ss permuted), slice (sbase at the start), concat (one
// dispatch per operand, dbase at its place) and the zero-padded x of a Linear whose weight rows
// are padded (lim: indices whose last coordinate is ≥ lim write 0). Elements are moved as u32
// bits, so int32 values (ids, positions) copy as they are.

struct Params {
  n: u32,
  rank: u32,
  sbase: u32,
  dbase: u32,
  lim: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  dims: array<vec4<u32>, 2>,
  ss: array<vec4<u32>, 2>,
  ds: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) {
    return;
  }
  let dst = params.dbase + strided(i, params.rank, params.dims, params.ds);
  if (i % at8(params.dims, params.rank - 1u) >= params.lim) {
    y[dst] = 0u;
    return;
  }
  y[dst] = x[params.sbase + strided(i, params.rank, params.dims, params.ss)];
}
