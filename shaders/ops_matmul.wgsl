// ops_matmul.wgsl: batched products of two activations (attention's q·kᵀ and p·v): y[b][i][j] =
// Σ_k a[b][i][k]·B[b][k][j], with B = b (variant AB, b is [K, N]) or bᵀ (variant ABT, b is [N, K]).
// One invocation per output (AB, ABT), or (AB_SPLIT, ABT_SPLIT) K split over a workgroup, or
// (ABT_GROUP, K ≤ 128) 32 lanes a row of b, a workgroup walking a chunk of rows, or (AB_SHORT,
// a softmax product over a short K) a slice of outputs a workgroup, its softmax in one pass. Attention's
// operands are small (T×Dh per head) and read from cache; the weight products, which are large,
// go through gemv.wgsl and gemm.wgsl instead. Sums are scaled by params.alpha.
//
// With SOFTMAX (a·b only), a holds the scores a softmax over K would turn into the weights a·b
// reads (attention's p·v after its masked softmax): the product normalizes each row as it reads
// it, as ops_softmax.wgsl would (e = exp(x − max) where the mask keeps the entry, else 0, times
// 1/Σe), so the softmax is not a dispatch of its own. SMASK: the mask at binding 4, broadcast
// as ops_softmax.wgsl's (rank, dims, ms, mlast; ops_mask.wgsl). With SOFTMAX, K may also be
// split over workgroups (AB_CHUNKS, then AB_MERGE: flash decoding, below).
//
// With ROPE, a holds a table rotation's input, rotated as it is read (ops_state_rope.wgsl; cos
// and sin at bindings 5 and 6): a decode step's query, whose rotation is then no dispatch.
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
  rope_h: u32, // ROPE: H and P of a's rotation
  // SOFTMAX SMASK: the mask's layout, as ops_softmax.wgsl's Params.
  rank: u32,
  mlast: u32,
  rope_half: u32,
  chunk: u32, // ABT_GROUP, AB_CHUNKS: keys a workgroup computes

  dims: array<vec4<u32>, 2>,
  ms: array<vec4<u32>, 2>,
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

// Elements e + q·stride (q < 4) of b, 0 where i + q ≥ len (i is e's index along that axis): two
// words of an f16 state where they are adjacent and the first starts a word, else element by
// element (ABT_GROUP along K, AB_CHUNKS along N).
fn load_b4_along(e: u32, i: u32, stride: u32, len: u32) -> vec4<f32> {
#if F16
  if (stride == 1u && (e & 1u) == 0u && i + 4u <= len) {
    return vec4<f32>(unpack2x16float(st[e / 2u]), unpack2x16float(st[e / 2u + 1u]));
  }
#endif
  var v = vec4<f32>(0.0);
  for (var q = 0u; q < 4u; q++) {
    if (i + q < len) {
      v[q] = load_b(e + q * stride);
    }
  }
  return v;
}

#if ROPE
@group(0) @binding(5) var<storage, read> cos_t: array<f32>;
@group(0) @binding(6) var<storage, read> sin_t: array<f32>;

fn rope_x(i: u32) -> f32 {
  return a[i];
}

fn load_a(e: u32) -> f32 {
  return rotated(e);
}
#else
fn load_a(e: u32) -> f32 {
  return a[e];
}
#endif

#if SOFTMAX
// exp(x − mx) where the mask keeps entry c, else 0: ops_softmax.wgsl's numerator.
fn softmax_e(x: f32, mx: f32, mb: u32, c: u32) -> f32 {
  return select(0.0, exp(x - mx), kept(mb, c));
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

#if SOFTMAX
#if SPLIT
// SOFTMAX: one chunk of K's softmax weights, shared by the workgroup's outputs.
var<workgroup> pw: array<f32, WG>;
#endif
#endif

#if ABT_GROUP
// a·bᵀ of a long cache (q·kᵀ of one token: K = Dh ≤ 128, N the cached keys): a workgroup computes
// params.chunk outputs of one row of a, whose elements lane l of every group of 32 threads holds
// (4l … 4l+3, rotated once); each round, each group reads R rows of b (one per output), lane l
// its 4 elements of each, a row's 32 partial sums then added in workgroup memory (no subgroups:
// nothing ties a group of 32 threads to one). ABT_PRELOAD (variant abt_preload): the same with a
// round's R rows loaded before any is used. Grid: batch·m·ceil(n/chunk) workgroups.
const LANES: u32 = 32u;
const R: u32 = 4u;
const KB: u32 = WG / LANES * R; // outputs a round
const PAD: u32 = LANES + 1u; // a row's partials, padded against bank conflicts
var<workgroup> part: array<f32, KB * PAD>;

// Elements e + q·sk (q < 4) of b, 0 past K (kk is e's index along K).
fn load_b4(e: u32, kk: u32) -> vec4<f32> {
  return load_b4_along(e, kk, params.sk, params.k);
}

#if ABT_PRELOAD
// Elements kk … kk+3 of row j of b, or of the chunk's last row (j1 − 1) past it (its sum is
// then dropped); 0 past K.
fn group_row(bt: u32, j: u32, j1: u32, kk: u32) -> vec4<f32> {
  let jc = min(j, j1 - 1u);
  return load_b4(b_index(bt, jc, kk), kk);
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let n = params.n;
  let k = params.k;
  let chunks = (n + params.chunk - 1u) / params.chunk;
  let g = flat_group(wid, nwg);
  let row = g / chunks; // bt·m + i
  let bt = row / params.m;
  let j0 = (g % chunks) * params.chunk;
  let j1 = min(n, j0 + params.chunk);
  let lane = tid % LANES;
  let grp = tid / LANES;
  let kk = lane * 4u;
  var qa = vec4<f32>(0.0);
  for (var q = 0u; q < 4u; q++) {
    if (kk + q < k) {
      qa[q] = load_a(row * k + kk + q);
    }
  }
  for (var jb = j0; jb < j1; jb += KB) { // uniform: the barriers stay in uniform control flow
#if ABT_PRELOAD
    // The round's R rows loaded before any is used, written out so that they stay in registers
    // (each dot and its store into part would otherwise wait for its load before the next row's
    // is issued: R trips to memory a round instead of one).
    let o0 = grp * R;
    let v0 = group_row(bt, jb + o0, j1, kk);
    let v1 = group_row(bt, jb + o0 + 1u, j1, kk);
    let v2 = group_row(bt, jb + o0 + 2u, j1, kk);
    let v3 = group_row(bt, jb + o0 + 3u, j1, kk);
    part[o0 * PAD + lane] = select(0.0, dot(qa, v0), jb + o0 < j1);
    part[(o0 + 1u) * PAD + lane] = select(0.0, dot(qa, v1), jb + o0 + 1u < j1);
    part[(o0 + 2u) * PAD + lane] = select(0.0, dot(qa, v2), jb + o0 + 2u < j1);
    part[(o0 + 3u) * PAD + lane] = select(0.0, dot(qa, v3), jb + o0 + 3u < j1);
#else
    for (var r = 0u; r < R; r++) {
      let o = grp * R + r;
      let j = jb + o;
      var s = 0.0;
      if (j < j1 && kk < k) {
        s = dot(qa, load_b4(b_index(bt, j, kk), kk));
      }
      part[o * PAD + lane] = s;
    }
#endif
    workgroupBarrier();
    // WG threads, WG/KB = 8 a row: 4 partials each, then 8 by the row's first.
    let per = WG / KB;
    let o = tid / per;
    let c = (tid % per) * (LANES / per);
    var t = 0.0;
    for (var q = 0u; q < LANES / per; q++) {
      t += part[o * PAD + c + q];
    }
    red[tid] = t;
    workgroupBarrier();
    if (tid < KB && jb + tid < j1) {
      var u = 0.0;
      for (var q = 0u; q < per; q++) {
        u += red[tid * per + q];
      }
      y[row * n + jb + tid] = u * params.alpha;
    }
  }
}
#endif

#if KEYSPLIT
// a·b with its softmax (attention's p·v of one token over a long cache) with K split over
// workgroups, flash decoding's two passes. The split kernel above gives a row only N/32
// workgroups (Dh 128: 4 a head), each walking all of K: at 2048 keys that is latency, not bytes.
// AB_CHUNKS: a workgroup takes params.chunk keys of one row and a slice of SLICE outputs, and
// writes the chunk's partials: its max m over the keys the mask keeps, l = Σe with e = exp(x − m)
// where kept (else 0, as softmax_e), and o[d] = Σe·b[key][d]. AB_MERGE: a workgroup per row and
// slice rescales the chunks to the row's max M, y[d] = Σ exp(m − M)·o[d] / Σ exp(m − M)·l (0
// where the row keeps nothing, as the one-pass kernels), times alpha.
//
// parts (binding 7, the backend's scratch): record rc = row·chunks + c holds m at 2rc and l at
// 2rc + 1; its o after every record's pair, at 2·rows·chunks + rc·n + d.
//
// Both kernels: lane l of each group of 32 threads owns the slice's outputs 4l … 4l+3 (two words
// of an f16 cache where they are adjacent); the GROUPS groups take every GROUPS-th key (chunk)
// and their sums are added in workgroup memory at the end. Grids: rows·chunks·slices workgroups
// (AB_CHUNKS), rows·slices (AB_MERGE).
@group(0) @binding(7) var<storage, read_write> parts: array<f32>;

const LANES: u32 = 32u;
const GROUPS: u32 = WG / LANES;
const SLICE: u32 = LANES * 4u; // outputs a workgroup

var<workgroup> sums: array<vec4<f32>, WG>;

fn chunks_of() -> u32 {
  return (params.k + params.chunk - 1u) / params.chunk;
}

fn slices_of() -> u32 {
  return (params.n + SLICE - 1u) / SLICE;
}

// An output of either kernel: a chunk's partial (AB_CHUNKS) or the product's (AB_MERGE).
fn put(i: u32, v: f32) {
#if AB_CHUNKS
  parts[i] = v;
#else
  y[i] = v;
#endif
}

// Adds s over the workgroup's groups and stores each output d0 + q (below N) of the first
// group's lanes, times scale, at base + d0 + q through put (AB_CHUNKS: parts, AB_MERGE: y).
// Call it in uniform control flow.
fn store_sums(s: vec4<f32>, tid: u32, base: u32, d0: u32, scale: f32) {
  sums[tid] = s;
  workgroupBarrier();
  if (tid < LANES) {
    var t = vec4<f32>(0.0);
    for (var g = 0u; g < GROUPS; g++) {
      t += sums[g * LANES + tid];
    }
    for (var q = 0u; q < 4u; q++) {
      if (d0 + q < params.n) {
        put(base + d0 + q, t[q] * scale);
      }
    }
  }
}
#endif

#if AB_CHUNKS
// One block of a chunk's weights e, shared by the workgroup's outputs.
var<workgroup> pw: array<f32, WG>;

// Outputs d0 … d0+3 of key j of b, or of the block's last key (end − 1) past it: its weight is 0.
fn block_row(bt: u32, d0: u32, j: u32, end: u32) -> vec4<f32> {
  return load_b4_along(b_index(bt, d0, min(j, end - 1u)), d0, params.sj, params.n);
}

// The weight of the block's key q, 0 past its last.
fn block_weight(q: u32, last: u32) -> f32 {
  return select(0.0, pw[min(q, WG - 1u)], q < last);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let n = params.n;
  let k = params.k;
  let rows = params.n_out / n;
  let chunks = chunks_of();
  let slices = slices_of();
  let g = flat_group(wid, nwg);
  if (g >= rows * chunks * slices) {
    return; // the whole workgroup: past the grid's end
  }
  let row = g / (chunks * slices);
  let c = (g / slices) % chunks;
  let sl = g % slices;
  let j0 = c * params.chunk;
  let j1 = min(k, j0 + params.chunk);
  let sb = row * k;
  let mb = mask_base(row);
  var mx = -3.402823e38;
  for (var j = j0 + tid; j < j1; j += WG) {
    if (kept(mb, j)) {
      mx = max(mx, a[sb + j]);
    }
  }
  mx = wg_reduce(mx, tid, true);
  let lane = tid % LANES;
  let grp = tid / LANES;
  let d0 = sl * SLICE + lane * 4u;
  let bt = row / params.m;
  var sum = 0.0;
  var s = vec4<f32>(0.0);
  for (var jb = j0; jb < j1; jb += WG) { // uniform: the barriers stay in uniform control flow
    let j = jb + tid;
    var e = 0.0;
    if (j < j1) {
      e = softmax_e(a[sb + j], mx, mb, j);
    }
    pw[tid] = e;
    sum += e;
    workgroupBarrier();
    let last = min(WG, j1 - jb); // keys of this block
    if (d0 < n) {
      for (var q = grp; q < last; q += 4u * GROUPS) {
        // Four rows loaded before any is added, written out so that they stay in registers.
        let v0 = block_row(bt, d0, jb + q, jb + last);
        let v1 = block_row(bt, d0, jb + q + GROUPS, jb + last);
        let v2 = block_row(bt, d0, jb + q + 2u * GROUPS, jb + last);
        let v3 = block_row(bt, d0, jb + q + 3u * GROUPS, jb + last);
        s += block_weight(q, last) * v0 + block_weight(q + GROUPS, last) * v1 +
             block_weight(q + 2u * GROUPS, last) * v2 + block_weight(q + 3u * GROUPS, last) * v3;
      }
    }
    workgroupBarrier();
  }
  sum = wg_reduce(sum, tid, false);
  let rc = row * chunks + c;
  store_sums(s, tid, 2u * rows * chunks + rc * n, d0, 1.0);
  if (tid == 0u && sl == 0u) {
    parts[2u * rc] = mx;
    parts[2u * rc + 1u] = sum;
  }
}
#endif

#if AB_MERGE
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let g = flat_group(wid, nwg);
  let slices = slices_of();
  let chunks = chunks_of();
  let n = params.n;
  let rows = params.n_out / n;
  if (g >= rows * slices) {
    return; // the whole workgroup: past the grid's end
  }
  let row = g / slices;
  let sl = g % slices;
  let r0 = row * chunks;
  var mx = -3.402823e38;
  for (var c = tid; c < chunks; c += WG) {
    mx = max(mx, parts[2u * (r0 + c)]);
  }
  mx = wg_reduce(mx, tid, true);
  var l = 0.0;
  for (var c = tid; c < chunks; c += WG) {
    l += exp(parts[2u * (r0 + c)] - mx) * parts[2u * (r0 + c) + 1u];
  }
  l = wg_reduce(l, tid, false);
  let d0 = sl * SLICE + tid % LANES * 4u;
  let ob = 2u * rows * chunks;
  var s = vec4<f32>(0.0);
  if (d0 < n) {
    for (var c = tid / LANES; c < chunks; c += GROUPS) {
      var o = vec4<f32>(0.0);
      for (var q = 0u; q < 4u; q++) {
        if (d0 + q < n) {
          o[q] = parts[ob + (r0 + c) * n + d0 + q];
        }
      }
      s += exp(parts[2u * (r0 + c)] - mx) * o;
    }
  }
  store_sums(s, tid, row * n, d0, select(0.0, 1.0 / l, l > 0.0) * params.alpha);
}
#endif

#if AB_SHORT
// a·b with its softmax where K is short (attention's p·v of one token over 128–1024 keys, where
// AB_SPLIT is latency, not bytes: it loads the scores three times, for the max, Σe and the
// weights, each after a workgroup reduction, and only then the values; ~25 barriers of 1024
// threads). A workgroup takes one row of a and a slice of params.chunk outputs (a power of two,
// 4 to 128): lane l of each group of chunk/4 threads owns the slice's outputs 4l … 4l+3 (two
// words of an f16 cache where they are adjacent), the WG/(chunk/4) groups take every
// groups-th key, R a round, each key's score, mask entry and values loaded together before any
// of them is used. A thread keeps flash decoding's partials of its keys: its max m over the
// kept ones, l = Σe and o = Σe·v with e = exp(x − m), rescaled as m grows. A group's lanes read
// the same keys, so their m and l agree and need no reduction; the groups merge in halves,
// rescaled to their common max (log2(groups) barriers), and the first group's lanes store
// o / l times alpha (0 where the row keeps nothing, as the one-pass kernels). Narrow slices give
// a row more workgroups (32 heads × 128 / chunk) at the price of reading its scores again in
// each. AB_SHORT_AHEAD (variant ab_short_ahead): a thread's next round of keys loaded before
// its round's are added, for caches a thread takes in several rounds. Grid: rows·ceil(n/chunk)
// workgroups.
const R: u32 = 4u;

var<workgroup> short_o: array<vec4<f32>, WG>;
var<workgroup> short_ml: array<vec2<f32>, WG>;

// Key j's score, whether the mask keeps it (and j < k: past K a thread reads K's last key with
// weight 0) and its outputs d0 … d0+3 of b.
struct ShortKey {
  x: f32,
  keep: bool,
  v: vec4<f32>,
}

fn short_key(sb: u32, mb: u32, bt: u32, d0: u32, j: u32) -> ShortKey {
  let jc = min(j, params.k - 1u);
  return ShortKey(a[sb + jc], j < params.k && kept(mb, jc), load_b4_along(b_index(bt, d0, jc), d0, params.sj, params.n));
}

// e of key q at the running max mx: 0 where it is not kept.
fn short_e(q: ShortKey, mx: f32) -> f32 {
  return select(0.0, exp(q.x - mx), q.keep);
}

// A thread's partials: its max m over the kept keys, l = Σe and o = Σe·v, e = exp(x − m).
struct ShortSums {
  m: f32,
  l: f32,
  o: vec4<f32>,
}

// s with a round's keys q0 … q3 added, rescaled to the new max.
fn short_add(s: ShortSums, q0: ShortKey, q1: ShortKey, q2: ShortKey, q3: ShortKey) -> ShortSums {
  var mx = s.m;
  mx = max(mx, select(s.m, q0.x, q0.keep));
  mx = max(mx, select(s.m, q1.x, q1.keep));
  mx = max(mx, select(s.m, q2.x, q2.keep));
  mx = max(mx, select(s.m, q3.x, q3.keep));
  let sc = exp(s.m - mx);
  let e0 = short_e(q0, mx);
  let e1 = short_e(q1, mx);
  let e2 = short_e(q2, mx);
  let e3 = short_e(q3, mx);
  return ShortSums(mx, s.l * sc + (e0 + e1 + e2 + e3), s.o * sc + (e0 * q0.v + e1 * q1.v + e2 * q2.v + e3 * q3.v));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let per = params.chunk / 4u; // lanes a key
  let groups = WG / per;
  let n = params.n;
  let k = params.k;
  let rows = params.n_out / n;
  let slices = (n + params.chunk - 1u) / params.chunk;
  let g = flat_group(wid, nwg);
  if (g >= rows * slices) {
    return; // the whole workgroup: past the grid's end
  }
  let row = g / slices;
  let grp = tid / per;
  let d0 = (g % slices) * params.chunk + (tid % per) * 4u;
  let bt = row / params.m;
  let sb = row * k;
  let mb = mask_base(row);
  var acc = ShortSums(-3.402823e38, 0.0, vec4<f32>(0.0));
  let step = R * groups;
#if AB_SHORT_AHEAD
  // The next round's keys loaded before this round's are added: two rounds in flight.
  var q0 = short_key(sb, mb, bt, d0, grp);
  var q1 = short_key(sb, mb, bt, d0, grp + groups);
  var q2 = short_key(sb, mb, bt, d0, grp + 2u * groups);
  var q3 = short_key(sb, mb, bt, d0, grp + 3u * groups);
  for (var j = grp; j < k; j += step) {
    let n0 = short_key(sb, mb, bt, d0, j + step);
    let n1 = short_key(sb, mb, bt, d0, j + step + groups);
    let n2 = short_key(sb, mb, bt, d0, j + step + 2u * groups);
    let n3 = short_key(sb, mb, bt, d0, j + step + 3u * groups);
    acc = short_add(acc, q0, q1, q2, q3);
    q0 = n0;
    q1 = n1;
    q2 = n2;
    q3 = n3;
  }
#else
  for (var j = grp; j < k; j += step) {
    // R keys loaded before any is used, written out so that they stay in registers.
    let q0 = short_key(sb, mb, bt, d0, j);
    let q1 = short_key(sb, mb, bt, d0, j + groups);
    let q2 = short_key(sb, mb, bt, d0, j + 2u * groups);
    let q3 = short_key(sb, mb, bt, d0, j + 3u * groups);
    acc = short_add(acc, q0, q1, q2, q3);
  }
#endif
  var m = acc.m;
  var l = acc.l;
  var o = acc.o;
  short_o[tid] = o;
  short_ml[tid] = vec2<f32>(m, l);
  workgroupBarrier();
  for (var s = groups / 2u; s > 0u; s >>= 1u) { // uniform: the barriers stay in uniform control flow
    if (grp < s) {
      let p = tid + s * per; // the same lane of group grp + s
      let ml = short_ml[p];
      let mx = max(m, ml.x);
      let s0 = exp(m - mx);
      let s1 = exp(ml.x - mx);
      l = l * s0 + ml.y * s1;
      o = o * s0 + short_o[p] * s1;
      m = mx;
      short_o[tid] = o;
      short_ml[tid] = vec2<f32>(m, l);
    }
    workgroupBarrier();
  }
  if (grp == 0u) {
    let scale = select(0.0, 1.0 / l, l > 0.0) * params.alpha;
    for (var q = 0u; q < 4u; q++) {
      if (d0 + q < n) {
        y[row * n + d0 + q] = o[q] * scale;
      }
    }
  }
}
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
#if SOFTMAX
  // The row's max and 1/Σe over the workgroup (every thread takes part, so the barriers stay in
  // uniform control flow; a workgroup past the last row reads the last row), then K in chunks of
  // WG: each weight computed once into pw, then read by the JT outputs.
  let srow = min(row, params.n_out / n - 1u);
  let sb = srow * k;
  let mb = mask_base(srow);
  var mx = -3.402823e38;
  for (var c = tid; c < k; c += WG) {
    if (kept(mb, c)) {
      mx = max(mx, a[sb + c]);
    }
  }
  mx = wg_reduce(mx, tid, true);
  var sum = 0.0;
  for (var c = tid; c < k; c += WG) {
    sum += softmax_e(a[sb + c], mx, mb, c);
  }
  sum = wg_reduce(sum, tid, false);
  let inv = select(0.0, 1.0 / sum, sum > 0.0);
  let bt = srow / params.m;
  for (var c0 = 0u; c0 < k; c0 += WG) {
    let c = c0 + tid;
    let cc = min(c, k - 1u);
    pw[tid] = select(0.0, softmax_e(a[sb + cc], mx, mb, cc) * inv, c < k);
    workgroupBarrier();
    if (live) {
      for (var q = k_lane(tid); q < WG && c0 + q < k; q += KS) {
        s += pw[q] * load_b(b_index(bt, j, c0 + q));
      }
    }
    workgroupBarrier();
  }
#else
  if (live) {
    let ab = row * k;
    let bt = row / params.m;
    for (var kk = k_lane(tid); kk < k; kk += KS) {
      s += load_a(ab + kk) * load_b(b_index(bt, j, kk));
    }
  }
#endif
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
#endif
#if PLAIN
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
#if SOFTMAX
  // The row's max and 1/Σe first, by this invocation alone (software adapters; short rows).
  let mb = mask_base(o / n);
  var mx = -3.402823e38;
  for (var kk = 0u; kk < k; kk++) {
    if (kept(mb, kk)) {
      mx = max(mx, a[ab + kk]);
    }
  }
  var sum = 0.0;
  for (var kk = 0u; kk < k; kk++) {
    sum += softmax_e(a[ab + kk], mx, mb, kk);
  }
  let inv = select(0.0, 1.0 / sum, sum > 0.0);
  for (var kk = 0u; kk < k; kk++) {
    s += softmax_e(a[ab + kk], mx, mb, kk) * inv * load_b(bb + kk * params.sk);
  }
#else
  for (var kk = 0u; kk < k; kk++) {
    s += load_a(ab + kk) * load_b(bb + kk * params.sk);
  }
#endif
  y[o] = s * params.alpha;
}
#endif
