// ops_pool.wgsl: y[b][c] = Σ_t mask[b][t]·x[b][t][c] / max(Σ_t mask[b][t], 1), x [B, T, D]. One
// invocation per output; entries with mask 0 are skipped, not multiplied (0·Inf would be NaN).

struct Params {
  b: u32,
  t: u32,
  d: u32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat_index(gid, nwg);
  if (o >= params.b * params.d) {
    return;
  }
  let b = o / params.d;
  let c = o % params.d;
  var acc = 0.0;
  var cnt = 0.0;
  for (var t = 0u; t < params.t; t++) {
    let m = mask[b * params.t + t];
    if (m != 0.0) {
      cnt += m;
      acc += m * x[(b * params.t + t) * params.d + c];
    }
  }
  y[o] = acc / max(cnt, 1.0);
}
