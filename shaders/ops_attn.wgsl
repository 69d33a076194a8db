// ops_attn.wgsl: one token's attention as one dispatch (the backend's attention plan, attn.go):
// for each row of q, the scores s_j = alpha·q·k_j over the n cached keys, the softmax over them
// (SMASK: a key the mask drops weighs 0, and a row that keeps none is all zeros, as
// ops_softmax.wgsl), and y = beta·Σ_j p_j·v_j. q·kᵀ (ops_matmul.wgsl ABT_GROUP) and p·v with its
// softmax (AB_SPLIT SOFTMAX) were two dispatches, each bound by latency and fixed cost at a decode
// step's short caches; here the scores never leave workgroup memory.
//
// A workgroup per row of q: rows = batch·m, and row r reads batch r / m of the keys and values,
// so the query heads that share a KV head (grouped-query attention) are rows of one batch.
//   Scores: LK = 8 lanes a key, lane l holding the query's elements 32c + 4l … +3 (c < 4: k ≤ 128);
// each lane group scores R keys a round, their 8 partial sums added in workgroup memory, each
// score kept in sc (KEYS ≥ n, from the header). The next round's keys are loaded before the
// round's barriers.
//   Product: lane l of each group of 32 threads owns outputs 4l … 4l+3 (dv ≤ 128), group g takes
// keys g, g + GROUPS, …: its own max m_g over the kept ones, l_g = Σ exp(s − m_g) and
// o_g = Σ exp(s − m_g)·v; then the groups merge, rescaled to their common max (flash decoding's
// merge, inside one workgroup), so the row's max and sum need no reduction of their own. A
// group's first two blocks of value rows are loaded before the scores: at short caches the
// values' latency overlaps the keys'.
//
// SPLIT (Variant "split"): a workgroup per chunk of KEYS keys of a row (grid: chunks × rows),
// so that a row's keys spread over the GPU where one workgroup a row leaves most of it idle and
// walks its keys one round after another. Each workgroup computes its chunk's max, Σe and Σe·v
// as above; with one chunk it stores the row, with more it hands them over (binding 8) and
// counts itself at the row's counter, and the row's last workgroup merges the chunks (below).
//
// WARM (variant decode, OpKey.Warm): the workgroups past the rows read the weights of the GEMV
// that reads this attention's output (its codes at binding 9, its scales at 10), one vec4 in
// every 32 bytes (an L2 sector), so that the GEMV finds them in the L2: at a short cache one
// token's attention keeps a few SMs and little of the memory's bandwidth busy for several µs.
//
// With STATE, the keys (binding 2) and values (binding 7) are two graph.States of one format and
// shape read in place (ops_state_load.wgsl's layout; int8 through its word helpers, for both
// buffers); without, plain f32 (values, or f32 states). With ROPE, q holds a table rotation's
// input, rotated as it is read (ops_state_rope.wgsl; cos and sin at bindings 5 and 6).

struct Params {
  rows: u32, // rows of q, a workgroup each
  m: u32,    // rows of q a batch
  n: u32,    // keys (≤ KEYS)
  k: u32,    // elements of a query and of a key (≤ 128)
  // Element strides of the keys along their batch, key and element axes (ops_matmul.wgsl's b of
  // a·bᵀ: a transposed cache read in place).
  sb: u32,
  sj: u32,
  sk: u32,
  alpha: f32, // the scores' factor (a Scale after q·kᵀ: 1/√Dh)
  // STATE INT8: ops_state_load.wgsl's layout, the keys' and the values' alike.
  d: u32,
  scale_word: u32,
  wpr: u32,
  rope_h: u32, // ROPE: H and P of q's rotation
  // SMASK: the mask's layout, as ops_softmax.wgsl's Params.
  rank: u32,
  mlast: u32,
  rope_half: u32,
  dv: u32, // outputs a row: elements of a value (≤ 128)
  // Element strides of the values along their batch, output and key axes (b of a·b).
  vb: u32,
  vj: u32,
  vk: u32,
  beta: f32, // the outputs' factor (a Scale after p·v; 1 without)
  dims: array<vec4<u32>, 2>,
  ms: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> query: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

#if STATE
@group(0) @binding(2) var<storage, read> st: array<u32>; // the keys' state
@group(0) @binding(7) var<storage, read> sv: array<u32>; // the values'

// Word w of the values' state (values) or the keys'.
fn cache_word(values: bool, w: u32) -> u32 {
  if (values) {
    return sv[w];
  }
  return st[w];
}

// Element e of the values (values) or the keys.
fn cache_at(values: bool, e: u32) -> f32 {
#if F16
  return unpack2x16float(cache_word(values, e / 2u))[e & 1u];
#else
  return state_int8(e, cache_word(values, state_int8_word(e)), cache_word(values, state_int8_scale(e)));
#endif
}
#else
@group(0) @binding(2) var<storage, read> key_f32: array<f32>;
@group(0) @binding(7) var<storage, read> value_f32: array<f32>;

fn cache_at(values: bool, e: u32) -> f32 {
  if (values) {
    return value_f32[e];
  }
  return key_f32[e];
}
#endif

// Elements e + i·stride (i < 4) of the values or keys, 0 where at + i ≥ len (at is e's index
// along that axis): two words of an f16 state where they are adjacent and the first starts a
// word, else element by element.
fn cache4(values: bool, e: u32, at: u32, stride: u32, len: u32) -> vec4<f32> {
#if F16
  if (stride == 1u && (e & 1u) == 0u && at + 4u <= len) {
    return vec4<f32>(unpack2x16float(cache_word(values, e / 2u)), unpack2x16float(cache_word(values, e / 2u + 1u)));
  }
#endif
  var v = vec4<f32>(0.0);
  for (var i = 0u; i < 4u; i++) {
    if (at + i < len) {
      v[i] = cache_at(values, e + i * stride);
    }
  }
  return v;
}

#if ROPE
@group(0) @binding(5) var<storage, read> cos_t: array<f32>;
@group(0) @binding(6) var<storage, read> sin_t: array<f32>;

fn rope_x(i: u32) -> f32 {
  return query[i];
}

fn query_at(i: u32) -> f32 {
  return rotated(i);
}
#else
fn query_at(i: u32) -> f32 {
  return query[i];
}
#endif

#if WARM
@group(0) @binding(9) var<storage, read> warm_w: array<vec4<u32>>;
@group(0) @binding(10) var<storage, read> warm_s: array<vec4<u32>>;
// Written only if the loads' XOR is one value of 2¹²⁸: the store keeps the loads.
@group(0) @binding(11) var<storage, read_write> warm_sink: array<u32>;

// warm reads every other vec4 of warm_w and warm_s (thread t of threads): two of each a trip,
// each index clamped rather than branched around, so the four are in flight together (the
// scales, the shorter, read their last vec4 again once past their end).
fn warm(t: u32, threads: u32) {
  var acc = vec4<u32>(0u);
  let step = 2u * threads;
  let nw = arrayLength(&warm_w);
  let ns = arrayLength(&warm_s);
  for (var i = 2u * t; i < max(nw, ns); i += 2u * step) {
    let j = i + step;
    acc ^= (warm_w[min(i, nw - 1u)] ^ warm_w[min(j, nw - 1u)]) ^ (warm_s[min(i, ns - 1u)] ^ warm_s[min(j, ns - 1u)]);
  }
  if (all(acc == vec4<u32>(0x9e3779b9u, 0x7f4a7c15u, 0xf39cc060u, 0x2545f491u))) {
    warm_sink[0] = acc.x;
  }
}
#endif

// The keys of this workgroup: kb0 … kb0 + nk − 1 (SPLIT: its chunk's; else all n). Scores,
// value rows and weights below are indexed from kb0.
var<private> kb0: u32;
var<private> nk: u32;

const LK: u32 = 8u; // lanes a key
const R: u32 = 2u; // keys a lane group scores a round
const SLOTS: u32 = WG / LK; // lane groups
const KB: u32 = SLOTS * R; // keys a round
const LANES: u32 = 32u; // lanes of the outputs
const GROUPS: u32 = WG / LANES;
const HALF: u32 = GROUPS / 2u;
const MASKED: u32 = 0xff7fffffu; // −FLT_MAX's bits: the score of a key the mask drops
const LOWEST: f32 = -3.402823e38;

var<workgroup> sc: array<f32, KEYS>;
// A round's partial scores (KB keys × LK lanes); then the upper half of the groups' outputs
// (HALF·LANES vec4s: as many floats).
var<workgroup> part: array<f32, KB * LK>;
var<workgroup> merged: array<vec2<f32>, HALF>; // those groups' max and Σe

// A lane's four chunks of a query or a key: elements 32c + 4l … +3 in chunk c.
struct Chunks {
  c0: vec4<f32>,
  c1: vec4<f32>,
  c2: vec4<f32>,
  c3: vec4<f32>,
}

// Elements at … at+3 of query row row, 0 past k. No branch around a load: a load inside a
// branch whose block also uses it makes the thread wait for it before the next block's loads
// are issued, a trip to memory each; these are all in flight at once.
fn query4(row: u32, at: u32) -> vec4<f32> {
  let k = params.k;
  let b = row * k;
  return vec4<f32>(select(0.0, query_at(b + min(at, k - 1u)), at < k), select(0.0, query_at(b + min(at + 1u, k - 1u)), at + 1u < k),
                   select(0.0, query_at(b + min(at + 2u, k - 1u)), at + 2u < k), select(0.0, query_at(b + min(at + 3u, k - 1u)), at + 3u < k));
}

fn query_chunks(row: u32, l: u32) -> Chunks {
  return Chunks(query4(row, 4u * l), query4(row, 4u * l + 32u), query4(row, 4u * l + 64u), query4(row, 4u * l + 96u));
}

#if ALIGNED
// ALIGNED (an f16 state whose keys and values lie along words: element strides 1, the other
// strides and k and dv even multiples of 4 where it matters, see attn_js.go): four elements
// from word w (kept within the buffer) with no branch around the loads, 0 where ok is false.
fn key_words4(w: u32, ok: bool) -> vec4<f32> {
  let i = min(w, arrayLength(&st) - 2u);
  return select(vec4<f32>(0.0), vec4<f32>(unpack2x16float(st[i]), unpack2x16float(st[i + 1u])), ok);
}

fn value_words4(w: u32, ok: bool) -> vec4<f32> {
  let i = min(w, arrayLength(&sv) - 2u);
  return select(vec4<f32>(0.0), vec4<f32>(unpack2x16float(sv[i]), unpack2x16float(sv[i + 1u])), ok);
}
#endif

// Lane l's chunks of key j (below n) of batch bt.
fn key_chunks(bt: u32, j: u32, l: u32) -> Chunks {
#if ALIGNED
  let w = (bt * params.sb + j * params.sj) / 2u + 2u * l;
  let k = params.k;
  return Chunks(key_words4(w, 4u * l + 4u <= k), key_words4(w + 16u, 4u * l + 36u <= k), key_words4(w + 32u, 4u * l + 68u <= k),
                key_words4(w + 48u, 4u * l + 100u <= k));
#else
  let e = bt * params.sb + j * params.sj + 4u * l * params.sk;
  let s32 = 32u * params.sk;
  let k = params.k;
  return Chunks(cache4(false, e, 4u * l, params.sk, k), cache4(false, e + s32, 4u * l + 32u, params.sk, k),
                cache4(false, e + 2u * s32, 4u * l + 64u, params.sk, k), cache4(false, e + 3u * s32, 4u * l + 96u, params.sk, k));
#endif
}

fn chunks_dot(a: Chunks, b: Chunks) -> f32 {
  return dot(a.c0, b.c0) + dot(a.c1, b.c1) + dot(a.c2, b.c2) + dot(a.c3, b.c3);
}

// Four value rows: keys j, j + GROUPS, j + 2·GROUPS, j + 3·GROUPS.
struct Rows {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

// Outputs d0 … d0+3 of value row kb0 + j of batch bt; 0 past the workgroup's keys (no load, or
// with ALIGNED a load of its last key's row, dropped).
fn value4(bt: u32, d0: u32, j: u32) -> vec4<f32> {
#if ALIGNED
  let jj = kb0 + min(j, nk - 1u);
  return value_words4((bt * params.vb + jj * params.vk) / 2u + d0 / 2u, j < nk && d0 + 4u <= params.dv);
#else
  if (j >= nk) {
    return vec4<f32>(0.0);
  }
  return cache4(true, bt * params.vb + (kb0 + j) * params.vk + d0 * params.vj, d0, params.vj, params.dv);
#endif
}

fn value_rows(bt: u32, d0: u32, j: u32) -> Rows {
  return Rows(value4(bt, d0, j), value4(bt, d0, j + GROUPS), value4(bt, d0, j + 2u * GROUPS), value4(bt, d0, j + 3u * GROUPS));
}

// exp(s_j − mx) where key kb0 + j exists and the mask keeps it, else 0.
fn weight(j: u32, mx: f32) -> f32 {
  if (j >= nk) {
    return 0.0;
  }
  let s = sc[j];
  return select(exp(s - mx), 0.0, bitcast<u32>(s) == MASKED);
}

// A group's partial result: its max, Σe and Σe·v.
struct Partial {
  mx: f32,
  l: f32,
  o: vec4<f32>,
}

// Slot h's partial (lane's outputs) as the upper half left it.
fn slot_partial(h: u32, lane: u32) -> Partial {
  let b = 4u * (h * LANES + lane);
  let ml = merged[h];
  return Partial(ml.x, ml.y, vec4<f32>(part[b], part[b + 1u], part[b + 2u], part[b + 3u]));
}

fn put_partial(h: u32, lane: u32, p: Partial) {
  let b = 4u * (h * LANES + lane);
  for (var i = 0u; i < 4u; i++) {
    part[b + i] = p.o[i];
  }
  if (lane == 0u) {
    merged[h] = vec2<f32>(p.mx, p.l);
  }
}

// a and b rescaled to their common max and added.
fn merge(a: Partial, b: Partial) -> Partial {
  let mx = max(a.mx, b.mx);
  let fa = exp(a.mx - mx);
  let fb = exp(b.mx - mx);
  return Partial(mx, a.l * fa + b.l * fb, a.o * fa + b.o * fb);
}

// Scores of the workgroup's keys (n of them, from key kb0: main's, uniform, as its private
// copies are not to the uniformity analysis) into sc (MASKED where the mask drops one).
fn scores(row: u32, bt: u32, tid: u32, kb0: u32, n: u32) {
  let mb = mask_base(row);
  let slot = tid / LK;
  let l = tid % LK;
  let qc = query_chunks(row, l);
  var k0 = key_chunks(bt, kb0 + min(slot, n - 1u), l);
  var k1 = key_chunks(bt, kb0 + min(slot + SLOTS, n - 1u), l);
  for (var jb = 0u; jb < n; jb += KB) { // uniform: the barriers stay in uniform control flow
    let keep = kept(mb, kb0 + min(jb + tid % KB, n - 1u)); // the mask's load, issued early
    let s0 = chunks_dot(qc, k0);
    let s1 = chunks_dot(qc, k1);
    if (jb + KB < n) { // the next round's keys, in flight across this round's barriers
      k0 = key_chunks(bt, kb0 + min(jb + KB + slot, n - 1u), l);
      k1 = key_chunks(bt, kb0 + min(jb + KB + SLOTS + slot, n - 1u), l);
    }
    part[slot * LK + l] = s0;
    part[(SLOTS + slot) * LK + l] = s1;
    workgroupBarrier();
    let j = jb + tid;
    if (tid < KB && j < n) {
      var s = 0.0;
      for (var i = 0u; i < LK; i++) {
        s += part[tid * LK + i];
      }
      sc[j] = select(bitcast<f32>(MASKED), s * params.alpha, keep);
    }
    workgroupBarrier();
  }
}

#if SPLIT
// The handoff: the rows' counters (a word a row), then each row's chunks' partials, PW words a
// chunk: Σe·v (dv words), the max and Σe, each a handoff.wgsl word, which the merging workgroup
// zeroes as it reads them.
@group(0) @binding(8) var<storage, read_write> hand: array<atomic<u32>>;
var<workgroup> last_wg: u32;
const PW: u32 = 130u;

fn hand_at(row: u32, c: u32) -> u32 {
  let chunks = (params.n + KEYS - 1u) / KEYS;
  return params.rows + (row * chunks + c) * PW;
}

fn hand_put(i: u32, v: f32) {
  atomicStore(&hand[i], hand_word(v));
}

// The float handed over at word i, whose first load came back as w: loaded again while 0.
fn hand_float(i: u32, w: u32) -> f32 {
  var v = w;
  for (var s = 0u; v == 0u && s < HAND_SPIN; s++) {
    v = atomicLoad(&hand[i]);
  }
  return hand_value(v);
}

// Chunk c's output d, max and Σe as first loaded (settled by hand_float).
fn hand_raw(row: u32, c: u32, d: u32) -> vec3<u32> {
  let b = hand_at(row, c);
  return vec3<u32>(atomicLoad(&hand[b + d]), atomicLoad(&hand[b + 128u]), atomicLoad(&hand[b + 129u]));
}

// p with chunk c's partial (output d, first loaded as r) merged in, where c is a chunk.
fn merge_raw(p: Partial, row: u32, c: u32, d: u32, r: vec3<u32>, chunks: u32) -> Partial {
  if (c >= chunks) {
    return p;
  }
  let b = hand_at(row, c);
  let q = Partial(hand_float(b + 128u, r.y), hand_float(b + 129u, r.z), vec4<f32>(hand_float(b + d, r.x), 0.0, 0.0, 0.0));
  atomicStore(&hand[b + d], 0u); // this thread is output d's only reader
  return merge(p, q);
}

// The row's chunks merged by its last workgroup: thread t takes outputs t, t + WG, …, the
// chunks' words of four chunks loaded before any is used; then the maxima, Σe and the counter
// zeroed.
fn merge_chunks(row: u32, tid: u32, chunks: u32) {
  let last = chunks - 1u;
  for (var d = tid; d < params.dv; d += WG) {
    var p = Partial(LOWEST, 0.0, vec4<f32>(0.0));
    for (var c = 0u; c < chunks; c += 4u) {
      let r0 = hand_raw(row, c, d);
      let r1 = hand_raw(row, min(c + 1u, last), d);
      let r2 = hand_raw(row, min(c + 2u, last), d);
      let r3 = hand_raw(row, min(c + 3u, last), d);
      p = merge_raw(p, row, c, d, r0, chunks);
      p = merge_raw(p, row, c + 1u, d, r1, chunks);
      p = merge_raw(p, row, c + 2u, d, r2, chunks);
      p = merge_raw(p, row, c + 3u, d, r3, chunks);
    }
    y[row * params.dv + d] = p.o.x * (select(0.0, 1.0 / p.l, p.l > 0.0) * params.beta);
  }
  workgroupBarrier(); // every thread has read the maxima and Σe
  for (var c = tid; c < chunks; c += WG) {
    let b = hand_at(row, c);
    atomicStore(&hand[b + 128u], 0u);
    atomicStore(&hand[b + 129u], 0u);
  }
  if (tid == 0u) {
    atomicStore(&hand[row], 0u);
  }
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
#if SPLIT
  let row = wid.y;
  let chunk = wid.x;
  let chunks = (params.n + KEYS - 1u) / KEYS;
  let kb = chunk * KEYS;
  let n = min(KEYS, params.n - kb);
#else
  let row = flat_group(wid, nwg);
  let kb = 0u;
  let n = params.n;
#endif
  if (row >= params.rows) {
#if WARM
    // The workgroups past the rows, one row of them (the backend keeps the grid within one
    // dimension).
    warm((row - params.rows) * WG + tid, (nwg.x - params.rows) * WG);
#endif
    return; // the whole workgroup: past the grid's end
  }
  kb0 = kb;
  nk = n;
  let bt = row / params.m;
  let lane = tid % LANES;
  let grp = tid / LANES;
  let d0 = 4u * lane;
  var v = value_rows(bt, d0, grp); // before the scores: their latency overlaps the keys'
  var w = value_rows(bt, d0, grp + 4u * GROUPS);
  scores(row, bt, tid, kb, n);
  var p = Partial(LOWEST, 0.0, vec4<f32>(0.0));
  for (var j = grp; j < n; j += GROUPS) {
    let s = sc[j];
    if (bitcast<u32>(s) != MASKED) {
      p.mx = max(p.mx, s);
    }
  }
  for (var j = grp; j < n; j += 4u * GROUPS) {
    let e0 = weight(j, p.mx);
    let e1 = weight(j + GROUPS, p.mx);
    let e2 = weight(j + 2u * GROUPS, p.mx);
    let e3 = weight(j + 3u * GROUPS, p.mx);
    p.o += e0 * v.r0 + e1 * v.r1 + e2 * v.r2 + e3 * v.r3;
    p.l += e0 + e1 + e2 + e3;
    v = w;
    if (j + 8u * GROUPS < n) {
      w = value_rows(bt, d0, j + 8u * GROUPS);
    }
  }
  // The upper half's partials into the lower half's, those into group 0's.
  if (grp >= HALF) {
    put_partial(grp - HALF, lane, p);
  }
  workgroupBarrier();
  if (grp < HALF) {
    p = merge(p, slot_partial(grp, lane));
  }
  workgroupBarrier();
  if (grp < HALF) {
    put_partial(grp, lane, p);
  }
  workgroupBarrier();
  var split = false;
#if SPLIT
  split = chunks > 1u;
#endif
  if (grp == 0u) {
    p = slot_partial(0u, lane);
    for (var h = 1u; h < HALF; h++) {
      p = merge(p, slot_partial(h, lane));
    }
    if (!split) {
      let inv = select(0.0, 1.0 / p.l, p.l > 0.0) * params.beta;
      for (var i = 0u; i < 4u; i++) {
        if (d0 + i < params.dv) {
          y[row * params.dv + d0 + i] = p.o[i] * inv;
        }
      }
    }
#if SPLIT
    if (split) {
      let b = hand_at(row, chunk);
      for (var i = 0u; i < 4u; i++) {
        if (d0 + i < params.dv) {
          hand_put(b + d0 + i, p.o[i]);
        }
      }
      if (lane == 0u) {
        hand_put(b + 128u, p.mx);
        hand_put(b + 129u, p.l);
      }
    }
#endif
  }
#if SPLIT
  if (!split) {
    return;
  }
  // The workgroup's handoff stores all made before it counts itself (a software adapter that
  // ran the last workgroup on the thread of one that counted early would wait on stores that
  // thread can no longer make).
  storageBarrier();
  if (tid == 0u) {
    last_wg = select(0u, 1u, atomicAdd(&hand[row], 1u) == chunks - 1u);
  }
  if (workgroupUniformLoad(&last_wg) == 0u) {
    return;
  }
  merge_chunks(row, tid, chunks);
#endif
}
