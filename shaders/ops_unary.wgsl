// ops_unary.wgsl: y[i] = f(x[i]). Variants RELU, GELU, SILU, TANH, SCALE (graph's definitions:
// GELU with the exact normal CDF, SiLU x·σ(x)). The transcendental forms are chosen so that no
// intermediate overflows: WGSL leaves exp of a large argument and tanh near its limits
// implementation-defined, and the reference computes in float64.

struct Params {
  n: u32,
  scale: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7): GELU's error is then 0.75e-7·|x|, far
// below the 2e-4 the conformance suite allows, and WGSL has no erf.
fn erf(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(v) * (1.0 - p * exp(-a * a));
}

fn f(v: f32) -> f32 {
#if RELU
  return max(v, 0.0);
#endif
#if GELU
  return 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
#endif
#if SILU
  // σ from exp(−|v|) ≤ 1, never from exp(−v), which overflows for v ≪ 0.
  let e = exp(-abs(v));
  return v * select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
#endif
#if TANH
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
#endif
#if SCALE
  return v * params.scale;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i < params.n) {
    y[i] = f(x[i]);
  }
}
