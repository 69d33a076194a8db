// ops_argmax.wgsl: the index of the largest element of each row of d elements (graph.ArgMax),
// one workgroup per row, as graph.FirstMax scans: ties go to the lowest index, and a NaN is
// never picked unless it is element 0 (a scan never leaves element 0 when it is NaN).
//
// Each element becomes an order key: its f32 bits mapped so that u32 order is float order, −0
// made +0 (they compare equal), a NaN at index 0 the largest key and a NaN elsewhere the
// smallest (below −∞, whose key is 0x007fffff). The row's answer is then the largest key, the
// lowest index among equal keys: an associative choice, reduced over the workgroup. Keys are
// made from the bits, not by comparisons with NaN, which WGSL lets an implementation fold away.

struct Params {
  rows: u32,
  d: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<u32>;

var<workgroup> rkey: array<u32, WG>;
var<workgroup> ridx: array<u32, WG>;

fn order_key(v: f32, c: u32) -> u32 {
  var b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) { // NaN
    return select(0u, 0xffffffffu, c == 0u);
  }
  if (b == 0x80000000u) {
    b = 0u;
  }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// better says whether (k, i) beats (bk, bi): a larger key, or the same key at a lower index.
fn better(k: u32, i: u32, bk: u32, bi: u32) -> bool {
  return k > bk || (k == bk && i < bi);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row = flat_group(wid, nwg);
  if (row >= params.rows) { // uniform across the workgroup: the barriers below stay uniform
    return;
  }
  let d = params.d;
  let base = row * d;
  var bk = 0u;
  var bi = 0xffffffffu; // no element yet: loses to any, even to a NaN's key 0 (lower index)
  for (var c = tid; c < d; c += WG) {
    let k = order_key(x[base + c], c);
    if (better(k, c, bk, bi)) {
      bk = k;
      bi = c;
    }
  }
  rkey[tid] = bk;
  ridx[tid] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s && better(rkey[tid + s], ridx[tid + s], rkey[tid], ridx[tid])) {
      rkey[tid] = rkey[tid + s];
      ridx[tid] = ridx[tid + s];
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    y[row] = ridx[0];
  }
}
