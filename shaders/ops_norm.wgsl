// ops_norm.wgsl: one workgroup per row of d elements, reductions through workgroup memory.
//   LAYERNORM  (x − mean)/√(var + eps)·gamma + beta   (biased variance, two passes: the
//              one-pass Σx² − mean² loses digits when |mean| ≫ std)
//   RMSNORM    x/√(mean(x²) + eps)·gamma
//   L2         x/√max(Σx², eps)
// The reference sums in float64; f32 partial sums over WG strided slices stay within the 2e-4
// the conformance suite allows for the d of real models.

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#if !L2
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
#endif
#if LAYERNORM
@group(0) @binding(4) var<storage, read> beta: array<f32>;
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row = flat_group(wid, nwg);
  // Uniform: every thread of a workgroup has the same row, so the barriers stay reachable.
  if (row >= params.rows) {
    return;
  }
  let d = params.d;
  let base = row * d;
#if LAYERNORM
  var s = 0.0;
  for (var c = tid; c < d; c += WG) {
    s += x[base + c];
  }
  let mean = wg_reduce(s, tid, false) / f32(d);
  var v = 0.0;
  for (var c = tid; c < d; c += WG) {
    let e = x[base + c] - mean;
    v += e * e;
  }
  let inv = inverseSqrt(wg_reduce(v, tid, false) / f32(d) + params.eps);
  for (var c = tid; c < d; c += WG) {
    y[base + c] = (x[base + c] - mean) * inv * gamma[c] + beta[c];
  }
#else
  var ss = 0.0;
  for (var c = tid; c < d; c += WG) {
    let e = x[base + c];
    ss += e * e;
  }
  let tot = wg_reduce(ss, tid, false);
#if RMSNORM
  let inv = inverseSqrt(tot / f32(d) + params.eps);
  for (var c = tid; c < d; c += WG) {
    y[base + c] = x[base + c] * inv * gamma[c];
  }
#else
  let inv = inverseSqrt(max(tot, params.eps));
  for (var c = tid; c < d; c += WG) {
    y[base + c] = x[base + c] * inv;
  }
#endif
#endif
}
