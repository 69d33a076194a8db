// gemv_a8.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for one to a few activation rows, with the
// activations rounded to int8 (an opt-in precision mode: the backend's Options.Int8Activations)
// so that codes times activations are packed 4×8-bit integer dot products (dot4I8Packed, SPIR-V
// OpSDot), as llama.cpp's CUDA MMVQ does. gemv_hw.wgsl spends ~3.3 instructions per 4-bit weight
// turning codes into floats and multiplying them; this kernel spends ~0.7 (two masks and two dot
// products per word of 8 codes, a few per block of 32) plus the activations' rounding, shared by
// the rows of a workgroup.
//
// The activations, exactly (wasm/quant.QuantizeActivations is the reference): each activation
// row, zero-padded to kp, is cut into blocks of QB elements from its start (16 for 8-bit codes:
// one vec4<u32> load of a row; 32 for 4- and 2-bit codes). For a block with amax = max |x_i|:
//   d   = amax · f32(1/127)                    (one rounding)
//   inv = 127 / amax, or 0 where amax < 2⁻¹²⁰  (WGSL division: within 2.5 ULP)
//   q_i = roundEven(x_i · inv)                 (an fma with 1.5·2²³ + 128: ties to even)
// so |q_i| ≤ 127, and x_i ≈ d·q_i. The division and a product the GPU may or may not round first
// can turn a code whose x_i·inv lies within |x_i·inv|·2⁻²¹ of a half-integer the other way; the
// conformance tests allow exactly those (quant.NearHalf; wasm/backend/gpu TestConformanceA8).
// With NORM the block holds x·gain (the RMS scale, common to the row, is applied after the sum,
// as in gemv_hw.wgsl).
//
// A thread quantizes the x of its span (one block; two for int2) once, for all its rows, and
// keeps it as packed words in the order of the weight bytes it meets: a weight word's codes
// become P = 8/BITS words of four bytes, bytes j of word p holding element j·P + p. Per row and
// block the products are summed in i32 (exact), corrected for the codes' offset with Σq (one dot
// product per packed word, shared by the rows), turned into f32 without a conversion instruction
// (added to the bits of 1.5·2²³, then 1.5·2²³ subtracted: exact below 2²²), and scaled once by
// s·d. How codes become signed bytes without a shift where they can (the byte's top field read
// in place is the code times 2^(8−BITS)):
//   int8 sym:   the word as it is;             asym: XOR 0x80 (u − 128), Σ += 128·Σq
//   int4 sym:   low nibbles (q + 8 after XOR 8) minus 8·Σq over them; high nibbles in place (16q)
//          asym: low nibbles (u); high nibbles in place XOR 0x80 (16(u − 8)), Σ += 8·Σq over them
//   int2: fields 0, 1 of each byte of the word and of the word >> 4, field 1 in place (4·code);
//         sym codes XOR 2 (q + 2), Σ −= 2·Σq
// and z·Σq is subtracted per row where codes are asymmetric. The high fields' products are summed
// apart and divided by their power of two (exact: a shift).
//
// Formats: codes (BITS 2, 4, 8), groups a multiple of QB or per channel (then every block lies in
// one group), f32 or f16 scales. Grid: (ceil(n / (ROWS·RG)), m, 1), n the rows of all weights
// with MULTI; workgroup WG threads; ROWS·RG rows a workgroup (1..8, or 16: RG groups of ROWS
// rows, which gemv_reduce.wgsl sums one after the other). The end is gemv_reduce.wgsl
// (RESIDUAL, NORM, subgroups); MULTI (two or three weights of one x) as in gemv_hw.wgsl, but a
// workgroup branches on its weight once, around its whole span loop (sum_spans), not once per
// span. With SILU_X the x this kernel quantizes is SiLU(x)·u (u at binding 15), formed in f32
// as ops_binary.wgsl SILU_MUL forms it (decode.wgsl's silu_mul), as gemv_hw.wgsl does.
// With SWIGLU (a feed-forward's gate and up, the second at bindings 8, 10, 12) a workgroup sums
// rows j..j+HALF−1 of the gate (its first HALF rows: the first group of 8 with 16 rows) and the
// same rows of up (the rest), the weight of each row a constant (decode.wgsl's row_weight: no
// branch on sel), reduces both and stores SiLU(gate)·up: one output per row pair.
// With PERSIST (Key.Persist) the grid is at most that many workgroups along x, each looping over
// row groups (sum_group) with its activation row quantized once into workgroup memory (quant_row)
// rather than once per group: fewer quantizations of x and no partial last wave of workgroups, but
// on an H200 slower at every count (it quantizes before any weight load is in flight; NOTES.md).
// With XQ and NORM, x is an RMS norm's input quantized as x·gain by the pre-pass (QUANTX with
// NORM), which stores each block's Σx² in the block's spare word; the kernel adds the Σx² of the
// blocks it loads into the row's and scales by the norm as when it reads x itself.

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
#if XQ
// x quantized by the pre-pass (QUANTX): XS vec4s a block, see main below.
@group(0) @binding(2) var<storage, read> xq: array<vec4<u32>>;
#else
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
#endif
#if QUANTX
@group(0) @binding(3) var<storage, read_write> xq_out: array<vec4<u32>>;
#else
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#endif
// MULTI: decode.wgsl declares the other weights (w1, w2) and multi, whose first rows are
// multiples of ROWS·RG here.
#if NORM
#if !XQ
@group(0) @binding(7) var<storage, read> gain: array<vec4<f32>>;
#endif
// The first vec4 of this workgroup's x row: the gain's vec4 j multiplies x's xrow + j.
var<private> xrow: u32;
// This thread's Σx² over the x vec4s it loaded (with XQ: the Σx² of the blocks it loaded, as
// the pre-pass stored them).
var<private> xss: f32;
#endif

// Activations per block, blocks per span (a span is one vec4<u32> of a weight row: 4·EW codes),
// x vec4s (and packed words) per block.
const QB: u32 = min(32u, 4u * EW);
// Rows of a workgroup.
const NR: u32 = ROWS * RG;
const NB: u32 = 4u * EW / QB;
const XV: u32 = QB / 4u;
// vec4<u32>s of a block quantized ahead (XQ, QUANTX): its XV packed words, then d, Σq, base and
// (NORM) the block's Σx².
const XS: u32 = (XV + 6u) / 4u;
// 1.5·2²³ and its bits: a float in [2²³, 2²⁴) has a mantissa unit of 1, so an integer t with
// |t| < 2²² added to it reads as itself in the low bits (two's complement in the low byte).
const RND: f32 = 12582912.0;
const RNDI: i32 = 0x4B400000;
// 1.5·2²³ + 128: an activation's code q lands as the bits 0x4B400000 + q + 128, its low byte
// q + 128 (0..255) with no borrow into the constant above it, so four of them pack by adds
// (pk) rather than masks and shifts.
const RNDX: f32 = 12583040.0;
// f32(1/127), the float the reference multiplies by (rounded to nearest from 1/127).
const INV127: f32 = bitcast<f32>(0x3C010204u);
// Below this a block quantizes to zeros: 127/amax would overflow f32.
const TINY: f32 = 0x1p-120f;
const ONES: u32 = 0x01010101u;
#if ASYM
const F8: u32 = 0x80808080u;
const F4LO: u32 = 0u;
const F4HI: u32 = 0x80808080u;
const F2LO: u32 = 0u;
const F2HI: u32 = 0u;
#else
const F8: u32 = 0u;
const F4LO: u32 = 0x08080808u;
const F4HI: u32 = 0u;
const F2LO: u32 = 0x02020202u;
const F2HI: u32 = 0x08080808u;
#endif

#if !XQ
// x vec4 j (a constant) of the block starting at vec4 xi, times the gain with NORM; SiLU(x)·u
// with SILU_X.
fn xl(xi: u32, j: u32) -> vec4<f32> {
#if SILU_X
  return silu_mul(x[xi + j], xu[xi + j]); // decode.wgsl: u at binding 15
#else
#if NORM
  let v = x[xi + j];
  xss = fma(v.x, v.x, fma(v.y, v.y, fma(v.z, v.z, fma(v.w, v.w, xss))));
  return v * gain[xi + j - xrow];
#else
  return x[xi + j];
#endif
#endif
}

#endif

// One block of activations as int8: packed codes (XV words, in the weights' byte order), the
// block's scale d, Σq, and base: RNDI plus the part of the codes' offset correction every row
// shares.
struct XB {
  p: array<u32, 8>,
  d: f32,
  sx: i32,
  base: i32,
}

// The codes of four floats biased by RNDX as one word of int8: a + b·2⁸ + c·2¹⁶ + e·2²⁴
// (mod 2³²) is Σ (q + 128)·2^(8i) plus the constant 0x4B400000·(1 + 2⁸) = 0x8B400000 (the
// higher shifts of it vanish mod 2³²); XOR 0x80 per byte turns q + 128 into q's two's
// complement. Four multiply-adds and a logic op, where pack4xU8 masks and shifts each lane.
fn pk(a: u32, b: u32, c: u32, e: u32) -> u32 {
  return ((a + b * 0x100u + c * 0x10000u + e * 0x1000000u) - 0x8B400000u) ^ 0x80808080u;
}

#if !XQ
// The block of activations starting at x vec4 xi, quantized.
fn quant_block(xi: u32) -> XB {
  var v: array<vec4<f32>, 8>;
  v[0] = xl(xi, 0u);
  v[1] = xl(xi, 1u);
  v[2] = xl(xi, 2u);
  v[3] = xl(xi, 3u);
  if (XV > 4u) {
    v[4] = xl(xi, 4u);
    v[5] = xl(xi, 5u);
    v[6] = xl(xi, 6u);
    v[7] = xl(xi, 7u);
  }
  return quant_vals(v, BITS, ASYM_CODES);
}
#endif

// A block of activations v (its first 4 vec4s for 8-bit codes, all 8 otherwise) quantized for
// codes of bits (8, 4 or 2) and scheme asym, in those codes' byte order (bits and asym are
// constants at every call: this kernel's codes, or with QTAIL the codes that read the blocks).
fn quant_vals(v: array<vec4<f32>, 8>, bits: u32, asym: bool) -> XB {
  let wide = bits != 8u; // blocks of 32, else 16
  var m = max(max(abs(v[0]), abs(v[1])), max(abs(v[2]), abs(v[3])));
  if (wide) {
    m = max(m, max(max(abs(v[4]), abs(v[5])), max(abs(v[6]), abs(v[7]))));
  }
  let amax = max(max(m.x, m.y), max(m.z, m.w));
  let inv = vec4<f32>(select(0.0, 127.0 / amax, amax >= TINY));
  var u: array<vec4<u32>, 8>;
  u[0] = bitcast<vec4<u32>>(fma(v[0], inv, vec4<f32>(RNDX)));
  u[1] = bitcast<vec4<u32>>(fma(v[1], inv, vec4<f32>(RNDX)));
  u[2] = bitcast<vec4<u32>>(fma(v[2], inv, vec4<f32>(RNDX)));
  u[3] = bitcast<vec4<u32>>(fma(v[3], inv, vec4<f32>(RNDX)));
  if (wide) {
    u[4] = bitcast<vec4<u32>>(fma(v[4], inv, vec4<f32>(RNDX)));
    u[5] = bitcast<vec4<u32>>(fma(v[5], inv, vec4<f32>(RNDX)));
    u[6] = bitcast<vec4<u32>>(fma(v[6], inv, vec4<f32>(RNDX)));
    u[7] = bitcast<vec4<u32>>(fma(v[7], inv, vec4<f32>(RNDX)));
  }
  var r: XB;
  r.d = amax * INV127;
  // Σq over the words that meet low fields (even) and high fields (odd).
  var se = 0;
  var so = 0;
  if (bits == 8u) {
    r.p[0] = pk(u[0].x, u[0].y, u[0].z, u[0].w);
    r.p[1] = pk(u[1].x, u[1].y, u[1].z, u[1].w);
    r.p[2] = pk(u[2].x, u[2].y, u[2].z, u[2].w);
    r.p[3] = pk(u[3].x, u[3].y, u[3].z, u[3].w);
    se = dot4I8Packed(r.p[0], ONES) + dot4I8Packed(r.p[1], ONES) + dot4I8Packed(r.p[2], ONES) + dot4I8Packed(r.p[3], ONES);
  } else {
    if (bits == 4u) {
      // Word wd of the span: elements 8wd..8wd+7 are x vec4s 2wd, 2wd+1; low nibbles even.
      r.p[0] = pk(u[0].x, u[0].z, u[1].x, u[1].z);
      r.p[1] = pk(u[0].y, u[0].w, u[1].y, u[1].w);
      r.p[2] = pk(u[2].x, u[2].z, u[3].x, u[3].z);
      r.p[3] = pk(u[2].y, u[2].w, u[3].y, u[3].w);
      r.p[4] = pk(u[4].x, u[4].z, u[5].x, u[5].z);
      r.p[5] = pk(u[4].y, u[4].w, u[5].y, u[5].w);
      r.p[6] = pk(u[6].x, u[6].z, u[7].x, u[7].z);
      r.p[7] = pk(u[6].y, u[6].w, u[7].y, u[7].w);
    } else {
      // Word wd of the block: elements 16wd..16wd+15 are x vec4s 4wd..4wd+3; field f of byte
      // j is element 4j + f. Packed word 4wd + f holds field f.
      r.p[0] = pk(u[0].x, u[1].x, u[2].x, u[3].x);
      r.p[1] = pk(u[0].y, u[1].y, u[2].y, u[3].y);
      r.p[2] = pk(u[0].z, u[1].z, u[2].z, u[3].z);
      r.p[3] = pk(u[0].w, u[1].w, u[2].w, u[3].w);
      r.p[4] = pk(u[4].x, u[5].x, u[6].x, u[7].x);
      r.p[5] = pk(u[4].y, u[5].y, u[6].y, u[7].y);
      r.p[6] = pk(u[4].z, u[5].z, u[6].z, u[7].z);
      r.p[7] = pk(u[4].w, u[5].w, u[6].w, u[7].w);
    }
    se = dot4I8Packed(r.p[0], ONES) + dot4I8Packed(r.p[2], ONES) + dot4I8Packed(r.p[4], ONES) + dot4I8Packed(r.p[6], ONES);
    so = dot4I8Packed(r.p[1], ONES) + dot4I8Packed(r.p[3], ONES) + dot4I8Packed(r.p[5], ONES) + dot4I8Packed(r.p[7], ONES);
  }
  r.sx = se + so;
  var c = 0;
  if (asym) {
    if (bits == 8u) {
      c = 128 * r.sx;
    } else if (bits == 4u) {
      c = 8 * so;
    }
  } else {
    if (bits == 4u) {
      c = -8 * se;
    } else if (bits == 2u) {
      c = -2 * r.sx;
    }
  }
  r.base = RNDI + c;
  return r;
}

#if QTAIL
// QTAIL (Key.NormTail, one weight, 8 rows a workgroup): y is also an RMS norm's input, and the
// GEMVs that read the norm read its x·gain as activation blocks (XQ with NORM) for codes of
// TBITS bits, which this dispatch writes at binding 21 in the pre-pass's layout (QUANTX with
// NORM: each block's Σy² in its spare word): the norm's pre-pass is no dispatch of its own.
// With Key.XTail (SWIGLU, not TAIL_NORM) the blocks are of y itself, for the down GEMV (XQ). A
// block (TQB outputs) spans TQB/TROWS workgroups, so its outputs pass through a handoff (binding
// 19, a word per output): each workgroup stores its TROWS as the complement of their bits (a NaN
// made the canonical one first, so no stored word is 0) and counts itself at the block's
// counter (binding 19 too: the counts in its first n words, the outputs after them, as
// handoff.wgsl words); the workgroup that counts last loads the block's outputs, quantizes the
// block and zeroes its words and its counter for the next dispatch. n is a multiple of TQB (the
// readers' rows are whole blocks).
@group(0) @binding(19) var<storage, read_write> thand: array<atomic<u32>>;
#if TAIL_NORM
@group(0) @binding(20) var<storage, read> tgain: array<f32>;
#endif
@group(0) @binding(21) var<storage, read_write> tq: array<vec4<u32>>;
var<workgroup> tail_last: u32;
var<workgroup> tail_v: array<f32, 32>;
#if TAIL_NORM
// The gain of the block's output tid (tid < TQB), loaded by every workgroup before its weights
// (pre_tail): the block's last workgroup would otherwise wait on it after the handoff's loads.
var<workgroup> tail_g: array<f32, 32>;
var<private> pre_gain: f32;

fn pre_tail(row0: u32, tid: u32) {
  pre_gain = tgain[(row0 / TQB) * TQB + min(tid, TQB - 1u)];
}
#endif
// The readers' block: activations, packed words, vec4s stored.
const TQB: u32 = min(32u, 128u / TBITS);
const TXV: u32 = TQB / 4u;
const TXS: u32 = (TXV + 6u) / 4u;

// tail_put hands output (mi, row) to the block's last workgroup.
fn tail_put(mi: u32, row: u32, v: f32) {
  atomicStore(&thand[(mi + 1u) * params.n + row], hand_word(v));
}

// q_tail counts this workgroup's outputs (row0…row0+TROWS−1 of activation row mi) handed over
// and, in the block's last workgroup, writes the block. Called in uniform control flow.
fn q_tail(mi: u32, row0: u32, tid: u32) {
  // The workgroup's handoff stores all made before it counts itself (a software adapter that ran
  // the last workgroup on the thread of one that counted early would wait on stores that thread
  // can no longer make).
  storageBarrier();
  let nbl = params.n / TQB;
  let blk = row0 / TQB;
  if (tid == 0u) {
    tail_last = select(0u, 1u, atomicAdd(&thand[mi * nbl + blk], 1u) == TQB / TROWS - 1u);
  }
  if (workgroupUniformLoad(&tail_last) == 0u) {
    return;
  }
  for (var t = tid; t < TQB; t += WG) {
    let i = (mi + 1u) * params.n + blk * TQB + t;
    var w = atomicLoad(&thand[i]);
    for (var s = 0u; w == 0u && s < HAND_SPIN; s++) {
      w = atomicLoad(&thand[i]);
    }
    atomicStore(&thand[i], 0u);
    tail_v[t] = hand_value(w);
#if TAIL_NORM
    var g = pre_gain;
    if (t != tid) {
      g = tgain[blk * TQB + t]; // workgroups of fewer than TQB threads
    }
    tail_g[t] = g;
#endif
  }
  workgroupBarrier();
  if (tid == 0u) {
    // As the pre-pass forms them: Σy² vec4 by vec4 in order, x·gain per element (TAIL_NORM).
    var v: array<vec4<f32>, 8>;
    var ss = 0.0;
    for (var j = 0u; j < TXV; j++) {
      let h = vec4<f32>(tail_v[4u * j], tail_v[4u * j + 1u], tail_v[4u * j + 2u], tail_v[4u * j + 3u]);
      ss = fma(h.x, h.x, fma(h.y, h.y, fma(h.z, h.z, fma(h.w, h.w, ss))));
      v[j] = h;
#if TAIL_NORM
      v[j] = h * vec4<f32>(tail_g[4u * j], tail_g[4u * j + 1u], tail_g[4u * j + 2u], tail_g[4u * j + 3u]);
#endif
    }
    let q = block_words(quant_vals(v, TBITS, TASYM), TXV, ss);
    let o = (mi * nbl + blk) * TXS;
    for (var j = 0u; j < TXS; j++) {
      tq[o + j] = q[j];
    }
    atomicStore(&thand[mi * nbl + blk], 0u);
  }
}
#endif

// A quantized block of xv packed words as it is stored (XQ reads it: load_block): the words,
// then d, Σq, base and ss (an RMS norm's Σx² over the block, or 0), (xv + 6)/4 vec4s.
fn block_words(r: XB, xv: u32, ss: f32) -> array<vec4<u32>, 3> {
  let m = vec4<u32>(bitcast<u32>(r.d), bitcast<u32>(r.sx), bitcast<u32>(r.base), bitcast<u32>(ss));
  var q: array<vec4<u32>, 3>;
  q[0] = vec4<u32>(r.p[0], r.p[1], r.p[2], r.p[3]);
  q[1] = m;
  if (xv > 4u) {
    q[1] = vec4<u32>(r.p[4], r.p[5], r.p[6], r.p[7]);
    q[2] = m;
  }
  return q;
}

#if PERSIST
// PERSIST: the grid holds at most Key.Persist workgroups along x, each summing row groups
// wid.x, wid.x + that count, …; a workgroup quantizes its activation row once, into workgroup
// memory, before any group, where every workgroup of the plain launch (one group each) quantizes
// the whole row again. Rows of up to XCAP blocks (params.kp ≤ XCAP·QB); longer ones quantize
// per span as the plain launch does (xin_wg false), in the same loop over groups.
var<workgroup> xw: array<u32, XCAP * XV>;
var<workgroup> xd: array<f32, XCAP>;
var<workgroup> xsx: array<i32, XCAP>;
var<workgroup> xbase: array<i32, XCAP>;
// Whether this dispatch's row fits xw (uniform: from params).
var<private> xin_wg: bool;

// The blocks of the activation row starting at x vec4 xb, quantized into xw by the workgroup's
// threads (block b by thread b mod WG), then a barrier.
fn quant_row(xb: u32, tid: u32) {
  for (var b = tid; b < params.kp / QB; b += WG) {
    var r = quant_block(xb + b * XV);
    for (var j = 0u; j < XV; j++) {
      xw[b * XV + j] = r.p[j];
    }
    xd[b] = r.d;
    xsx[b] = r.sx;
    xbase[b] = r.base;
  }
  workgroupBarrier();
}

// Block b of the row quant_row stored.
fn wg_block(b: u32) -> XB {
  var r: XB;
  for (var j = 0u; j < XV; j++) {
    r.p[j] = xw[b * XV + j];
  }
  r.d = xd[b];
  r.sx = xsx[b];
  r.base = xbase[b];
  return r;
}

// Block b of the row, which starts at x vec4 xb: from xw, or quantized here where the row is
// longer than xw.
fn x_block(xb: u32, b: u32) -> XB {
  if (xin_wg) {
    return wg_block(b);
  }
  return quant_block(xb + b * XV);
}
#endif

#if XQ
// Block blk of activation row mi as the pre-pass stored it.
fn load_block(mi: u32, blk: u32) -> XB {
  let o = (mi * (params.kp / QB) + blk) * XS;
  let a = xq[o];
  var r: XB;
  r.p[0] = a.x;
  r.p[1] = a.y;
  r.p[2] = a.z;
  r.p[3] = a.w;
  var t = xq[o + 1u];
  if (XV > 4u) {
    r.p[4] = t.x;
    r.p[5] = t.y;
    r.p[6] = t.z;
    r.p[7] = t.w;
    t = xq[o + 2u];
  }
  r.d = bitcast<f32>(t.x);
  r.sx = bitcast<i32>(t.y);
  r.base = bitcast<i32>(t.z);
#if NORM
  xss += bitcast<f32>(t.w); // the block's Σx², which the reduction adds up with the rows
#endif
  return r;
}
#endif

#if QUANTX
// The pre-pass (shaders.A8Quant): thread (blk, mi) quantizes block blk of activation row mi and
// stores it as XS vec4s, for a GEMV that reads x quantized (XQ). One dispatch more, but the
// activations are quantized once per GEMV rather than once per workgroup.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let nbl = params.kp / QB;
  let blk = gid.x;
  let mi = gid.y;
  if (blk >= nbl) {
    return;
  }
#if NORM
  // An RMS norm's x: the block of x·gain is quantized, and its Σx² stored beside it (the GEMV
  // sums them into the row's, and scales its sums by the norm as it does reading x itself).
  xrow = mi * (params.kp / 4u);
  xss = 0.0;
#endif
  let r = quant_block(mi * (params.kp / 4u) + blk * XV);
  var ss = 0.0;
#if NORM
  ss = xss;
#endif
  let q = block_words(r, XV, ss);
  let o = (mi * nbl + blk) * XS;
  for (var j = 0u; j < XS; j++) {
    xq_out[o + j] = q[j];
  }
}
#else

// RNDI + Σ (code − offset)·q over block b (a constant) of a row's span wv, where a starts at
// the block's base (the offsets are in it, see quant_block and base_at).
fn rowdot(wv: vec4<u32>, b: u32, xp: array<u32, 8>, a0: i32) -> i32 {
  var a = a0;
  var h = 0;
  if (BITS == 8u) {
    a = dot4I8Packed(wv.x ^ F8, xp[0]) + a;
    a = dot4I8Packed(wv.y ^ F8, xp[1]) + a;
    a = dot4I8Packed(wv.z ^ F8, xp[2]) + a;
    a = dot4I8Packed(wv.w ^ F8, xp[3]) + a;
    return a;
  }
  if (BITS == 4u) {
    a = dot4I8Packed((wv.x & 0x0F0F0F0Fu) ^ F4LO, xp[0]) + a;
    h = dot4I8Packed((wv.x & 0xF0F0F0F0u) ^ F4HI, xp[1]) + h;
    a = dot4I8Packed((wv.y & 0x0F0F0F0Fu) ^ F4LO, xp[2]) + a;
    h = dot4I8Packed((wv.y & 0xF0F0F0F0u) ^ F4HI, xp[3]) + h;
    a = dot4I8Packed((wv.z & 0x0F0F0F0Fu) ^ F4LO, xp[4]) + a;
    h = dot4I8Packed((wv.z & 0xF0F0F0F0u) ^ F4HI, xp[5]) + h;
    a = dot4I8Packed((wv.w & 0x0F0F0F0Fu) ^ F4LO, xp[6]) + a;
    h = dot4I8Packed((wv.w & 0xF0F0F0F0u) ^ F4HI, xp[7]) + h;
    return a + (h >> 4u);
  }
  let w0 = wv[2u * b];
  let w1 = wv[2u * b + 1u];
  let t0 = w0 >> 4u;
  let t1 = w1 >> 4u;
  a = dot4I8Packed((w0 & 0x03030303u) ^ F2LO, xp[0]) + a;
  h = dot4I8Packed((w0 & 0x0C0C0C0Cu) ^ F2HI, xp[1]) + h;
  a = dot4I8Packed((t0 & 0x03030303u) ^ F2LO, xp[2]) + a;
  h = dot4I8Packed((t0 & 0x0C0C0C0Cu) ^ F2HI, xp[3]) + h;
  a = dot4I8Packed((w1 & 0x03030303u) ^ F2LO, xp[4]) + a;
  h = dot4I8Packed((w1 & 0x0C0C0C0Cu) ^ F2HI, xp[5]) + h;
  a = dot4I8Packed((t1 & 0x03030303u) ^ F2LO, xp[6]) + a;
  h = dot4I8Packed((t1 & 0x0C0C0C0Cu) ^ F2HI, xp[7]) + h;
  return a + (h >> 2u);
}

// One step of a thread: span i of each of its rows, and the scale (and zero point) of each of
// the span's blocks.
struct Span {
  w: array<vec4<u32>, 16>,
  s: array<vec2<f32>, 16>,
#if ASYM
  z: array<vec2<i32>, 16>,
#endif
}

#if ASYM
// The zero point of group g of row of weight which as an integer.
fn zcode(which: u32, row: u32, g: u32) -> i32 {
  let wd = zero_word_of(which, row * params.zero_words + g / EW);
  return i32((wd >> ((g % EW) * BITS)) & ((1u << BITS) - 1u));
}
#endif

// Span i of row r (a constant) of weight which (a constant, but with 16 rows: main), or zeros
// for a row this variant does not have.
fn wl(rows: array<u32, 16>, rv: u32, i: u32, r: u32, which: u32) -> vec4<u32> {
  if (r >= NR) {
    return vec4<u32>(0u);
  }
#if W1
  return w_of(row_weight(r, which), rows[r] * rv + i);
#else
  return w[rows[r] * rv + i];
#endif
}

// Row r's scale and zero point of the span's blocks (groups g0, g1) in weight which, into sp.
fn span_meta(sp: ptr<function, Span>, rows: array<u32, 16>, r: u32, g0: u32, g1: u32, which: u32) {
  if (r >= NR) {
    return;
  }
  let wr = row_weight(r, which); // SWIGLU: the gate's or up's, by r
  // One block per span (NB 1) reads one scale; int2's two blocks may lie in two groups.
  let s0 = scale_at_of(wr, rows[r], g0);
  var s1 = s0;
  if (NB > 1u) {
    s1 = scale_at_of(wr, rows[r], g1);
  }
  (*sp).s[r] = vec2<f32>(s0, s1);
#if ASYM
  let z0 = zcode(wr, rows[r], g0);
  var z1 = z0;
  if (NB > 1u) {
    z1 = zcode(wr, rows[r], g1);
  }
  (*sp).z[r] = vec2<i32>(z0, z1);
#endif
}

// span_meta of rows r0..r0+7 (r0 a constant).
fn span_meta8(sp: ptr<function, Span>, rows: array<u32, 16>, r0: u32, g0: u32, g1: u32, which: u32) {
  span_meta(sp, rows, r0, g0, g1, which);
  span_meta(sp, rows, r0 + 1u, g0, g1, which);
  span_meta(sp, rows, r0 + 2u, g0, g1, which);
  span_meta(sp, rows, r0 + 3u, g0, g1, which);
  span_meta(sp, rows, r0 + 4u, g0, g1, which);
  span_meta(sp, rows, r0 + 5u, g0, g1, which);
  span_meta(sp, rows, r0 + 6u, g0, g1, which);
  span_meta(sp, rows, r0 + 7u, g0, g1, which);
}

// Span i of every row of the workgroup in weight which (see main): the weight loads first, so
// they are in flight together.
fn load_span(rows: array<u32, 16>, rv: u32, i: u32, which: u32) -> Span {
  var sp: Span;
  sp.w = array<vec4<u32>, 16>(wl(rows, rv, i, 0u, which), wl(rows, rv, i, 1u, which), wl(rows, rv, i, 2u, which),
                              wl(rows, rv, i, 3u, which), wl(rows, rv, i, 4u, which), wl(rows, rv, i, 5u, which),
                              wl(rows, rv, i, 6u, which), wl(rows, rv, i, 7u, which), wl(rows, rv, i, 8u, which),
                              wl(rows, rv, i, 9u, which), wl(rows, rv, i, 10u, which), wl(rows, rv, i, 11u, which),
                              wl(rows, rv, i, 12u, which), wl(rows, rv, i, 13u, which), wl(rows, rv, i, 14u, which),
                              wl(rows, rv, i, 15u, which));
  let k0 = i * 4u * EW;
  let g0 = group_of(k0);
  var g1 = g0;
  if (NB > 1u) {
    g1 = group_of(k0 + QB);
  }
  span_meta8(&sp, rows, 0u, g0, g1, which);
  if (NR > 8u) {
    span_meta8(&sp, rows, 8u, g0, g1, which);
  }
  return sp;
}

// a + s·d·Σ (code − zero)·q over block b of row r's span (r, b constants).
fn row1(sp: Span, r: u32, b: u32, xq: XB, a: f32) -> f32 {
  var base = xq.base;
#if ASYM
  base -= sp.z[r][b] * xq.sx;
#endif
  let t = bitcast<f32>(rowdot(sp.w[r], b, xq.p, base)) - RND;
  return fma(t, sp.s[r][b] * xq.d, a);
}

// Block b of the span of every row added to acc.
fn rows_block(sp: Span, b: u32, xq: XB, acc: array<f32, 16>) -> array<f32, 16> {
  var a = acc;
  a[0] = row1(sp, 0u, b, xq, a[0]);
  if (NR > 1u) { a[1] = row1(sp, 1u, b, xq, a[1]); }
  if (NR > 2u) { a[2] = row1(sp, 2u, b, xq, a[2]); }
  if (NR > 3u) { a[3] = row1(sp, 3u, b, xq, a[3]); }
  if (NR > 4u) { a[4] = row1(sp, 4u, b, xq, a[4]); }
  if (NR > 5u) { a[5] = row1(sp, 5u, b, xq, a[5]); }
  if (NR > 6u) { a[6] = row1(sp, 6u, b, xq, a[6]); }
  if (NR > 7u) { a[7] = row1(sp, 7u, b, xq, a[7]); }
  if (NR > 8u) {
    a[8] = row1(sp, 8u, b, xq, a[8]);
    a[9] = row1(sp, 9u, b, xq, a[9]);
    a[10] = row1(sp, 10u, b, xq, a[10]);
    a[11] = row1(sp, 11u, b, xq, a[11]);
    a[12] = row1(sp, 12u, b, xq, a[12]);
    a[13] = row1(sp, 13u, b, xq, a[13]);
    a[14] = row1(sp, 14u, b, xq, a[14]);
    a[15] = row1(sp, 15u, b, xq, a[15]);
  }
  return a;
}

// Span sp (index i) of every row added to acc, with the span's activations.
fn span_sums(sp: Span, i: u32, mi: u32, xb: u32, acc: array<f32, 16>) -> array<f32, 16> {
  var a = acc;
#if XQ
  a = rows_block(sp, 0u, load_block(mi, i * NB), a);
  if (NB > 1u) {
    a = rows_block(sp, 1u, load_block(mi, i * NB + 1u), a);
  }
#else
#if PERSIST
  a = rows_block(sp, 0u, x_block(xb, i * NB), a);
  if (NB > 1u) {
    a = rows_block(sp, 1u, x_block(xb, i * NB + 1u), a);
  }
#else
  let xi = xb + i * EW;
  a = rows_block(sp, 0u, quant_block(xi), a);
  if (NB > 1u) {
    a = rows_block(sp, 1u, quant_block(xi + XV), a);
  }
#endif
#endif
  return a;
}

// This thread's sums over its spans (i = tid, tid + WG, ...) of every row of weight which (with
// 8 rows a constant in each call: its loads, scales and zero points fold to one weight's buffers).
// With PREFETCH (Key.Prefetch) the next span's weights are loaded before this one is summed, so
// a thread has two spans' loads in flight: a decode step's GEMVs launch too few threads to fill
// the GPU's slots (a 4096-row GEMV at 128×8: 512 workgroups), and a thread otherwise waits out
// each span's latency in turn.
fn sum_spans(which: u32, rows: array<u32, 16>, rv: u32, tid: u32, mi: u32, xb: u32) -> array<f32, 16> {
  var acc: array<f32, 16>;
  // A uniform trip count keeps the barriers and subgroup operations after it in uniform control
  // flow.
  let iters = (rv + WG - 1u) / WG;
  if (PREFETCH) {
    var next: Span;
    if (tid < rv) {
      next = load_span(rows, rv, tid, which);
    }
    for (var it = 0u; it < iters; it++) {
      let i = it * WG + tid;
      let sp = next;
      if (i + WG < rv) {
        next = load_span(rows, rv, i + WG, which);
      }
      if (i < rv) {
        acc = span_sums(sp, i, mi, xb, acc);
      }
    }
    return acc;
  }
  for (var it = 0u; it < iters; it++) {
    let i = it * WG + tid;
    if (i < rv) {
      acc = span_sums(load_span(rows, rv, i, which), i, mi, xb, acc);
    }
  }
  return acc;
}

// The row groups of the grid (Key.Rows rows each): the weights' rows, with SWIGLU the gate's
// and up's.
fn row_groups() -> u32 {
#if MULTI
  return (multi.start[3] + NR - 1u) / NR;
#else
#if SWIGLU
  return (2u * params.n + NR - 1u) / NR;
#else
  return (params.n + NR - 1u) / NR;
#endif
#endif
}

// Row group grp (grid rows grp·NR…) of activation row mi: its sums, reduced and stored.
fn sum_group(grp: u32, tid: u32, mi: u32, rv: u32, xb: u32, sgi: vec3<u32>) {
  let row0 = weight_row(grp * NR);
  pre_store(mi, row0, tid); // gemv_reduce.wgsl: the store's operands in flight now
#if TAIL_NORM
  pre_tail(row0, tid);
#endif
  // Rows past n (the last workgroup) read row n−1 again: no branch per row, results dropped.
  let last = out_rows() - 1u;
  let rows = array<u32, 16>(row_at(row0, 0u, last), row_at(row0, 1u, last), row_at(row0, 2u, last), row_at(row0, 3u, last),
                            row_at(row0, 4u, last), row_at(row0, 5u, last), row_at(row0, 6u, last), row_at(row0, 7u, last),
                            row_at(row0, 8u, last), row_at(row0, 9u, last), row_at(row0, 10u, last), row_at(row0, 11u, last),
                            row_at(row0, 12u, last), row_at(row0, 13u, last), row_at(row0, 14u, last), row_at(row0, 15u, last));
#if NORM
#if PERSIST
  if (!xin_wg) {
    xss = 0.0; // the spans below add the row's Σx² again
  }
#else
  xss = 0.0;
#endif
#endif
  // With MULTI and 8 rows a workgroup, one branch a workgroup on its weight (sel): each case's
  // span loop reads one weight's buffers, which being a constant in each call. On an H200 (runs
  // 17–20, NOTES.md) that took q, k, v's GEMV from 36.1 to 23.2 µs; but with 16 rows, where the
  // loop's body is twice as long, gate and up's took 34.3 µs against 25.9 with the branch on sel
  // at every load, which 16 rows keep (which not a constant: w_of's branch per load).
  var acc: array<f32, 16>;
  if (NR > 8u) {
    acc = sum_spans(cur(), rows, rv, tid, mi, xb);
  } else {
    switch (cur()) {
#if MULTI
      case 1u: { acc = sum_spans(1u, rows, rv, tid, mi, xb); }
#if MULTI3
      case 2u: { acc = sum_spans(2u, rows, rv, tid, mi, xb); }
#endif
#endif
      default: { acc = sum_spans(0u, rows, rv, tid, mi, xb); }
    }
  }
  var ss = 0.0;
#if NORM
  ss = xss;
#endif
#if SWIGLU
  if (RG > 1u) {
    // The gate's 8 rows (the first group), then up's: thread tid keeps its gate total while the
    // workgroup memory sums up's.
    reduce_rows(vec4<f32>(acc[0], acc[1], acc[2], acc[3]), vec4<f32>(acc[4], acc[5], acc[6], acc[7]), ss, tid, sgi);
    let g = row_total(tid, sgi);
    workgroupBarrier();
    reduce_rows(vec4<f32>(acc[8], acc[9], acc[10], acc[11]), vec4<f32>(acc[12], acc[13], acc[14], acc[15]), ss, tid, sgi);
    swiglu_store(g, row_total(tid, sgi), tid, row0, mi);
  } else {
    // Rows 0..HALF−1 the gate's, HALF.. up's.
    reduce_rows(vec4<f32>(acc[0], acc[1], acc[2], acc[3]), vec4<f32>(acc[4], acc[5], acc[6], acc[7]), ss, tid, sgi);
    swiglu_store(row_total(tid, sgi), row_total(tid + HALF, sgi), tid, row0, mi);
  }
#else
  // Rows 0..3 in the first vec4, 4..7 in the second; then the second group's.
  reduce_store(vec4<f32>(acc[0], acc[1], acc[2], acc[3]), vec4<f32>(acc[4], acc[5], acc[6], acc[7]), ss, tid, sgi, row0, mi);
  if (RG > 1u) {
    // The reduction's workgroup memory is read until the first group's rows are stored.
    workgroupBarrier();
    reduce_store(vec4<f32>(acc[8], acc[9], acc[10], acc[11]), vec4<f32>(acc[12], acc[13], acc[14], acc[15]), ss, tid, sgi, row0 + 8u, mi);
  }
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32,
#if PERSIST
        @builtin(num_workgroups) nwg: vec3<u32>,
#endif
#if SUBGROUPS
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_id) sg: u32,
        @builtin(num_subgroups) nsg: u32,
#endif
) {
  let mi = wid.y;
  let rv = params.row_words / 4u;
  let xb = mi * (params.kp / 4u);
#if NORM
  xrow = xb;
  xss = 0.0;
#endif
  var sgi = vec3<u32>(0u);
#if SUBGROUPS
  sgi = vec3<u32>(lane, sg, nsg);
#endif
#if PERSIST
  let fits = params.kp / QB <= XCAP;
  xin_wg = fits;
  if (fits) {
    quant_row(xb, tid);
  }
  for (var g = wid.x; g < row_groups(); g += nwg.x) {
    sum_group(g, tid, mi, rv, xb, sgi);
    // The reduction's workgroup memory is read until the group's rows are stored.
    workgroupBarrier();
  }
#else
  sum_group(wid.x, tid, mi, rv, xb, sgi);
#endif
}
#endif
