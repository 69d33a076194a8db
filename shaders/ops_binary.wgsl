// ops_binary.wgsl: y = a ∘ b with NumPy broadcasting (variants ADD, SUB, MUL, DIV): y is dense
// over dims, and a and b are read at strides that are 0 along their broadcast dimensions.
// Variant SILU_MUL is SiLU(a)·b (a feed-forward's gate times its up projection), one dispatch
// where the graph has two; SiLU as ops_unary.wgsl computes it.
// Variant BIAS adds a row vector to y in place (Linear's bias after the matmul wrote y): a
// separate read binding of y would alias the writable one, which WebGPU rejects.

struct Params {
  n: u32,
  rank: u32,
  _pad0: u32,
  _pad1: u32,
  dims: array<vec4<u32>, 2>,
  sa: array<vec4<u32>, 2>,
  sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
#if !BIAS
@group(0) @binding(1) var<storage, read> a: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= params.n) {
    return;
  }
#if BIAS
  // dims[0].x is the row length N.
  y[i] = y[i] + b[i % params.dims[0].x];
#else
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var j = params.rank; j > 0u; j--) {
    let d = j - 1u;
    let n = params.dims[d >> 2u][d & 3u];
    let q = rem / n;
    let r = rem - q * n;
    ia += r * params.sa[d >> 2u][d & 3u];
    ib += r * params.sb[d >> 2u][d & 3u];
    rem = q;
  }
  let u = a[ia];
  let v = b[ib];
#if ADD
  y[i] = u + v;
#endif
#if SUB
  y[i] = u - v;
#endif
#if MUL
  y[i] = u * v;
#endif
#if DIV
  y[i] = u / v;
#endif
#if SILU_MUL
  let e = exp(-abs(u));
  y[i] = u * select(e / (1.0 + e), 1.0 / (1.0 + e), u >= 0.0) * v;
#endif
#endif
}
