// gemv_hw.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for one to a few activation rows on a GPU, where
// the weights must stream at the memory's read bandwidth (gemv.wgsl is the variant shaped for CPU
// implementations of WebGPU).
//
// Each thread reads one vec4<u32> "span" (4 to 64 weights) of each of ROWS weight rows per step,
// and the WG threads of a workgroup read consecutive spans, so a subgroup's loads of one row are
// one contiguous run. The row loads are all issued before any arithmetic; then the span is walked
// one octet (8 weights) at a time, the octet's x loaded once for the ROWS rows, so a thread holds
// 2 x vectors rather than a whole span's (16 for int2) and one sum per row: fewer registers, more
// threads in flight, more loads in flight. The workgroup then sums its threads' sums
// (gemv_reduce.wgsl).
//
// Codes become floats without an int→float conversion (a quarter-rate instruction on NVIDIA
// GPUs; on an H200 gemv.wgsl's 4-bit kernel reads 1.86 TB/s at 16384², this one 2.61: NOTES.md):
// OR-ing a code,
// left where it sits in its word, into the mantissa of 2²³ gives exactly 2²³ + code·2^p, and one
// subtraction leaves (code − zero)·2^p. The 2^p of each lane (the PW vector) is divided out of
// the octet's x instead (IPW), once for all rows. Symmetric codes are two's complement:
// XOR-ing their sign bits (SIGN) turns each into code + 2^(BITS−1), which the same subtraction
// removes. All of this is exact; only products and sums round, as in gemv.wgsl. Products are
// always f32 here (Key.Normalize drops F16).
//
// With PREFETCH a thread issues the loads of its next span before summing the current one, so a
// thread keeps loads in flight while it computes (at the cost of a second span's registers).
//
// With NORM_PART (and NORM), x is already x·gain, written with each 8 elements' Σx² (binding 7)
// by the GEMV before (gemv_reduce.wgsl NORM_TAIL): the thread sums its part of those instead.
//
// With NORM, x is the input of an RMS norm with gain (binding 7) that the product reads: as a
// thread loads an x vec4 (each once per span, and the workgroup's spans cover the row once) it
// adds its squares to xss and multiplies it by the gain; gemv_reduce.wgsl sums xss over the
// workgroup and scales each row's sum by 1/√(mean(x²) + eps). No load is added but the gain's;
// the norm's own dispatch, a row of one workgroup, goes away. (A first version read the whole
// row for Σx² before the weights: on an H200 that made the step's GEMVs 0.7 ms slower.)
//
// With MULTI, one dispatch computes two or three Linears of the same x (q, k and v; gate and up):
// weights of one layout but for N, the second and third at bindings 8, 9 (they, their scales
// and zero points 10-13 declared in decode.wgsl). The grid covers their rows one after the other, each weight's a
// whole number of workgroups (multi.start), so a workgroup picks its weight once (decode.wgsl's
// sel) and branches on it once per span (load_span). Each weight's outputs go to its own block
// of y (multi.ybase). On a GPU each dispatch costs ~5 µs before its bytes stream (NOTES.md).
//
// With SWIGLU (a feed-forward's gate and up, of one x and one N; up's codes, scales and zero
// points at bindings 8, 10, 12) a workgroup's rows 0..HALF−1 are rows j..j+HALF−1 of the gate
// and its rows HALF.. the same rows of up, which weight each row reads a constant (decode.wgsl's
// row_weight: no branch on sel); it reduces both and stores SiLU(gate)·up (silu_mul1), one
// output per pair, so the down GEMV reads plain x. Grid: (ceil(n / HALF), m, 1).
//
// Grid: (ceil(n / ROWS), m, 1), n the rows of all weights with MULTI; workgroup WG threads (a
// power of two); ROWS 1..8; SCALE_PER_VEC as in gemv.wgsl.

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if NORM
#if NORM_PART
// x·gain and Σx² of each 8 elements of x's rows, from the GEMV that wrote x (gemv_reduce.wgsl
// NORM_TAIL): ceil(k/8) a row, at most 4·WG.
@group(0) @binding(7) var<storage, read> xparts: array<f32>;
#else
@group(0) @binding(7) var<storage, read> gain: array<vec4<f32>>;
#endif
// The first vec4 of this workgroup's x row: the gain's vec4 j multiplies x's xrow + j.
var<private> xrow: u32;
// This thread's Σx² over the x vec4s it loaded (NORM_PART: over its parts of the row's sums).
var<private> xss: f32;
#endif

// 2²³: a float whose mantissa unit is 1, so OR-ed integer bits below bit 23 read as themselves.
const MAGIC: u32 = 0x4B000000u;
const MAGICF: f32 = 8388608.0;
// Lane masks and the power of two each lane's code carries. An octet (8 codes) is two vec4s with
// the same powers: int8 takes bytes 0,1 of a word and of the word shifted by 16; int4 nibbles
// 0..3 of a word and of the word shifted by 16; int2 codes 0..3 of a half-word and of it shifted
// by 8. No code reaches bit 23.
const M8 = vec4<u32>(0xFFu, 0xFF00u, 0xFFu, 0xFF00u);
const M4 = vec4<u32>(0xFu, 0xF0u, 0xF00u, 0xF000u);
const M2 = vec4<u32>(0x3u, 0xCu, 0x30u, 0xC0u);
const PW = select(select(select(vec4<f32>(1.0, 4.0, 16.0, 64.0), vec4<f32>(1.0, 16.0, 256.0, 4096.0), BITS == 4u),
                         vec4<f32>(1.0, 256.0, 1.0, 256.0), BITS == 8u),
                  vec4<f32>(1.0), BITS > 8u);
const IPW = vec4<f32>(1.0) / PW;
// One scale (or none: f16, f32 weights) serves a whole span.
const ONE_SCALE: bool = SCALE_PER_VEC || BITS > 8u;
const SIGN: u32 = select(select(0xAAAAAAAAu, 0x88888888u, BITS == 4u), 0x80808080u, BITS == 8u);
// What a symmetric code reads as after the XOR and the OR, per lane: 2²³ + 2^(BITS−1)·2^p.
const BASE_SYM = vec4<f32>(MAGICF) + f32(1u << (min(BITS, 8u) - 1u)) * PW;
// The lane masks of this width, and what a masked code is XOR-ed with: the exponent of 2²³ and,
// for symmetric codes, the code's sign bit (two's complement becomes code + 2^(BITS−1)). Mask,
// sign flip and exponent are one three-input logic op per code ((v & M) ^ C), where OR-ing
// the exponent and XOR-ing the sign of the word beforehand were two, plus one XOR per word.
const MK = select(select(M2, M4, BITS == 4u), M8, BITS == 8u);
#if ASYM
const MX = vec4<u32>(MAGIC);
#else
const MX = (vec4<u32>(SIGN) & MK) | vec4<u32>(MAGIC);
#endif

// The floats 2²³ + code·2^p of the codes in v's lanes (masked here).
fn mag(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>((v & MK) ^ MX);
}

// t + Σ (q − z)·x over octet o (a constant) of span wv, where base = 2²³ + z·2^p and xa, xb are
// the octet's x divided by the lane powers 2^p (exact: powers of two). A chain of fused
// multiply-adds.
fn oct1(wv: vec4<u32>, o: u32, base: vec4<f32>, xa: vec4<f32>, xb: vec4<f32>, t0: f32) -> f32 {
  var fa: vec4<f32>;
  var fb = vec4<f32>(0.0);
#if QUANT
  var a: vec4<u32>;
  var b: vec4<u32>;
  if (BITS == 8u) {
    let wa = wv[2u * o];
    let wb = wv[2u * o + 1u];
    a = vec4<u32>(wa, wa, wa >> 16u, wa >> 16u);
    b = vec4<u32>(wb, wb, wb >> 16u, wb >> 16u);
  } else if (BITS == 4u) {
    let wd = wv[o];
    a = vec4<u32>(wd);
    b = vec4<u32>(wd >> 16u);
  } else {
    let hw = wv[o / 2u] >> (16u * (o % 2u));
    a = vec4<u32>(hw);
    b = vec4<u32>(hw >> 8u);
  }
  fa = mag(a) - base;
  fb = mag(b) - base;
#else
#if F16W
  fa = vec4<f32>(unpack2x16float(wv.x), unpack2x16float(wv.y));
  fb = vec4<f32>(unpack2x16float(wv.z), unpack2x16float(wv.w));
#else
  fa = bitcast<vec4<f32>>(wv);
#endif
#endif
  var t = fma(fa.x, xa.x, t0);
  t = fma(fa.y, xa.y, t);
  t = fma(fa.z, xa.z, t);
  t = fma(fa.w, xa.w, t);
  if (EW > 1u) {
    t = fma(fb.x, xb.x, t);
    t = fma(fb.y, xb.y, t);
    t = fma(fb.z, xb.z, t);
    t = fma(fb.w, xb.w, t);
  }
  return t;
}

// The base and scale of group g of row in weight which (decode.wgsl's cur()).
fn base_at(which: u32, row: u32, g: u32) -> vec4<f32> {
#if ASYM
  return vec4<f32>(MAGICF) + zero_at_of(which, row, g) * PW;
#else
  return BASE_SYM;
#endif
}

fn scale_or_one(which: u32, row: u32, g: u32) -> f32 {
#if QUANT
  return scale_at_of(which, row, g);
#else
  return 1.0;
#endif
}

// One step of a thread: span i of each of its rows, its scale and base where one serves the span.
struct Span {
  w: array<vec4<u32>, 8>,
  s: array<f32, 8>,
  b: array<vec4<f32>, 8>,
}

// acc[r] += Σ over octet o of row r's span (o a constant). The octet's x is loaded once for all
// rows. Where one scale serves the span (ONE_SCALE), acc holds the span's unscaled sums and the
// caller scales them once (scale_rows); else the scale multiplies once per octet and row.
fn oct_rows(o: u32, sp: Span, rows: array<u32, 8>, k0: u32, xi: u32, acc: array<f32, 8>) -> array<f32, 8> {
  let xa = xl(xi, 2u * o) * IPW;
  let xb = xl(xi, 2u * o + 1u) * IPW;
  var s = sp.s;
  var b = sp.b;
  if (!ONE_SCALE) {
    let g = group_of(k0 + 8u * o);
    let which = cur(); // a branch per load on this path (groups shorter than a span)
    s[0] = scale_or_one(row_weight(0u, which), rows[0], g); b[0] = base_at(row_weight(0u, which), rows[0], g);
    if (ROWS > 1u) { s[1] = scale_or_one(row_weight(1u, which), rows[1], g); b[1] = base_at(row_weight(1u, which), rows[1], g); }
    if (ROWS > 2u) { s[2] = scale_or_one(row_weight(2u, which), rows[2], g); b[2] = base_at(row_weight(2u, which), rows[2], g); }
    if (ROWS > 3u) { s[3] = scale_or_one(row_weight(3u, which), rows[3], g); b[3] = base_at(row_weight(3u, which), rows[3], g); }
    if (ROWS > 4u) { s[4] = scale_or_one(row_weight(4u, which), rows[4], g); b[4] = base_at(row_weight(4u, which), rows[4], g); }
    if (ROWS > 5u) { s[5] = scale_or_one(row_weight(5u, which), rows[5], g); b[5] = base_at(row_weight(5u, which), rows[5], g); }
    if (ROWS > 6u) { s[6] = scale_or_one(row_weight(6u, which), rows[6], g); b[6] = base_at(row_weight(6u, which), rows[6], g); }
    if (ROWS > 7u) { s[7] = scale_or_one(row_weight(7u, which), rows[7], g); b[7] = base_at(row_weight(7u, which), rows[7], g); }
  }
  var a = acc;
  if (ONE_SCALE) {
    a[0] = oct1(sp.w[0], o, b[0], xa, xb, a[0]);
    if (ROWS > 1u) { a[1] = oct1(sp.w[1], o, b[1], xa, xb, a[1]); }
    if (ROWS > 2u) { a[2] = oct1(sp.w[2], o, b[2], xa, xb, a[2]); }
    if (ROWS > 3u) { a[3] = oct1(sp.w[3], o, b[3], xa, xb, a[3]); }
    if (ROWS > 4u) { a[4] = oct1(sp.w[4], o, b[4], xa, xb, a[4]); }
    if (ROWS > 5u) { a[5] = oct1(sp.w[5], o, b[5], xa, xb, a[5]); }
    if (ROWS > 6u) { a[6] = oct1(sp.w[6], o, b[6], xa, xb, a[6]); }
    if (ROWS > 7u) { a[7] = oct1(sp.w[7], o, b[7], xa, xb, a[7]); }
    return a;
  }
  a[0] = fma(oct1(sp.w[0], o, b[0], xa, xb, 0.0), s[0], a[0]);
  if (ROWS > 1u) { a[1] = fma(oct1(sp.w[1], o, b[1], xa, xb, 0.0), s[1], a[1]); }
  if (ROWS > 2u) { a[2] = fma(oct1(sp.w[2], o, b[2], xa, xb, 0.0), s[2], a[2]); }
  if (ROWS > 3u) { a[3] = fma(oct1(sp.w[3], o, b[3], xa, xb, 0.0), s[3], a[3]); }
  if (ROWS > 4u) { a[4] = fma(oct1(sp.w[4], o, b[4], xa, xb, 0.0), s[4], a[4]); }
  if (ROWS > 5u) { a[5] = fma(oct1(sp.w[5], o, b[5], xa, xb, 0.0), s[5], a[5]); }
  if (ROWS > 6u) { a[6] = fma(oct1(sp.w[6], o, b[6], xa, xb, 0.0), s[6], a[6]); }
  if (ROWS > 7u) { a[7] = fma(oct1(sp.w[7], o, b[7], xa, xb, 0.0), s[7], a[7]); }
  return a;
}

// acc[r] += t[r]·s[r]: a span's sums scaled once (ONE_SCALE).
fn scale_rows(t: array<f32, 8>, s: array<f32, 8>, acc: array<f32, 8>) -> array<f32, 8> {
  var a = acc;
  a[0] = fma(t[0], s[0], a[0]);
  if (ROWS > 1u) { a[1] = fma(t[1], s[1], a[1]); }
  if (ROWS > 2u) { a[2] = fma(t[2], s[2], a[2]); }
  if (ROWS > 3u) { a[3] = fma(t[3], s[3], a[3]); }
  if (ROWS > 4u) { a[4] = fma(t[4], s[4], a[4]); }
  if (ROWS > 5u) { a[5] = fma(t[5], s[5], a[5]); }
  if (ROWS > 6u) { a[6] = fma(t[6], s[6], a[6]); }
  if (ROWS > 7u) { a[7] = fma(t[7], s[7], a[7]); }
  return a;
}

// The octets of one span of every row added to acc (see oct_rows for what acc holds).
fn span_rows(sp: Span, rows: array<u32, 8>, k0: u32, xi: u32, acc: array<f32, 8>) -> array<f32, 8> {
  var a = oct_rows(0u, sp, rows, k0, xi, acc);
  if (NOCT > 1u) { a = oct_rows(1u, sp, rows, k0, xi, a); }
  if (NOCT > 2u) {
    a = oct_rows(2u, sp, rows, k0, xi, a);
    a = oct_rows(3u, sp, rows, k0, xi, a);
  }
  if (NOCT > 4u) {
    a = oct_rows(4u, sp, rows, k0, xi, a);
    a = oct_rows(5u, sp, rows, k0, xi, a);
    a = oct_rows(6u, sp, rows, k0, xi, a);
    a = oct_rows(7u, sp, rows, k0, xi, a);
  }
  return a;
}

// x vec4 j of the span starting at xi; j folds to a constant.
fn xl(xi: u32, j: u32) -> vec4<f32> {
  if (j < EW) {
#if SILU_X
    return silu_mul(x[xi + j], xu[xi + j]); // decode.wgsl: u at binding 15
#else
#if NORM_PART
    return x[xi + j]; // x·gain already, its Σx² in xparts
#else
#if NORM
    let v = x[xi + j];
    xss = fma(v.x, v.x, fma(v.y, v.y, fma(v.z, v.z, fma(v.w, v.w, xss))));
    return v * gain[xi + j - xrow];
#else
    return x[xi + j];
#endif
#endif
#endif
  }
  return vec4<f32>(0.0);
}

// Span i of row r (a constant) of weight which (a constant), or zeros for a row this variant does
// not have.
fn wl(rows: array<u32, 8>, rv: u32, i: u32, r: u32, which: u32) -> vec4<u32> {
  if (r >= ROWS) {
    return vec4<u32>(0u);
  }
#if W1
  return w_of(row_weight(r, which), rows[r] * rv + i);
#else
  return w[rows[r] * rv + i];
#endif
}

// Span i of every row of the workgroup, and its scale and base where one serves the span: all
// the loads first, so they are in flight together. With MULTI one branch on sel picks the weight
// for all of them: load_span_of's which is a constant in each call, so its per-load choices fold
// away. (A branch on sel per load, the first version, made the grouped GEMVs of a decode step
// ~0.6 ms slower on an H200, run 13: each load's branch likely waited for it.)
fn load_span(rows: array<u32, 8>, rv: u32, i: u32) -> Span {
#if MULTI
  if (sel == 1u) {
    return load_span_of(rows, rv, i, 1u);
  }
#if MULTI3
  if (sel == 2u) {
    return load_span_of(rows, rv, i, 2u);
  }
#endif
#endif
  return load_span_of(rows, rv, i, 0u);
}

fn load_span_of(rows: array<u32, 8>, rv: u32, i: u32, which: u32) -> Span {
  var sp: Span;
  sp.w = array<vec4<u32>, 8>(wl(rows, rv, i, 0u, which), wl(rows, rv, i, 1u, which), wl(rows, rv, i, 2u, which),
                             wl(rows, rv, i, 3u, which), wl(rows, rv, i, 4u, which), wl(rows, rv, i, 5u, which),
                             wl(rows, rv, i, 6u, which), wl(rows, rv, i, 7u, which));
  if (ONE_SCALE) {
    let g = group_of(i * 4u * EW);
    sp.s[0] = scale_or_one(row_weight(0u, which), rows[0], g); sp.b[0] = base_at(row_weight(0u, which), rows[0], g);
    if (ROWS > 1u) { sp.s[1] = scale_or_one(row_weight(1u, which), rows[1], g); sp.b[1] = base_at(row_weight(1u, which), rows[1], g); }
    if (ROWS > 2u) { sp.s[2] = scale_or_one(row_weight(2u, which), rows[2], g); sp.b[2] = base_at(row_weight(2u, which), rows[2], g); }
    if (ROWS > 3u) { sp.s[3] = scale_or_one(row_weight(3u, which), rows[3], g); sp.b[3] = base_at(row_weight(3u, which), rows[3], g); }
    if (ROWS > 4u) { sp.s[4] = scale_or_one(row_weight(4u, which), rows[4], g); sp.b[4] = base_at(row_weight(4u, which), rows[4], g); }
    if (ROWS > 5u) { sp.s[5] = scale_or_one(row_weight(5u, which), rows[5], g); sp.b[5] = base_at(row_weight(5u, which), rows[5], g); }
    if (ROWS > 6u) { sp.s[6] = scale_or_one(row_weight(6u, which), rows[6], g); sp.b[6] = base_at(row_weight(6u, which), rows[6], g); }
    if (ROWS > 7u) { sp.s[7] = scale_or_one(row_weight(7u, which), rows[7], g); sp.b[7] = base_at(row_weight(7u, which), rows[7], g); }
  }
  return sp;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
#if SUBGROUPS
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(num_subgroups) nsg: u32,
#endif
) {
  let row0 = weight_row(wid.x * ROWS);
  let mi = wid.y;
  pre_store(mi, row0, tid); // gemv_reduce.wgsl: the store's operands in flight now
  let rv = params.row_words / 4u;
  let xb = mi * (params.kp / 4u);
  // Rows past n (the last workgroup) read row n−1 again: no branch per row, results dropped.
  let last = out_rows() - 1u;
  let rows = array<u32, 8>(row_at(row0, 0u, last), row_at(row0, 1u, last), row_at(row0, 2u, last), row_at(row0, 3u, last),
                           row_at(row0, 4u, last), row_at(row0, 5u, last), row_at(row0, 6u, last), row_at(row0, 7u, last));
  var acc: array<f32, 8>;
#if NORM
  xrow = xb;
  xss = 0.0;
#endif
#if NORM_PART
  // The row's parts of Σx², 4 a thread loaded now (their latency hidden by the weights'), added
  // at the end.
  let np = (params.k + 7u) / 8u;
  let pb = mi * np;
  let xp = vec4<f32>(xparts[pb + min(tid, np - 1u)], xparts[pb + min(tid + WG, np - 1u)],
                     xparts[pb + min(tid + 2u * WG, np - 1u)], xparts[pb + min(tid + 3u * WG, np - 1u)]);
  let xpm = vec4<f32>(vec4<bool>(tid < np, tid + WG < np, tid + 2u * WG < np, tid + 3u * WG < np));
#endif
  // A uniform trip count keeps the barriers and subgroup operations below in uniform control flow.
  let iters = (rv + WG - 1u) / WG;
  var next: Span;
  if (PREFETCH && tid < rv) {
    next = load_span(rows, rv, tid);
  }
  for (var it = 0u; it < iters; it++) {
    let i = it * WG + tid;
    var sp: Span;
    if (PREFETCH) {
      sp = next;
      if (i + WG < rv) {
        next = load_span(rows, rv, i + WG);
      }
    } else if (i < rv) {
      sp = load_span(rows, rv, i);
    }
    if (i < rv) {
      let k0 = i * 4u * EW;
      let xi = xb + i * EW;
      if (ONE_SCALE) {
        acc = scale_rows(span_rows(sp, rows, k0, xi, array<f32, 8>()), sp.s, acc);
      } else {
        acc = span_rows(sp, rows, k0, xi, acc);
      }
    }
  }
  // Rows 0..3 in p0, 4..7 in p1.
  let p0 = vec4<f32>(acc[0], acc[1], acc[2], acc[3]);
  let p1 = vec4<f32>(acc[4], acc[5], acc[6], acc[7]);
  var ss = 0.0;
#if NORM
  ss = xss;
#endif
#if NORM_PART
  ss = dot(xp, xpm);
#endif
  var sgi = vec3<u32>(0u);
#if SUBGROUPS
  sgi = vec3<u32>(lane, sg, nsg);
#endif
#if SWIGLU
  // Rows 0..HALF−1 the gate's, HALF.. up's: both reduced at once, then SiLU(gate)·up stored.
  reduce_rows(p0, p1, ss, tid, sgi);
  swiglu_store(row_total(tid, sgi), row_total(tid + HALF, sgi), tid, row0, mi);
#else
  reduce_store(p0, p1, ss, tid, sgi, row0, mi);
#endif
}
