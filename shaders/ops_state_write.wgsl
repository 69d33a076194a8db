// ops_state_write.wgsl: the write half of a StateWrite (a graph.State, e.g. a KV cache, kept in a
// buffer of its own across runs, outside the liveness arena): x's T rows are stored at row pos[0],
// read from the device so one recorded command buffer serves every position, in the storage
// format of the variant. ops_state_read.wgsl then returns rows [0, keep) as f32.
//
// The state buffer is array<u32> whatever the format:
//   f32:  one word per element.
//   f16:  two IEEE halves per word, element 2i in the low half. WGSL's f16 type needs the
//         shader-f16 feature, which SwiftShader lacks, so halves are packed by hand, rounded to
//         nearest even as the cpu's float16.Fromfloat32 does (state_store.wgsl's half_bits). One
//         invocation per word, so a word half kept is never raced.
//   int8: each row of D elements (one head of one token) in ceil(D/4) words, four codes a word,
//         low byte first, so no two invocations share a word; then one f32 scale per row from
//         word scale_word. scale = max|x|/127, code = round(x/scale) half away from zero (Go's
//         math.Round), within ±127. One invocation per row.
// Rows past the end are not written (the host rejects such a run before it is submitted).
//
// PAIR writes two states of one shape and format at the same row in one dispatch (a decoder's
// keys and values): the second's x and state at bindings 4 and 5, invocations n.. for it.
//
// ROPE: the first state's x is a table rotation's input, rotated as it is read
// (ops_state_rope.wgsl; cos and sin at bindings 6 and 7): the rotation is not a dispatch of its
// own (a decoder's keys).

struct Params {
  n: u32,          // invocations
  row_elems: u32,  // elements of one state row (all axes after the first)
  d: u32,          // int8: elements per scaled row (the last axis)
  scale_word: u32, // int8: first word of the scales
  s_rows: u32,     // rows of the state
  t_rows: u32,     // rows written
  wpr: u32,        // int8: words per scaled row
  rope_h: u32,     // ROPE: H and P of x
  rope_half: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;
#if PAIR
@group(0) @binding(4) var<storage, read> x2: array<f32>;
@group(0) @binding(5) var<storage, read_write> st2: array<u32>;
#endif

// Whether this invocation writes the second state of a PAIR.
var<private> second: bool;

#if ROPE
@group(0) @binding(6) var<storage, read> cos_t: array<f32>;
@group(0) @binding(7) var<storage, read> sin_t: array<f32>;

fn rope_x(i: u32) -> f32 {
  return x[i];
}
#endif

fn xv(i: u32) -> f32 {
#if PAIR
  if (second) {
    return x2[i];
  }
#endif
#if ROPE
  return rotated(i);
#else
  return x[i];
#endif
}

fn st_get(w: u32) -> u32 {
#if PAIR
  if (second) {
    return st2[w];
  }
#endif
  return st[w];
}

fn st_set(w: u32, v: u32) {
#if PAIR
  if (second) {
    st2[w] = v;
    return;
  }
#endif
  st[w] = v;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  var t = flat_index(gid, nwg);
#if PAIR
  second = t >= params.n;
  t = select(t, t - params.n, second);
#endif
  let p = pos[0];
  if (t >= params.n || p < 0 || u32(p) + params.t_rows > params.s_rows) {
    return;
  }
  store(t, u32(p) * params.row_elems);
}

#if F32
fn store(t: u32, a: u32) {
  st_set(a + t, bitcast<u32>(xv(t)));
}
#endif

#if F16
// t is a word of the written span: the elements a/2 + t covers, those in [a, a+len) replaced.
fn store(t: u32, a: u32) {
  let len = params.t_rows * params.row_elems;
  let w = a / 2u + t;
  let e0 = 2u * w;
  if (e0 + 1u < a || e0 >= a + len) {
    return;
  }
  let old = st_get(w);
  var lo = old & 0xffffu;
  var hi = old >> 16u;
  if (e0 >= a) {
    lo = half_bits(xv(e0 - a));
  }
  if (e0 + 1u < a + len) {
    hi = half_bits(xv(e0 + 1u - a));
  }
  st_set(w, lo | (hi << 16u));
}
#endif

#if INT8
// t is a scaled row of x.
fn store(t: u32, a: u32) {
  let src = t * params.d;
  let row = a / params.d + t;
  var amax = 0.0;
  for (var i = 0u; i < params.d; i++) {
    amax = max(amax, abs(xv(src + i)));
  }
  let sc = amax / 127.0;
  st_set(params.scale_word + row, bitcast<u32>(sc));
  for (var wd = 0u; wd < params.wpr; wd++) {
    var word = 0u;
    for (var j = 0u; j < 4u; j++) {
      let i = wd * 4u + j;
      if (i < params.d && sc != 0.0) {
        let v = xv(src + i) / sc;
        let q = clamp(sign(v) * floor(abs(v) + 0.5), -127.0, 127.0);
        word |= (u32(i32(q)) & 0xffu) << (8u * j);
      }
    }
    st_set(row * params.wpr + wd, word);
  }
}
#endif
