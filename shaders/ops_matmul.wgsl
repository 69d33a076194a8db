// ops_matmul.wgsl: batched products of two activations (attention's q·kᵀ and p·v): y[b][i][j] =
// Σ_k a[b][i][k]·B[b][k][j], with B = b (variant AB, b is [K, N]) or bᵀ (variant ABT, b is [N, K]).
// One invocation per output. Attention's operands are small (T×Dh per head) and read from
// cache; the weight products, which are large, go through gemv.wgsl and gemm.wgsl instead.

struct Params {
  n_out: u32, // batch·m·n
  m: u32,
  n: u32,
  k: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat_index(gid, nwg);
  if (o >= params.n_out) {
    return;
  }
  let n = params.n;
  let k = params.k;
  let mn = params.m * n;
  let bt = o / mn;
  let i = (o % mn) / n;
  let j = o % n;
  let ab = bt * params.m * k + i * k;
  var s = 0.0;
#if ABT
  let bb = bt * n * k + j * k;
  for (var kk = 0u; kk < k; kk++) {
    s += a[ab + kk] * b[bb + kk];
  }
#else
  let bb = bt * k * n + j;
  for (var kk = 0u; kk < k; kk++) {
    s += a[ab + kk] * b[bb + kk * n];
  }
#endif
  y[o] = s;
}
