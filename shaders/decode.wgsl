// decode.wgsl: reading nibble's packed weights (wasm/quant is the reference layout).
//
// Prepended to every matmul kernel. The generated header above it defines:
//   BITS (2, 4, 8: codes; 16: IEEE half weights; 32: float32 weights), EW = 32 / BITS elements per
//   u32 word, and the #if names QUANT, ASYM, SCALE_F16, F16 (products in f16), SUBGROUPS. The group
//   length is a uniform (params.group): a const would multiply the variants by six for no
//   measurable gain, since one division per 16-64 codes is noise next to the loads.
//
// Byte layout of one weight row (RowStride padded by the backend to 16 bytes so that GEMV can
// read vec4<u32>; the padding codes are 0 and the matching x entries are 0):
//   int8  word = 4 codes,  element 4w+e in bits [8e, 8e+8)
//   int4  word = 8 codes,  element 8w+e in bits [4e, 4e+4)   (element 2i in the low nibble)
//   int2  word = 16 codes, element 16w+e in bits [2e, 2e+2)
//   f16   word = 2 halves, element 2w+e in bits [16e, 16e+16)
//   f32   word = 1 float
// Symmetric codes are signed two's complement; asymmetric codes and zero points are unsigned.
// Scales are [N][G] f32, or f16 packed two per u32 (index i in half i&1 of word i>>1).
// Zero points are packed like codes, ZeroStride bytes (params.zero_words words) per row.

struct Params {
  n: u32,          // weight rows in this chunk (the split path binds a row range per dispatch)
  k: u32,          // logical K
  kp: u32,         // padded K: elements per padded row, also the x row stride
  row_words: u32,  // u32 words per padded weight row
  groups: u32,     // groups per row
  zero_words: u32, // u32 words per row of packed zero points
  m: u32,          // activation rows
  y_stride: u32,   // N of the whole weight: the dst row stride
  y_offset: u32,   // first row of this chunk within dst
  group: u32,     // group length along K (K itself when per-channel)
  group_shift: u32, // log2(group) when group is a power of two, else 32: a shift, not a division
  eps: f32,         // NORM: the RMS norm's epsilon
}

@group(0) @binding(0) var<uniform> params: Params;
#if SCALE_F16
alias ScaleWord = u32;
#else
alias ScaleWord = f32;
#endif
#if QUANT
@group(0) @binding(4) var<storage, read> scales: array<ScaleWord>;
#endif
#if ASYM
@group(0) @binding(5) var<storage, read> zeros: array<u32>;
#endif
#if MULTI
// gemv_hw.wgsl, gemv_a8.wgsl MULTI: which weight this workgroup's rows are in (0: the one at
// bindings 1, 4, 5), set before any load; the codes, scales and zero points of the second and
// third (the first's codes, w, each kernel declares: gemm_tile.wgsl's are not vec4s).
var<private> sel: u32;
// Per weight: its first row in the grid's rows (a multiple of the rows a workgroup sums; start[3]
// past the last), its rows, and where its outputs start in y (activation row mi of weight j at
// ybase[j] + mi·n[j]). KV_WRITE (gemv_reduce.wgsl's kv_store): the caches' rows S and the
// rotation's pairs a head P in kv.x, kv.y; the words of the position, cos and sin tables in
// kv_in in kv.z, kv.w and kv_sin.
struct Multi {
  start: vec4<u32>,
  n: vec4<u32>,
  ybase: vec4<u32>,
#if KV_WRITE
  kv: vec4<u32>,
  kv_sin: u32,
#endif
}
@group(0) @binding(14) var<uniform> multi: Multi;
#endif
#if W1
// The second weight (MULTI's; SWIGLU's up) and the third (MULTI3), bindings 8-13.
@group(0) @binding(8) var<storage, read> w1: array<vec4<u32>>;
#if MULTI3
@group(0) @binding(9) var<storage, read> w2: array<vec4<u32>>;
#endif
#if QUANT
@group(0) @binding(10) var<storage, read> scales1: array<ScaleWord>;
#if MULTI3
@group(0) @binding(11) var<storage, read> scales2: array<ScaleWord>;
#endif
#endif
#if ASYM
@group(0) @binding(12) var<storage, read> zeros1: array<u32>;
#if MULTI3
@group(0) @binding(13) var<storage, read> zeros2: array<u32>;
#endif
#endif
#endif

#if W1
// Span j of weight which's codes. The kernels pass a constant which, so the choice folds away.
fn w_of(which: u32, j: u32) -> vec4<u32> {
  if (which == 1u) {
    return w1[j];
  }
#if MULTI3
  if (which == 2u) {
    return w2[j];
  }
#endif
  return w[j];
}
#endif

#if SWIGLU
// gemv_hw.wgsl, gemv_a8.wgsl SWIGLU: SiLU(g)·u of one output, g the gate's row and u up's, as
// ops_binary.wgsl SILU_MUL forms it (the same f32 operations).
fn silu_mul1(g: f32, u: f32) -> f32 {
  let e = exp(-abs(g));
  return g * select(e / (1.0 + e), 1.0 / (1.0 + e), g >= 0.0) * u;
}
#endif

#if SILU_X
// gemv_hw.wgsl, gemv_a8.wgsl SILU_X: x's second factor, the kernel's x being SiLU(x)·xu (a
// feed-forward's gate and up).
@group(0) @binding(15) var<storage, read> xu: array<vec4<f32>>;

// SiLU(g)·u as ops_binary.wgsl SILU_MUL forms it, the same f32 operations.
fn silu_mul(g: vec4<f32>, u: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(g));
  return g * select(e / (1.0 + e), 1.0 / (1.0 + e), g >= vec4<f32>(0.0)) * u;
}
#endif

// The first row, within its weight, of a workgroup whose first row in the grid is row0. With
// MULTI it also sets sel, the weight those rows are in (each weight starts on a whole number of
// workgroups, so one choice serves the workgroup); else the grid's rows are the weight's.
fn weight_row(row0: u32) -> u32 {
#if MULTI
  sel = select(0u, 1u, row0 >= multi.start[1]);
#if MULTI3
  sel = select(sel, 2u, row0 >= multi.start[2]);
#endif
  return row0 - multi.start[sel];
#else
#if SWIGLU
  // A workgroup's rows are HALF rows of the gate and the same HALF rows of up.
  return row0 / 2u;
#else
  return row0;
#endif
#endif
}

// Row r (a constant) of a workgroup whose first row within its weight is row0, or last past
// the weight's end (read again, its result dropped: no branch per row). With SWIGLU rows
// 0..HALF−1 are the gate's and HALF.. up's, the same rows of each: r mod HALF.
fn row_at(row0: u32, r: u32, last: u32) -> u32 {
#if SWIGLU
  return min(row0 + r % HALF, last);
#else
  return min(row0 + r, last);
#endif
}

// The weight row r (a constant) of a workgroup reads: which (the workgroup's), or with SWIGLU
// the gate (0) for rows 0..HALF−1 and up (1) for the rest, a constant per row: no branch.
fn row_weight(r: u32, which: u32) -> u32 {
#if SWIGLU
  return select(0u, 1u, r >= HALF);
#else
  return which;
#endif
}

// Group of the element k of a row. Groups are multiples of 8 long, so an aligned run of 8 codes
// (one int4 word, half an int2 word) never straddles two groups. Padding elements past K could
// land in group G: clamped, they read a real scale and multiply x = 0.
fn group_of(k: u32) -> u32 {
  if (params.group_shift < 32u) {
    return min(k >> params.group_shift, params.groups - 1u);
  }
  return min(k / params.group, params.groups - 1u);
}

// The weight a read takes its buffers from: MULTI's sel (the workgroup's), else the only one.
// The *_of readers take it as an argument: gemv_hw.wgsl passes a constant, branching once per
// span rather than once per load; gemv_a8.wgsl once per workgroup at 8 rows, and passes sel
// itself at 16 (a branch per load: its main says why).
fn cur() -> u32 {
#if MULTI
  return sel;
#else
  return 0u;
#endif
}

#if QUANT
// Word j of weight which's scales.
fn scale_word_of(which: u32, j: u32) -> ScaleWord {
#if W1
  if (which == 1u) {
    return scales1[j];
  }
#if MULTI3
  if (which == 2u) {
    return scales2[j];
  }
#endif
#endif
  return scales[j];
}

fn scale_word(j: u32) -> ScaleWord {
  return scale_word_of(cur(), j);
}

fn scale_at_of(which: u32, row: u32, g: u32) -> f32 {
  let i = row * params.groups + g;
#if SCALE_F16
  let pair = unpack2x16float(scale_word_of(which, i >> 1u));
  return select(pair.x, pair.y, (i & 1u) == 1u);
#else
  return scale_word_of(which, i);
#endif
}

fn scale_at(row: u32, g: u32) -> f32 {
  return scale_at_of(cur(), row, g);
}
#endif

#if ASYM
// Word j of weight which's packed zero points.
fn zero_word_of(which: u32, j: u32) -> u32 {
#if W1
  if (which == 1u) {
    return zeros1[j];
  }
#if MULTI3
  if (which == 2u) {
    return zeros2[j];
  }
#endif
#endif
  return zeros[j];
}

fn zero_word(j: u32) -> u32 {
  return zero_word_of(cur(), j);
}
#endif

// Zero point of group g in row of weight which, as f32 (0 when symmetric).
fn zero_at_of(which: u32, row: u32, g: u32) -> f32 {
#if ASYM
  let wd = zero_word_of(which, row * params.zero_words + g / EW);
  return f32((wd >> ((g % EW) * BITS)) & ((1u << BITS) - 1u));
#else
  return 0.0;
#endif
}

fn zero_at(row: u32, g: u32) -> f32 {
  return zero_at_of(cur(), row, g);
}

// Octets per span: groups are multiples of 8 long, so 8 aligned codes share one scale.
const NOCT: u32 = max(EW / 2u, 1u);

// Codes e..e+3 of word wd as f32 (sign-extended when symmetric). e must fold to a constant.
fn codes_at(wd: u32, e: u32) -> vec4<f32> {
  let ev = vec4<u32>(e, e + 1u, e + 2u, e + 3u) * BITS;
#if ASYM
  return vec4<f32>((vec4<u32>(wd) >> ev) & vec4<u32>((1u << BITS) - 1u));
#else
  // Shift the code to the top of the word, then back arithmetically: two's complement sign
  // extension without a branch.
  let up = vec4<u32>(wd) << (vec4<u32>(32u - BITS) - ev);
  return vec4<f32>(bitcast<vec4<i32>>(up) >> vec4<u32>(32u - BITS));
#endif
}

// Σ w·x over 4 elements, w given as integer codes minus zero (exact in f32 and in f16) so that
// the scale multiplies once per group segment. With F16 the products are taken in f16 and
// summed in f32: three roundings of 2⁻¹¹ per product, the bound the conformance suite derives.
fn dot4(w: vec4<f32>, x: vec4<f32>) -> f32 {
#if F16
  return dot(vec4<f32>(vec4<f16>(w) * vec4<f16>(x)), vec4<f32>(1.0));
#else
  return dot(w, x);
#endif
}
