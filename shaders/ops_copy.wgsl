// ops_copy.wgsl: y[dbase + Σ idx·ds] = x[sbase + Σ idx·ss] over every index idx of dims. One kernel
// serves every layout op: transpose (ss permuted), slice (sbase at the start), concat (one
// dispatch per operand, dbase at its place) and the zero-padded x of a Linear whose weight rows
// are padded (lim: indices whose last coordinate is ≥ lim write 0). Elements are moved as u32
// bits, so int32 values (ids, positions) copy as they are.
//
// An invocation copies VEC consecutive elements along the last dimension: the offsets of a row
// take a division per dimension, which software adapters do lane by lane, so they are computed
// once per VEC elements rather than per element.

const VEC: u32 = 4u;

struct Params {
  n: u32,      // invocations: rows · chunks
  rank: u32,
  sbase: u32,
  dbase: u32,
  lim: u32,
  chunks: u32, // ceil(last dimension / VEC)
  _pad0: u32,
  _pad1: u32,
  dims: array<vec4<u32>, 2>,
  ss: array<vec4<u32>, 2>,
  ds: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  if (t >= params.n) {
    return;
  }
  let row = t / params.chunks;
  let c0 = (t - row * params.chunks) * VEC;
  let last = params.rank - 1u;
  var rem = row;
  var src = params.sbase;
  var dst = params.dbase;
  for (var j = last; j > 0u; j--) {
    let d = j - 1u;
    let n = params.dims[d >> 2u][d & 3u];
    let q = rem / n;
    let r = rem - q * n;
    src += r * params.ss[d >> 2u][d & 3u];
    dst += r * params.ds[d >> 2u][d & 3u];
    rem = q;
  }
  let len = params.dims[last >> 2u][last & 3u];
  let sl = params.ss[last >> 2u][last & 3u];
  let dl = params.ds[last >> 2u][last & 3u];
  for (var c = c0; c < min(c0 + VEC, len); c++) {
    var v = 0u;
    if (c < params.lim) {
      v = x[src + c * sl];
    }
    y[dst + c * dl] = v;
  }
}
