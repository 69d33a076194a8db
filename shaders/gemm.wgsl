// gemm.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for many activation rows (prefill, batches). Each
// thread owns ROWS weight rows and TM activation rows and walks K alone, one vec4<u32> "span" of
// each weight row per step (4 to 64 weights): the span is dequantized once into registers and
// reused by all TM activation rows, so a weight is decoded m/TM times in all rather than once per
// activation row (GEMV) or once per 16 K-steps of a 256-thread tile with two barriers each (the
// tiled kernel this replaced, ~10× slower on SwiftShader). No workgroup memory, no barriers, no
// reduction: the x values of a span are the same address for every thread of the workgroup, which
// caches serve (ONNX Runtime's "wide tile" MatMulNBits kernel makes the same trade for prefill).
//
// Written out, not looped, for the reason gemv.wgsl gives: on SwiftShader a loop-indexed
// function-scope array is memory. Every index below is a constant once helpers are inlined.
//
// Grid: (ceil(n / (WG·ROWS)), ceil(m / TM), 1). Consts from the header: WG, ROWS (1 or 2), TM
// (4, 8, 12 or 16), SCALE_PER_VEC (one scale serves a whole span).

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Dequantize octet o (a constant) of span wv into dq[2o], dq[2o+1].
fn deq_oct(wv: vec4<u32>, o: u32, row: u32, g: u32, dq: ptr<function, array<vec4<f32>, 16>>) {
#if QUANT
  let e = 8u * o;
  let z = zero_at(row, g);
  let s = scale_at(row, g);
  (*dq)[2u * o] = (codes_at(wv[e / EW], e % EW) - z) * s;
  (*dq)[2u * o + 1u] = (codes_at(wv[(e + 4u) / EW], (e + 4u) % EW) - z) * s;
#endif
}

// The weights of span i of row, dequantized: EW vec4s in dq[0..EW).
fn decode_span(row: u32, i: u32, dq: ptr<function, array<vec4<f32>, 16>>) {
  let wv = w[row * (params.row_words / 4u) + i];
#if QUANT
  let k0 = i * 4u * EW;
  if (SCALE_PER_VEC) {
    let g = group_of(k0);
    deq_oct(wv, 0u, row, g, dq);
    if (NOCT > 1u) { deq_oct(wv, 1u, row, g, dq); }
    if (NOCT > 2u) { deq_oct(wv, 2u, row, g, dq); deq_oct(wv, 3u, row, g, dq); }
    if (NOCT > 4u) {
      deq_oct(wv, 4u, row, g, dq); deq_oct(wv, 5u, row, g, dq);
      deq_oct(wv, 6u, row, g, dq); deq_oct(wv, 7u, row, g, dq);
    }
  } else {
    deq_oct(wv, 0u, row, group_of(k0), dq);
    if (NOCT > 1u) { deq_oct(wv, 1u, row, group_of(k0 + 8u), dq); }
    if (NOCT > 2u) {
      deq_oct(wv, 2u, row, group_of(k0 + 16u), dq);
      deq_oct(wv, 3u, row, group_of(k0 + 24u), dq);
    }
    if (NOCT > 4u) {
      deq_oct(wv, 4u, row, group_of(k0 + 32u), dq);
      deq_oct(wv, 5u, row, group_of(k0 + 40u), dq);
      deq_oct(wv, 6u, row, group_of(k0 + 48u), dq);
      deq_oct(wv, 7u, row, group_of(k0 + 56u), dq);
    }
  }
#else
#if F16W
  (*dq)[0] = vec4<f32>(unpack2x16float(wv.x), unpack2x16float(wv.y));
  (*dq)[1] = vec4<f32>(unpack2x16float(wv.z), unpack2x16float(wv.w));
#else
  (*dq)[0] = bitcast<vec4<f32>>(wv);
#endif
#endif
}

// Σ over span i of activation row mr times the decoded weights of both rows (.y unused when
// ROWS = 1): each x vec4 is loaded once for the ROWS rows.
fn xdot(mr: u32, i: u32, d0: ptr<function, array<vec4<f32>, 16>>, d1: ptr<function, array<vec4<f32>, 16>>) -> vec2<f32> {
  let xi = mr * (params.kp / 4u) + i * EW;
  var s = vec2<f32>(0.0);
  xdot1(xi, 0u, d0, d1, &s);
  if (EW > 1u) { xdot1(xi, 1u, d0, d1, &s); }
  if (EW > 2u) { xdot1(xi, 2u, d0, d1, &s); xdot1(xi, 3u, d0, d1, &s); }
  if (EW > 4u) {
    xdot1(xi, 4u, d0, d1, &s); xdot1(xi, 5u, d0, d1, &s);
    xdot1(xi, 6u, d0, d1, &s); xdot1(xi, 7u, d0, d1, &s);
  }
  if (EW > 8u) {
    xdot1(xi, 8u, d0, d1, &s); xdot1(xi, 9u, d0, d1, &s);
    xdot1(xi, 10u, d0, d1, &s); xdot1(xi, 11u, d0, d1, &s);
    xdot1(xi, 12u, d0, d1, &s); xdot1(xi, 13u, d0, d1, &s);
    xdot1(xi, 14u, d0, d1, &s); xdot1(xi, 15u, d0, d1, &s);
  }
  return s;
}

// One x vec4 (j a constant) against both rows' weights.
fn xdot1(xi: u32, j: u32, d0: ptr<function, array<vec4<f32>, 16>>, d1: ptr<function, array<vec4<f32>, 16>>, s: ptr<function, vec2<f32>>) {
  let xv = x[xi + j];
  (*s).x += dot4((*d0)[j], xv);
  if (ROWS > 1u) { (*s).y += dot4((*d1)[j], xv); }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let n0 = (wid.x * WG + tid) * ROWS;
  // Rows past n and activation rows past m read the last real one: no branches in the loop,
  // results dropped at the write.
  let last = params.n - 1u;
  let r0 = min(n0, last);
  let r1 = min(n0 + 1u, last);
  let m0 = wid.y * TM;
  let ml = params.m - 1u;
  // acc[r][q] holds activation rows 4q..4q+3 of weight row r.
  var a0: array<vec4<f32>, 4>;
  var a1: array<vec4<f32>, 4>;
  let rv = params.row_words / 4u;
  // A block of four activation rows wholly past m is skipped (the branch is uniform: m0 is the
  // workgroup's), so m = 8 in a TM = 16 variant costs half of m = 16, not the same.
  for (var i = 0u; i < rv; i++) {
    var d0: array<vec4<f32>, 16>;
    var d1: array<vec4<f32>, 16>;
    decode_span(r0, i, &d0);
    if (ROWS > 1u) { decode_span(r1, i, &d1); }
    var s = xdot(m0, i, &d0, &d1);
    a0[0].x += s.x; a1[0].x += s.y;
    s = xdot(min(m0 + 1u, ml), i, &d0, &d1); a0[0].y += s.x; a1[0].y += s.y;
    s = xdot(min(m0 + 2u, ml), i, &d0, &d1); a0[0].z += s.x; a1[0].z += s.y;
    s = xdot(min(m0 + 3u, ml), i, &d0, &d1); a0[0].w += s.x; a1[0].w += s.y;
    if (TM > 4u && m0 + 4u < params.m) {
      s = xdot(min(m0 + 4u, ml), i, &d0, &d1); a0[1].x += s.x; a1[1].x += s.y;
      s = xdot(min(m0 + 5u, ml), i, &d0, &d1); a0[1].y += s.x; a1[1].y += s.y;
      s = xdot(min(m0 + 6u, ml), i, &d0, &d1); a0[1].z += s.x; a1[1].z += s.y;
      s = xdot(min(m0 + 7u, ml), i, &d0, &d1); a0[1].w += s.x; a1[1].w += s.y;
    }
    if (TM > 8u && m0 + 8u < params.m) {
      s = xdot(min(m0 + 8u, ml), i, &d0, &d1); a0[2].x += s.x; a1[2].x += s.y;
      s = xdot(min(m0 + 9u, ml), i, &d0, &d1); a0[2].y += s.x; a1[2].y += s.y;
      s = xdot(min(m0 + 10u, ml), i, &d0, &d1); a0[2].z += s.x; a1[2].z += s.y;
      s = xdot(min(m0 + 11u, ml), i, &d0, &d1); a0[2].w += s.x; a1[2].w += s.y;
    }
    if (TM > 12u && m0 + 12u < params.m) {
      s = xdot(min(m0 + 12u, ml), i, &d0, &d1); a0[3].x += s.x; a1[3].x += s.y;
      s = xdot(min(m0 + 13u, ml), i, &d0, &d1); a0[3].y += s.x; a1[3].y += s.y;
      s = xdot(min(m0 + 14u, ml), i, &d0, &d1); a0[3].z += s.x; a1[3].z += s.y;
      s = xdot(min(m0 + 15u, ml), i, &d0, &d1); a0[3].w += s.x; a1[3].w += s.y;
    }
  }
  // The stores are few (TM·ROWS per thread): a loop is fine here.
  for (var j = 0u; j < TM; j++) {
    let mi = m0 + j;
    let base = mi * params.y_stride + params.y_offset;
    if (mi < params.m) {
      if (n0 < params.n) { y[base + n0] = a0[j / 4u][j % 4u]; }
      if (ROWS > 1u && n0 + 1u < params.n) { y[base + n0 + 1u] = a1[j / 4u][j % 4u]; }
    }
  }
}
