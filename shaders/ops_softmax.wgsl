// ops_softmax.wgsl: softmax over rows of d elements, one workgroup per row. Variant MASKED
// reads a float mask broadcast to x: entries where it is 0 get probability 0 (as an additive −∞
// would give), and a row with every entry masked is all zeros.
//
// The mask offset of a row is its coordinates (all but the last dimension of x, in dims) times
// the mask's strides (ms, 0 along broadcast dimensions); element c adds c·mlast.

struct Params {
  rows: u32,
  d: u32,
  rank: u32,  // dimensions of x before the last
  mlast: u32, // mask stride along the last dimension
  dims: array<vec4<u32>, 2>,
  ms: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#if MASKED
@group(0) @binding(3) var<storage, read> mask: array<f32>;
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row = flat_group(wid, nwg);
  if (row >= params.rows) {
    return;
  }
  let d = params.d;
  let base = row * d;
#if MASKED
  var rem = row;
  var mbase = 0u;
  for (var j = params.rank; j > 0u; j--) {
    let dd = j - 1u;
    let n = params.dims[dd >> 2u][dd & 3u];
    mbase += (rem % n) * params.ms[dd >> 2u][dd & 3u];
    rem /= n;
  }
#endif
  // −FLT_MAX stands for −∞: WGSL has no infinity literal. A row with nothing kept keeps it, and
  // every entry then writes 0.
  var mx = -3.402823e38;
  for (var c = tid; c < d; c += WG) {
#if MASKED
    if (mask[mbase + c * params.mlast] == 0.0) {
      continue;
    }
#endif
    mx = max(mx, x[base + c]);
  }
  mx = wg_reduce(mx, tid, true);
  var s = 0.0;
  for (var c = tid; c < d; c += WG) {
    var e = exp(x[base + c] - mx);
#if MASKED
    e = select(e, 0.0, mask[mbase + c * params.mlast] == 0.0);
#endif
    y[base + c] = e;
    s += e;
  }
  s = wg_reduce(s, tid, false);
  // Each thread rescales the entries it wrote: no barrier needed between the passes.
  let inv = select(0.0, 1.0 / s, s > 0.0);
  for (var c = tid; c < d; c += WG) {
    y[base + c] = y[base + c] * inv;
  }
}
