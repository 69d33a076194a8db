// gemv_hw.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for one to a few activation rows on a GPU, where
// the weights must stream at the memory's read bandwidth (gemv.wgsl is the variant shaped for CPU
// implementations of WebGPU).
//
// Each thread reads one vec4<u32> "span" (4 to 64 weights) of each of ROWS weight rows per step,
// and the WG threads of a workgroup read consecutive spans, so a subgroup's loads of one row are
// one contiguous run. The x values of a span are loaded once and serve the ROWS rows; the row
// loads are all issued before any arithmetic. A workgroup reduces its partial sums with
// subgroupAdd where the device has subgroups, else with a workgroup-memory tree.
//
// Codes become floats without an int→float conversion (a quarter-rate instruction on NVIDIA
// GPUs, which held gemv.wgsl's 4-bit kernel far below the memory's bandwidth): OR-ing a code,
// left where it sits in its word, into the mantissa of 2²³ gives exactly 2²³ + code·2^p, and one
// subtraction leaves (code − zero)·2^p. Each lane of a vec4 keeps its own 2^p (the PW vector)
// through the sums, divided out once per row at the end. Symmetric codes are two's complement:
// XOR-ing their sign bits (SIGN) turns each into code + 2^(BITS−1), which the same subtraction
// removes. All of this is exact; only products and sums round, as in gemv.wgsl. Products are
// always f32 here (Key.Normalize drops F16).
//
// Grid: (ceil(n / ROWS), m, 1); workgroup WG threads (a power of two); ROWS 1..8; SCALE_PER_VEC
// as in gemv.wgsl.

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> red0: array<vec4<f32>, WG>;
var<workgroup> red1: array<vec4<f32>, WG>;

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
const SIGN: u32 = select(select(0xAAAAAAAAu, 0x88888888u, BITS == 4u), 0x80808080u, BITS == 8u);
// What a symmetric code reads as after the XOR and the OR, per lane: 2²³ + 2^(BITS−1)·2^p.
const BASE_SYM = vec4<f32>(MAGICF) + f32(1u << (min(BITS, 8u) - 1u)) * PW;

fn mag(v: vec4<u32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(v | vec4<u32>(MAGIC));
}

// Σ (q − z)·2^p·x over octet o (a constant) of span wv, lane by lane; base = 2²³ + z·2^p.
fn oct(wv: vec4<u32>, o: u32, base: vec4<f32>, xa: vec4<f32>, xb: vec4<f32>) -> vec4<f32> {
  var a: vec4<u32>;
  var b: vec4<u32>;
  if (BITS == 8u) {
    let wa = wv[2u * o];
    let wb = wv[2u * o + 1u];
    a = vec4<u32>(wa, wa, wa >> 16u, wa >> 16u) & M8;
    b = vec4<u32>(wb, wb, wb >> 16u, wb >> 16u) & M8;
  } else if (BITS == 4u) {
    let wd = wv[o];
    a = vec4<u32>(wd) & M4;
    b = vec4<u32>(wd >> 16u) & M4;
  } else {
    let hw = wv[o / 2u] >> (16u * (o % 2u));
    a = vec4<u32>(hw) & M2;
    b = vec4<u32>(hw >> 8u) & M2;
  }
  return (mag(a) - base) * xa + (mag(b) - base) * xb;
}

#if QUANT
fn base_at(row: u32, g: u32) -> vec4<f32> {
#if ASYM
  return vec4<f32>(MAGICF) + zero_at(row, g) * PW;
#else
  return BASE_SYM;
#endif
}
#endif

// Σ w·x over one span wv0 of row, lane-weighted by PW; xs holds the span's x, gs each octet's group.
fn row_span(wv0: vec4<u32>, row: u32, xs: array<vec4<f32>, 16>, gs: array<u32, 8>) -> vec4<f32> {
#if QUANT
#if ASYM
  let wv = wv0;
#else
  let wv = wv0 ^ vec4<u32>(SIGN);
#endif
  if (SCALE_PER_VEC) {
    let base = base_at(row, gs[0]);
    var t = oct(wv, 0u, base, xs[0], xs[1]);
    if (NOCT > 1u) { t += oct(wv, 1u, base, xs[2], xs[3]); }
    if (NOCT > 2u) { t += oct(wv, 2u, base, xs[4], xs[5]) + oct(wv, 3u, base, xs[6], xs[7]); }
    if (NOCT > 4u) {
      t += oct(wv, 4u, base, xs[8], xs[9]) + oct(wv, 5u, base, xs[10], xs[11]);
      t += oct(wv, 6u, base, xs[12], xs[13]) + oct(wv, 7u, base, xs[14], xs[15]);
    }
    return t * scale_at(row, gs[0]);
  }
  var t = oct(wv, 0u, base_at(row, gs[0]), xs[0], xs[1]) * scale_at(row, gs[0]);
  if (NOCT > 1u) { t += oct(wv, 1u, base_at(row, gs[1]), xs[2], xs[3]) * scale_at(row, gs[1]); }
  if (NOCT > 2u) {
    t += oct(wv, 2u, base_at(row, gs[2]), xs[4], xs[5]) * scale_at(row, gs[2]);
    t += oct(wv, 3u, base_at(row, gs[3]), xs[6], xs[7]) * scale_at(row, gs[3]);
  }
  if (NOCT > 4u) {
    t += oct(wv, 4u, base_at(row, gs[4]), xs[8], xs[9]) * scale_at(row, gs[4]);
    t += oct(wv, 5u, base_at(row, gs[5]), xs[10], xs[11]) * scale_at(row, gs[5]);
    t += oct(wv, 6u, base_at(row, gs[6]), xs[12], xs[13]) * scale_at(row, gs[6]);
    t += oct(wv, 7u, base_at(row, gs[7]), xs[14], xs[15]) * scale_at(row, gs[7]);
  }
  return t;
#else
#if F16W
  return vec4<f32>(unpack2x16float(wv0.x), unpack2x16float(wv0.y)) * xs[0] +
         vec4<f32>(unpack2x16float(wv0.z), unpack2x16float(wv0.w)) * xs[1];
#else
  return bitcast<vec4<f32>>(wv0) * xs[0];
#endif
#endif
}

// x vec4 j of the span starting at xi; j folds to a constant, so spans of fewer than 16 vec4s
// load only what they use.
fn xl(xi: u32, j: u32) -> vec4<f32> {
  if (j < EW) {
    return x[xi + j];
  }
  return vec4<f32>(0.0);
}

// Span i of the row starting at word vector rb, or zeros for a row this workgroup does not have.
fn wl(rb: u32, i: u32, r: u32) -> vec4<u32> {
  if (r < ROWS) {
    return w[rb + i];
  }
  return vec4<u32>(0u);
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
  let row0 = wid.x * ROWS;
  let mi = wid.y;
  let rv = params.row_words / 4u;
  let xb = mi * (params.kp / 4u);
  // Rows past n (the last workgroup) read row n−1 again: no branch per row, results dropped.
  let last = params.n - 1u;
  let r1 = min(row0 + 1u, last);
  let r2 = min(row0 + 2u, last);
  let r3 = min(row0 + 3u, last);
  let r4 = min(row0 + 4u, last);
  let r5 = min(row0 + 5u, last);
  let r6 = min(row0 + 6u, last);
  let r7 = min(row0 + 7u, last);
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  var a4 = vec4<f32>(0.0);
  var a5 = vec4<f32>(0.0);
  var a6 = vec4<f32>(0.0);
  var a7 = vec4<f32>(0.0);
  // A uniform trip count keeps the barriers and subgroup operations below in uniform control flow.
  let iters = (rv + WG - 1u) / WG;
  for (var it = 0u; it < iters; it++) {
    let i = it * WG + tid;
    if (i < rv) {
      // Every row's load first, so they are in flight together.
      let w0 = w[row0 * rv + i];
      let w1 = wl(r1 * rv, i, 1u);
      let w2 = wl(r2 * rv, i, 2u);
      let w3 = wl(r3 * rv, i, 3u);
      let w4 = wl(r4 * rv, i, 4u);
      let w5 = wl(r5 * rv, i, 5u);
      let w6 = wl(r6 * rv, i, 6u);
      let w7 = wl(r7 * rv, i, 7u);
      let xi = xb + i * EW;
      let xs = array<vec4<f32>, 16>(xl(xi, 0u), xl(xi, 1u), xl(xi, 2u), xl(xi, 3u), xl(xi, 4u), xl(xi, 5u),
                                    xl(xi, 6u), xl(xi, 7u), xl(xi, 8u), xl(xi, 9u), xl(xi, 10u), xl(xi, 11u),
                                    xl(xi, 12u), xl(xi, 13u), xl(xi, 14u), xl(xi, 15u));
      // Group of each octet, shared by the ROWS rows.
      var gs: array<u32, 8>;
#if QUANT
      let k0 = i * 4u * EW;
      gs[0] = group_of(k0);
      if (!SCALE_PER_VEC) {
        if (NOCT > 1u) { gs[1] = group_of(k0 + 8u); }
        if (NOCT > 2u) { gs[2] = group_of(k0 + 16u); gs[3] = group_of(k0 + 24u); }
        if (NOCT > 4u) {
          gs[4] = group_of(k0 + 32u); gs[5] = group_of(k0 + 40u);
          gs[6] = group_of(k0 + 48u); gs[7] = group_of(k0 + 56u);
        }
      }
#endif
      a0 += row_span(w0, row0, xs, gs);
      if (ROWS > 1u) { a1 += row_span(w1, r1, xs, gs); }
      if (ROWS > 2u) { a2 += row_span(w2, r2, xs, gs); }
      if (ROWS > 3u) { a3 += row_span(w3, r3, xs, gs); }
      if (ROWS > 4u) { a4 += row_span(w4, r4, xs, gs); }
      if (ROWS > 5u) { a5 += row_span(w5, r5, xs, gs); }
      if (ROWS > 6u) { a6 += row_span(w6, r6, xs, gs); }
      if (ROWS > 7u) { a7 += row_span(w7, r7, xs, gs); }
    }
  }
  // One sum per row, the lane powers divided out: rows 0..3 in p0, 4..7 in p1.
  let p0 = vec4<f32>(dot(a0, IPW), dot(a1, IPW), dot(a2, IPW), dot(a3, IPW));
  let p1 = vec4<f32>(dot(a4, IPW), dot(a5, IPW), dot(a6, IPW), dot(a7, IPW));
#if SUBGROUPS
  let s0 = subgroupAdd(p0);
  var s1 = vec4<f32>(0.0);
  if (ROWS > 4u) { s1 = subgroupAdd(p1); }
  if (lane == 0u) {
    red0[sg] = s0;
    red1[sg] = s1;
  }
  workgroupBarrier();
  if (tid < ROWS && row0 + tid < params.n) {
    var t = 0.0;
    for (var j = 0u; j < nsg; j++) {
      t += select(red0[j][tid & 3u], red1[j][tid & 3u], tid > 3u);
    }
    y[mi * params.y_stride + params.y_offset + row0 + tid] = t;
  }
#else
  red0[tid] = p0;
  red1[tid] = p1;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red0[tid] += red0[tid + s];
      if (ROWS > 4u) { red1[tid] += red1[tid + s]; }
    }
    workgroupBarrier();
  }
  if (tid < ROWS && row0 + tid < params.n) {
    y[mi * params.y_stride + params.y_offset + row0 + tid] = select(red0[0][tid & 3u], red1[0][tid & 3u], tid > 3u);
  }
#endif
}
