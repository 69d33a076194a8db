// gemv_reduce.wgsl: the end of both GEMV kernels (gemv.wgsl, gemv_hw.wgsl), prepended to them
// after decode.wgsl. A workgroup's threads each hold partial sums of the same ROWS rows; they are
// added up with subgroupAdd where the device has subgroups (then across subgroups in workgroup
// memory, which holds no assumption on how threads map to subgroups), else with a
// workgroup-memory tree, and written to y (plus the residual res, where the key has RESIDUAL).
// With NORM (gemv_hw.wgsl only) the threads' sums of x² are added up beside the rows' sums, and
// each row's sum is multiplied by 1/√(mean(x²) + eps): the RMS norm before the product.
// reduce_store is reduce_rows (the sums into workgroup memory) then row_total per row; with
// SWIGLU the kernels reduce the gate's and up's rows and store SiLU(g)·u (swiglu_store).
//
// KV_WRITE (MULTI3: a decoder's q, k and v, one activation row): the second weight's rows (k)
// and the third's (v) are not stored in y but written into their caches at row pos[0]
// (kv_store), as ops_state_write.wgsl writes them: k rotated by the cos and sin tables as
// ops_state_rope.wgsl rotates it (pairs 2i, 2i+1 are rows of one workgroup: ROWS is even and
// each weight starts on a whole workgroup), f32 or (KV_F16) halves packed two a word, the
// pair's even row's thread writing the word. The caches' own write dispatch is not made.
//
// NORM_TAIL (gemv_hw.wgsl, one weight, its one dispatch): y's rows also pass through a handoff
// (binding 19: words 0..3 count the finished workgroups of activation rows 0..3, words from 4
// hold y's elements), and the workgroup that finishes last (whichever it is: the count says)
// writes the RMS norm of y's rows, y·gain/√(mean(y²) + eps), at binding 21 (the gain at 20):
// the norm after a residual Linear is no dispatch of its own. WGSL's atomics are relaxed, so the
// count says nothing of the other words: each element is stored atomically as the complement of
// its bits (a NaN made the canonical one first), so no stored word is 0, and the last workgroup
// loads again a word that came back 0 (each location's own order is kept). It leaves every word
// 0 again for the next dispatch. A word still 0 after TAIL_SPIN loads reads as NaN. Rows are
// whole vec4s, at most 4·8·WG elements (n a multiple of 4, ≤ 4096 at 128 threads).

#if RESIDUAL
@group(0) @binding(6) var<storage, read> res: array<f32>;
#endif
#if KV_WRITE
// The position and the tables, one range of the arena (one binding: a stage's storage buffers
// are few), at the words multi.kv.z, multi.kv.w, multi.kv_sin; the caches.
@group(0) @binding(16) var<storage, read> kv_in: array<u32>;
@group(0) @binding(17) var<storage, read_write> kv_k: array<u32>;
@group(0) @binding(18) var<storage, read_write> kv_v: array<u32>;
#endif

#if NORM_TAIL
@group(0) @binding(19) var<storage, read_write> tail: array<atomic<u32>>;
@group(0) @binding(20) var<storage, read> tgain: array<vec4<f32>>;
@group(0) @binding(21) var<storage, read_write> tout: array<vec4<f32>>;
var<workgroup> tail_last: u32;
#endif

var<workgroup> red0: array<vec4<f32>, WG>;
#if NORM
var<workgroup> red2: array<f32, WG>;
#endif

// norm_scale is 1/√(mean(x²) + eps) of the activation row whose Σx² is q, or 1 without NORM.
fn norm_scale(q: f32) -> f32 {
#if NORM
  return inverseSqrt(q / f32(params.k) + params.eps);
#else
  return 1.0;
#endif
}

// out_rows is how many rows the weight of this workgroup has; out_index where output (mi, row)
// of it goes in y: with MULTI (gemv_hw.wgsl) the weight's own block of y.
fn out_rows() -> u32 {
#if MULTI
  return multi.n[sel];
#else
  return params.n;
#endif
}

fn out_index(mi: u32, row: u32) -> u32 {
#if MULTI
  return multi.ybase[sel] + mi * multi.n[sel] + row;
#else
  return mi * params.y_stride + params.y_offset + row;
#endif
}

// store writes output i: the sum t, plus the residual's element i with RESIDUAL.
fn store(i: u32, t: f32) {
#if RESIDUAL
  y[i] = t + res[i];
#else
  y[i] = t;
#endif
}
var<workgroup> red1: array<vec4<f32>, WG>;

// reduce_rows adds up the workgroup's threads' partial sums: p0 holds this thread's sums of
// rows 0..3, p1 of rows 4..7, ss its part of Σx² (NORM); sgi is (subgroup_invocation_id,
// subgroup_id, num_subgroups) where the kernel has subgroups. Every thread calls it, in uniform
// control flow; afterwards any thread may read a row's total (row_total) until the workgroup
// memory is written again (a barrier first).
fn reduce_rows(p0: vec4<f32>, p1: vec4<f32>, ss: f32, tid: u32, sgi: vec3<u32>) {
#if SUBGROUPS
  let s0 = subgroupAdd(p0);
  var s1 = vec4<f32>(0.0);
  if (ROWS > 4u) { s1 = subgroupAdd(p1); }
#if NORM
  let q = subgroupAdd(ss);
#endif
  if (sgi.x == 0u) {
    red0[sgi.y] = s0;
    red1[sgi.y] = s1;
#if NORM
    red2[sgi.y] = q;
#endif
  }
  workgroupBarrier();
#else
  red0[tid] = p0;
  red1[tid] = p1;
#if NORM
  red2[tid] = ss;
#endif
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red0[tid] += red0[tid + s];
      if (ROWS > 4u) { red1[tid] += red1[tid + s]; }
#if NORM
      red2[tid] += red2[tid + s];
#endif
    }
    workgroupBarrier();
  }
#endif
}

// row_total is row r's sum after reduce_rows, times the norm's scale (NORM).
fn row_total(r: u32, sgi: vec3<u32>) -> f32 {
  var t = 0.0;
  var qt = 0.0;
#if SUBGROUPS
  for (var j = 0u; j < sgi.z; j++) {
    t += select(red0[j][r & 3u], red1[j][r & 3u], r > 3u);
#if NORM
    qt += red2[j];
#endif
  }
#else
  t = select(red0[0][r & 3u], red1[0][r & 3u], r > 3u);
#if NORM
  qt = red2[0];
#endif
#endif
  return t * norm_scale(qt);
}

// reduce_store sums the workgroup's rows (reduce_rows) and writes them to y (KV_WRITE: k's
// and v's into their caches).
fn reduce_store(p0: vec4<f32>, p1: vec4<f32>, ss: f32, tid: u32, sgi: vec3<u32>, row0: u32, mi: u32) {
  reduce_rows(p0, p1, ss, tid, sgi);
#if KV_WRITE
  if (sel > 0u) {
    kv_store(tid, row0, sgi);
  } else if (tid < ROWS && row0 + tid < out_rows()) {
    store(out_index(mi, row0 + tid), row_total(tid, sgi));
  }
#else
  if (tid < ROWS && row0 + tid < out_rows()) {
    let t = row_total(tid, sgi);
    store(out_index(mi, row0 + tid), t);
#if NORM_TAIL
    tail_put(mi, row0 + tid, stored(out_index(mi, row0 + tid), t));
#endif
  }
#endif
}

// stored is what store(i, t) writes.
fn stored(i: u32, t: f32) -> f32 {
#if RESIDUAL
  return t + res[i];
#else
  return t;
#endif
}

#if NORM_TAIL
// A row is at most TV·WG vec4s (normTailFits): 8 a thread of the last workgroup, each step
// written out for all 8 (no loop over an array, which the compiler may leave in memory: run 42
// had the tail at ~25 µs a GEMV with its loads in such a loop, one after the other).
const TV: u32 = 8u;
// Loads of a word still 0 before the last workgroup gives up.
const TAIL_SPIN: u32 = 1048576u;

// tail_put hands y's element (mi, row) to the last workgroup.
fn tail_put(mi: u32, row: u32, v: f32) {
  var b = bitcast<u32>(v);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) {
    b = 0x7FC00000u; // any NaN as the canonical one: its complement is not 0
  }
  atomicStore(&tail[4u + mi * params.n + row], ~b);
}

// tail_word is handoff word i, b as first loaded, loaded again while 0.
fn tail_word(i: u32, b: u32) -> u32 {
  var w = b;
  for (var t = 0u; w == 0u && t < TAIL_SPIN; t++) {
    w = atomicLoad(&tail[i]);
  }
  return w;
}

// tl loads the handoff's vec4 j (its words from 4j) of a row of nv, or the row's last past it.
fn tl(j: u32, j0: u32, nv: u32) -> vec4<u32> {
  let i = 4u * (j0 + min(j, nv - 1u));
  return vec4<u32>(atomicLoad(&tail[i]), atomicLoad(&tail[i + 1u]), atomicLoad(&tail[i + 2u]), atomicLoad(&tail[i + 3u]));
}

// tv is vec4 j of the row as floats, b its words as loaded: a word not yet visible reads 0 and
// is loaded again (NaN where it stays 0); 0 past the row. Its words are zeroed for the next
// dispatch.
fn tv(j: u32, j0: u32, nv: u32, b: vec4<u32>) -> vec4<f32> {
  if (j >= nv) {
    return vec4<f32>(0.0);
  }
  let i = 4u * (j0 + j);
  var w = b;
  if (any(w == vec4<u32>(0u))) {
    w = vec4<u32>(tail_word(i, w.x), tail_word(i + 1u, w.y), tail_word(i + 2u, w.z), tail_word(i + 3u, w.w));
  }
  atomicStore(&tail[i], 0u);
  atomicStore(&tail[i + 1u], 0u);
  atomicStore(&tail[i + 2u], 0u);
  atomicStore(&tail[i + 3u], 0u);
  return bitcast<vec4<f32>>(~w);
}

// ts stores vec4 j of the norm's row mi (v, already scaled by the norm), times the gain.
fn ts(j: u32, mi: u32, nv: u32, v: vec4<f32>) {
  if (j < nv) {
    tout[mi * nv + j] = v * tgain[j];
  }
}

// norm_tail counts this workgroup finished (its handoff words stored) and, in the workgroup
// that finishes last for activation row mi (groups of them), writes the RMS norm of y's row
// mi at tout. Called in uniform control flow. n is a multiple of 4, at most 4·TV·WG.
fn norm_tail(mi: u32, groups: u32, tid: u32, sgi: vec3<u32>) {
  // The workgroup's handoff stores all made before it counts itself (a software adapter that
  // ran the last workgroup on the thread of one that counted early would wait on stores that
  // thread can no longer make).
  storageBarrier();
  if (tid == 0u) {
    tail_last = select(0u, 1u, atomicAdd(&tail[mi], 1u) == groups - 1u);
  }
  if (workgroupUniformLoad(&tail_last) == 0u) {
    return;
  }
  let nv = params.n / 4u;
  let j0 = 1u + mi * nv; // the row's first vec4, after the 4 counters
  let b0 = tl(tid, j0, nv);
  let b1 = tl(tid + WG, j0, nv);
  let b2 = tl(tid + 2u * WG, j0, nv);
  let b3 = tl(tid + 3u * WG, j0, nv);
  let b4 = tl(tid + 4u * WG, j0, nv);
  let b5 = tl(tid + 5u * WG, j0, nv);
  let b6 = tl(tid + 6u * WG, j0, nv);
  let b7 = tl(tid + 7u * WG, j0, nv);
  let v0 = tv(tid, j0, nv, b0);
  let v1 = tv(tid + WG, j0, nv, b1);
  let v2 = tv(tid + 2u * WG, j0, nv, b2);
  let v3 = tv(tid + 3u * WG, j0, nv, b3);
  let v4 = tv(tid + 4u * WG, j0, nv, b4);
  let v5 = tv(tid + 5u * WG, j0, nv, b5);
  let v6 = tv(tid + 6u * WG, j0, nv, b6);
  let v7 = tv(tid + 7u * WG, j0, nv, b7);
  let ss = dot(v0, v0) + dot(v1, v1) + dot(v2, v2) + dot(v3, v3) + dot(v4, v4) + dot(v5, v5) + dot(v6, v6) + dot(v7, v7);
  reduce_rows(vec4<f32>(ss, 0.0, 0.0, 0.0), vec4<f32>(0.0), 0.0, tid, sgi);
  let inv = inverseSqrt(row_total(0u, sgi) / f32(params.n) + params.eps);
  ts(tid, mi, nv, v0 * inv);
  ts(tid + WG, mi, nv, v1 * inv);
  ts(tid + 2u * WG, mi, nv, v2 * inv);
  ts(tid + 3u * WG, mi, nv, v3 * inv);
  ts(tid + 4u * WG, mi, nv, v4 * inv);
  ts(tid + 5u * WG, mi, nv, v5 * inv);
  ts(tid + 6u * WG, mi, nv, v6 * inv);
  ts(tid + 7u * WG, mi, nv, v7 * inv);
  if (tid == 0u) {
    atomicStore(&tail[mi], 0u);
  }
}
#endif

#if KV_WRITE
// kv_value is the cache's value of the workgroup's row r (weight row row0 + r): k's rotated
// (sel 1; the rotation's rows are one, so the pair's table entry is its index mod P), v's as
// it is.
fn kv_value(r: u32, row0: u32, sgi: vec3<u32>) -> f32 {
  if (sel != 1u) {
    return row_total(r, sgi);
  }
  let t = ((row0 + r) / 2u) % multi.kv.y;
  let c = bitcast<f32>(kv_in[multi.kv.w + t]);
  let s = bitcast<f32>(kv_in[multi.kv_sin + t]);
  return rotate_pair(row_total(r & ~1u, sgi), row_total(r | 1u, sgi), c, s, (r & 1u) == 1u);
}

// kv_set writes word i of the workgroup's cache: k's (sel 1) or v's.
fn kv_set(i: u32, v: u32) {
  if (sel == 1u) {
    kv_k[i] = v;
  } else {
    kv_v[i] = v;
  }
}

// kv_store writes row row0 + tid of k or v (tid < ROWS) at cache row pos[0], whose elements are
// the weight's n rows; none where pos[0] is past the cache (the host rejects such a run).
fn kv_store(tid: u32, row0: u32, sgi: vec3<u32>) {
  let p = bitcast<i32>(kv_in[multi.kv.z]);
  let row = row0 + tid;
  if (tid < ROWS && row < out_rows() && p >= 0 && u32(p) < multi.kv.x) {
    let a = u32(p) * out_rows() + row;
#if KV_F16
    // n is even, so a is: rows row and row + 1 are word a/2, written by the even row's thread.
    if ((tid & 1u) == 0u) {
      kv_set(a / 2u, half_bits(kv_value(tid, row0, sgi)) | (half_bits(kv_value(tid + 1u, row0, sgi)) << 16u));
    }
#else
    kv_set(a, bitcast<u32>(kv_value(tid, row0, sgi)));
#endif
  }
}
#endif

#if SWIGLU
// swiglu_store writes SiLU(g)·u for row row0 + tid (tid < HALF), g and u its gate and up totals
// (row_total), as decode.wgsl's silu_mul1 forms it.
fn swiglu_store(g: f32, u: f32, tid: u32, row0: u32, mi: u32) {
  if (tid < HALF && row0 + tid < out_rows()) {
    y[out_index(mi, row0 + tid)] = silu_mul1(g, u);
  }
}
#endif
