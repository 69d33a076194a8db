// ops_norm.wgsl: one workgroup per row of d elements, reductions through workgroup memory.
//   LAYERNORM  (x − mean)/√(var + eps)·gamma + beta   (biased variance, two passes: the
//              one-pass Σx² − mean² loses digits when |mean| ≫ std)
//   RMSNORM    x/√(mean(x²) + eps)·gamma
//   L2         x/√max(Σx², eps)
// The reference sums in float64; f32 partial sums over WG strided slices stay within the 2e-4
// the conformance suite allows for the d of real models.
// Each pass over the row takes U elements a thread a round (columns c, c + WG, … c + (U−1)·WG),
// all loaded before any is used: a loop with a bound known only at run time is not unrolled, and
// one load a round made a decode step's RMS norm (d 4096, 256 threads) 16 trips to memory in a
// row, 8.8 µs on an H200.

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

const U: u32 = 4u;

// xu is x's elements c + u·WG (u < U) of the row at base, 0 past d.
fn xu(base: u32, c: u32, d: u32) -> array<f32, U> {
  var v: array<f32, U>;
  for (var u = 0u; u < U; u++) {
    let i = c + u * WG;
    v[u] = select(0.0, x[base + min(i, d - 1u)], i < d);
  }
  return v;
}

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
  for (var c = tid; c < d; c += U * WG) {
    let v = xu(base, c, d);
    for (var u = 0u; u < U; u++) {
      s += v[u];
    }
  }
  let mean = wg_reduce(s, tid, false) / f32(d);
  var q = 0.0;
  for (var c = tid; c < d; c += U * WG) {
    let v = xu(base, c, d);
    for (var u = 0u; u < U; u++) {
      let e = select(0.0, v[u] - mean, c + u * WG < d);
      q += e * e;
    }
  }
  let inv = inverseSqrt(wg_reduce(q, tid, false) / f32(d) + params.eps);
#else
  var ss = 0.0;
  for (var c = tid; c < d; c += U * WG) {
    let v = xu(base, c, d);
    for (var u = 0u; u < U; u++) {
      ss += v[u] * v[u];
    }
  }
  let tot = wg_reduce(ss, tid, false);
#if RMSNORM
  let inv = inverseSqrt(tot / f32(d) + params.eps);
#else
  let inv = inverseSqrt(max(tot, params.eps));
#endif
#endif
  for (var c = tid; c < d; c += U * WG) {
    let v = xu(base, c, d);
    for (var u = 0u; u < U; u++) {
      let i = c + u * WG;
      if (i < d) {
#if LAYERNORM
        y[base + i] = (v[u] - mean) * inv * gamma[i] + beta[i];
#else
#if RMSNORM
        y[base + i] = v[u] * inv * gamma[i];
#else
        y[base + i] = v[u] * inv;
#endif
#endif
      }
    }
  }
}
