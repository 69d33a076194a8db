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
// NORM_TAIL (gemv_hw.wgsl, one weight, 8 rows a workgroup): y is also an RMS norm's input,
// whose x·gain (the gain at binding 20) this kernel writes at binding 21, and the Σy² of each
// workgroup's rows at binding 19 (ceil(n/8) a row); the GEMV that reads the norm (NORM_PART) adds
// those up for its scale. The norm after a residual Linear is then no dispatch of its own, and the
// GEMV after it loads x alone, not x and the gain. QTAIL (gemv_a8.wgsl) writes the norm's
// activation blocks for the GEMVs after it instead.

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
@group(0) @binding(19) var<storage, read_write> tss: array<f32>;
@group(0) @binding(20) var<storage, read> tgain: array<f32>;
@group(0) @binding(21) var<storage, read_write> tout: array<f32>;
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

// What the store reads beside the sums, loaded before the weights' loop by pre_store so that
// its latency is not the workgroup's last: the residual of the thread's row of the first row
// group (RESIDUAL), from pre_row0 on. (The position and the rotation's tables of KV_WRITE, loaded
// so by every thread, made the q, k, v GEMV slower on an H200: NOTES.md.)
var<private> pre_row0: u32;
#if RESIDUAL
var<private> pre_res: f32;
#endif

// pre_store loads the store's operands for thread tid of the row group from row0 (after
// weight_row, which sets sel) of activation row mi. Its indices are clamped rather than its
// loads branched around: a load inside a branch is waited for where the branch ends.
fn pre_store(mi: u32, row0: u32, tid: u32) {
  pre_row0 = row0;
#if RESIDUAL
  pre_res = res[out_index(mi, min(row0 + min(tid, ROWS - 1u), out_rows() - 1u))];
#endif
}

// stored_at is stored's value of output i, row row0 + tid of the row group from row0: with the
// residual pre_store loaded where it loaded that group's.
fn stored_at(i: u32, t: f32, row0: u32) -> f32 {
#if RESIDUAL
  if (row0 == pre_row0) {
    return t + pre_res;
  }
#endif
  return stored(i, t);
}

// stored is output i's value: the sum t, plus the residual's element i with RESIDUAL.
fn stored(i: u32, t: f32) -> f32 {
#if RESIDUAL
  return t + res[i];
#else
  return t;
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
    let i = out_index(mi, row0 + tid);
    y[i] = stored_at(i, row_total(tid, sgi), row0);
  }
#else
  if (tid < ROWS && row0 + tid < out_rows()) {
    let i = out_index(mi, row0 + tid);
    let v = stored_at(i, row_total(tid, sgi), row0);
    y[i] = v;
#if NORM_TAIL
    tout[i] = v * tgain[row0 + tid];
#endif
#if QTAIL
    tail_put(mi, row0 + tid, v);
#endif
  }
#if NORM_TAIL
  if (tid == 0u) {
    norm_part(mi, row0, sgi);
  }
#endif
#if QTAIL
  q_tail(mi, row0, tid); // gemv_a8.wgsl
#endif
#endif
}

#if NORM_TAIL
// norm_part stores the Σy² of the workgroup's rows (row0…, ROWS of them, 8) of activation row
// mi, as stored, for the GEMV that reads their norm.
fn norm_part(mi: u32, row0: u32, sgi: vec3<u32>) {
  var ss = 0.0;
  for (var r = 0u; r < ROWS; r++) {
    if (row0 + r < out_rows()) {
      let v = stored(out_index(mi, row0 + r), row_total(r, sgi));
      ss = fma(v, v, ss);
    }
  }
  tss[mi * ((params.n + ROWS - 1u) / ROWS) + row0 / ROWS] = ss;
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
// With QTAIL (Key.XTail) the outputs also become the down GEMV's activation blocks (q_tail);
// then every thread calls it, in uniform control flow.
fn swiglu_store(g: f32, u: f32, tid: u32, row0: u32, mi: u32) {
  if (tid < HALF && row0 + tid < out_rows()) {
    let v = silu_mul1(g, u);
    y[out_index(mi, row0 + tid)] = v;
#if QTAIL
    tail_put(mi, row0 + tid, v);
#endif
  }
#if QTAIL
  q_tail(mi, row0, tid); // gemv_a8.wgsl
#endif
}
#endif
