// ops_state.wgsl: a graph.State (a KV cache) kept in its own buffer across runs, outside the
// liveness arena. A StateWrite is two dispatches: a write_* variant stores x's T rows at row
// pos[0] (read from the device, so one recorded command buffer serves every position) in the
// storage format, then a read_* variant returns rows [0, keep) as f32.
//
// The state buffer is array<u32> whatever the format:
//   f32:  one word per element.
//   f16:  two IEEE halves per word, element 2i in the low half. WGSL's f16 type needs the
//         shader-f16 feature, which SwiftShader lacks, so halves are packed by hand; the
//         conversion rounds to nearest even, as the cpu's float16.Fromfloat32 does (pack2x16float's
//         rounding is left to the implementation).
//   int8: each row of D elements (one head of one token) in ceil(D/4) words, four codes a word,
//         low byte first, so no two invocations share a word; then one f32 scale per row from
//         word scale_word. scale = max|x|/127, code = round(x/scale), half away from zero (Go's
//         math.Round), clamped to ±127.
// Rows past the end are not written (the host rejects such a run before it is submitted).

struct Params {
  n: u32,          // invocations
  row_elems: u32,  // elements of one state row (all axes after the first)
  d: u32,          // int8: elements per scaled row (the last axis)
  scale_word: u32, // int8: first word of the scales
  s_rows: u32,     // rows of the state
  t_rows: u32,     // rows written
  wpr: u32,        // int8: words per scaled row
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

#if WRITE_F32
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  let p = pos[0];
  if (t >= params.n || p < 0 || u32(p) + params.t_rows > params.s_rows) {
    return;
  }
  st[u32(p) * params.row_elems + t] = bitcast<u32>(x[t]);
}
#endif

#if WRITE_F16
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;

fn half_bits(v: f32) -> u32 {
  let b = bitcast<u32>(clamp(v, -65504.0, 65504.0));
  let sign = (b >> 16u) & 0x8000u;
  let e = i32((b >> 23u) & 0xffu) - 112; // f16's biased exponent
  let m = b & 0x7fffffu;
  if (e <= 0) {
    if (e < -10) {
      return sign;
    }
    let full = m | 0x800000u;
    let shift = u32(14 - e);
    var h = full >> shift;
    let rem = full & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u) == 1u)) {
      h += 1u;
    }
    return sign | h;
  }
  var h = (u32(e) << 10u) | (m >> 13u);
  let rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
    h += 1u; // a carry into the exponent is the correct rounding too
  }
  return sign | h;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  let p = pos[0];
  if (t >= params.n || p < 0 || u32(p) + params.t_rows > params.s_rows) {
    return;
  }
  // One invocation per word, so a word half written and half kept is never raced.
  let a = u32(p) * params.row_elems;
  let len = params.t_rows * params.row_elems;
  let w = a / 2u + t;
  var lo = st[w] & 0xffffu;
  var hi = st[w] >> 16u;
  let e0 = 2u * w;
  if (e0 >= a && e0 < a + len) {
    lo = half_bits(x[e0 - a]);
  }
  if (e0 + 1u >= a && e0 + 1u < a + len) {
    hi = half_bits(x[e0 + 1u - a]);
  }
  if (e0 + 1u < a || e0 >= a + len) {
    return;
  }
  st[w] = lo | (hi << 16u);
}
#endif

#if WRITE_INT8
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  let p = pos[0];
  if (t >= params.n || p < 0 || u32(p) + params.t_rows > params.s_rows) {
    return;
  }
  let src = t * params.d;
  let row = u32(p) * params.row_elems / params.d + t;
  var amax = 0.0;
  for (var i = 0u; i < params.d; i++) {
    amax = max(amax, abs(x[src + i]));
  }
  let sc = amax / 127.0;
  st[params.scale_word + row] = bitcast<u32>(sc);
  for (var wd = 0u; wd < params.wpr; wd++) {
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
      let i = wd * 4u + j;
      if (i < params.d && sc != 0.0) {
        let v = x[src + i] / sc;
        let q = clamp(sign(v) * floor(abs(v) + 0.5), -127.0, 127.0);
        word |= (u32(i32(q)) & 0xffu) << (8u * j);
      }
    }
    st[row * params.wpr + wd] = word;
  }
}
#endif

#if READ_F32
@group(0) @binding(1) var<storage, read> st: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  if (t >= params.n) {
    return;
  }
  y[t] = bitcast<f32>(st[t]);
}
#endif

#if READ_F16
@group(0) @binding(1) var<storage, read> st: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  if (t >= params.n) {
    return;
  }
  y[t] = unpack2x16float(st[t / 2u])[t & 1u];
}
#endif

#if READ_INT8
@group(0) @binding(1) var<storage, read> st: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = flat_index(gid, nwg);
  if (t >= params.n) {
    return;
  }
  let row = t / params.d;
  let c = t - row * params.d;
  let word = st[row * params.wpr + c / 4u];
  let q = i32(word << (24u - 8u * (c & 3u))) >> 24u;
  y[t] = bitcast<f32>(st[params.scale_word + row]) * f32(q);
}
#endif
