// ops_matmul.wgsl: batched products of two activations (attention's q·kᵀ and p·v): y[b][i][j] =
// Σ_k a[b][i][k]·B[b][k][j], with B = b (variant AB, b is [K, N]) or bᵀ (variant ABT, b is [N, K]).
// One invocation per output (AB, ABT), or (AB_SPLIT, ABT_SPLIT) K split over a workgroup. Attention's
// operands are small (T×Dh per head) and read from cache; the weight products, which are large,
// go through gemv.wgsl and gemm.wgsl instead. Sums are scaled by params.alpha.
//
// With STATE, b is a graph.State's buffer (a KV cache stored as f16 halves or int8 rows with
// scales), each element read through ops_state_load.wgsl: attention reads the cache in place
// instead of a copy converted to f32 every run. An f32 state is plain floats: no STATE needed.

struct Params {
  n_out: u32, // batch·m·n
  m: u32,
  n: u32,
  k: u32,
  // Element strides of b along its batch, output (j) and K axes: b need not be contiguous (the
  // backend reads a transposed KV cache in place rather than copying it).
  sb: u32,
  sj: u32,
  sk: u32,
  // Every sum is multiplied by alpha: 1, or the factor of a Scale the backend folded into the
  // product (attention's 1/√Dh after q·kᵀ: one dispatch, not two).
  alpha: f32,
  // STATE INT8: ops_state_load.wgsl's layout of the cache (elements per scaled row, first word
  // of the scales, words per scaled row).
  d: u32,
  scale_word: u32,
  wpr: u32,
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

#if STATE
@group(0) @binding(2) var<storage, read> st: array<u32>;

fn load_b(e: u32) -> f32 {
  return state_load(e);
}
#else
@group(0) @binding(2) var<storage, read> b: array<f32>;

fn load_b(e: u32) -> f32 {
  return b[e];
}
#endif

// Element (bt, k = kk, n = j) of B: b itself (AB) or bᵀ (ABT), through the strides.
fn b_index(bt: u32, j: u32, kk: u32) -> u32 {
  return bt * params.sb + j * params.sj + kk * params.sk;
}

#if AB_SPLIT
// a·b where K is long and the outputs few (p·v of one token over a long cache: 32 heads × 128
// outputs, K 2048, one invocation per output leaves most of a GPU idle, each walking all of K):
// a workgroup computes JT adjacent outputs of one row of a; its KS = WG/JT groups of JT threads
// each sum every KS-th k, reading JT adjacent elements of a row of b at a time.
const JT: u32 = 32u;
const KS: u32 = WG / JT;

fn out_lane(tid: u32) -> u32 { return tid % JT; }
fn k_lane(tid: u32) -> u32 { return tid / JT; }
fn partial(tid: u32, q: u32) -> u32 { return tid + q * JT; } // output tid's q-th sum
#endif
#if ABT_SPLIT
// a·bᵀ likewise (q·kᵀ of one token: K = Dh, 2048 outputs a head at a long cache, each reading a
// row of b that one invocation per output reads with a stride of K between neighbours): a
// workgroup computes JT outputs, each by KS = 32 threads reading adjacent elements of its row.
const KS: u32 = 32u;
const JT: u32 = WG / KS;

fn out_lane(tid: u32) -> u32 { return tid / KS; }
fn k_lane(tid: u32) -> u32 { return tid % KS; }
fn partial(tid: u32, q: u32) -> u32 { return tid + q; } // tid = the output's first thread
#endif

#if SPLIT
// The split products: then the KS partial sums of each output are added in workgroup memory.
// Grid: batch·m·ceil(n/JT) workgroups.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let n = params.n;
  let k = params.k;
  let jblocks = (n + JT - 1u) / JT;
  let g = flat_group(wid, nwg);
  let row = g / jblocks; // bt·m + i
  let jl = out_lane(tid);
  let j = (g % jblocks) * JT + jl;
  let live = row < params.n_out / n && j < n;
  var s = 0.0;
  if (live) {
    let ab = row * k;
    let bt = row / params.m;
    for (var kk = k_lane(tid); kk < k; kk += KS) {
      s += a[ab + kk] * load_b(b_index(bt, j, kk));
    }
  }
  red[tid] = s;
  workgroupBarrier();
  if (k_lane(tid) == 0u && live) {
    var t = 0.0;
    for (var q = 0u; q < KS; q++) {
      t += red[partial(tid, q)];
    }
    y[row * n + j] = t * params.alpha;
  }
}
#else
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
  let bb = b_index(bt, j, 0u);
  for (var kk = 0u; kk < k; kk++) {
    s += a[ab + kk] * load_b(bb + kk * params.sk);
  }
  y[o] = s * params.alpha;
}
#endif
