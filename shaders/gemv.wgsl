// gemv.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for few activation rows (decoding), built for memory
// bandwidth: each thread reads one vec4<u32> "span" of a weight row per step (4 to 64 weights),
// ROWS rows share the x values of the span a thread holds in registers, and a workgroup reduces
// its partial sums with subgroupAdd where the device has subgroups, else a workgroup-memory tree.
//
// Why the code is written out rather than looped: SwiftShader (the CI adapter) JITs one SPIR-V
// loop as a real loop and a function-scope array indexed by a loop variable as memory, accessed
// lane by lane; a shift by a loop-variable amount is a per-lane variable shift. Every index and
// shift amount below is a constant once helpers are inlined, so the arrays become registers and
// an element costs a shift pair, a convert and a multiply-add. GPU compilers unroll the same.
//
// Grid: (ceil(n / ROWS), m, 1); workgroup WG threads (a power of two). Consts from the header:
// WG, ROWS (1..8), and SCALE_PER_VEC: true when one scale serves a whole span (per-channel, or
// groups a multiple of 4·EW codes long: int4 g32 and up, say).

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Σ (q − z)·x over octet o (a constant) of span wv, with x of the span in xs.
fn oct_dot(wv: vec4<u32>, o: u32, z: f32, xs: ptr<function, array<vec4<f32>, 16>>) -> f32 {
  let e = 8u * o;
  let lo = codes_at(wv[e / EW], e % EW);
  let hi = codes_at(wv[(e + 4u) / EW], (e + 4u) % EW);
  return dot4(lo - z, (*xs)[2u * o]) + dot4(hi - z, (*xs)[2u * o + 1u]);
}

// Σ w·x over span i of row, with x of the span in xs and the group of each octet in gs.
fn span_dot(row: u32, i: u32, xs: ptr<function, array<vec4<f32>, 16>>, gs: ptr<function, array<u32, 8>>) -> f32 {
  let wv = w[row * (params.row_words / 4u) + i];
#if QUANT
  if (SCALE_PER_VEC) {
    let g = (*gs)[0];
    let z = zero_at(row, g);
    var s = oct_dot(wv, 0u, z, xs);
    if (NOCT > 1u) { s += oct_dot(wv, 1u, z, xs); }
    if (NOCT > 2u) { s += oct_dot(wv, 2u, z, xs) + oct_dot(wv, 3u, z, xs); }
    if (NOCT > 4u) {
      s += oct_dot(wv, 4u, z, xs) + oct_dot(wv, 5u, z, xs) + oct_dot(wv, 6u, z, xs) + oct_dot(wv, 7u, z, xs);
    }
    return s * scale_at(row, g);
  }
  var t = oct_dot(wv, 0u, zero_at(row, (*gs)[0]), xs) * scale_at(row, (*gs)[0]);
  if (NOCT > 1u) { t += oct_dot(wv, 1u, zero_at(row, (*gs)[1]), xs) * scale_at(row, (*gs)[1]); }
  if (NOCT > 2u) {
    t += oct_dot(wv, 2u, zero_at(row, (*gs)[2]), xs) * scale_at(row, (*gs)[2]);
    t += oct_dot(wv, 3u, zero_at(row, (*gs)[3]), xs) * scale_at(row, (*gs)[3]);
  }
  if (NOCT > 4u) {
    t += oct_dot(wv, 4u, zero_at(row, (*gs)[4]), xs) * scale_at(row, (*gs)[4]);
    t += oct_dot(wv, 5u, zero_at(row, (*gs)[5]), xs) * scale_at(row, (*gs)[5]);
    t += oct_dot(wv, 6u, zero_at(row, (*gs)[6]), xs) * scale_at(row, (*gs)[6]);
    t += oct_dot(wv, 7u, zero_at(row, (*gs)[7]), xs) * scale_at(row, (*gs)[7]);
  }
  return t;
#else
#if F16W
  return dot4(vec4<f32>(unpack2x16float(wv.x), unpack2x16float(wv.y)), (*xs)[0]) +
         dot4(vec4<f32>(unpack2x16float(wv.z), unpack2x16float(wv.w)), (*xs)[1]);
#else
  return dot4(bitcast<vec4<f32>>(wv), (*xs)[0]);
#endif
#endif
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
  pre_store(mi, row0, tid); // gemv_reduce.wgsl: the store's operands in flight now
  let rv = params.row_words / 4u;
  let xb = mi * (params.kp / 4u);
  // Rows past n (the last workgroup) read row n−1 again: no branch per row, results dropped.
  let last = params.n - 1u;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  // A uniform trip count keeps the barriers and subgroup operations below in uniform control flow.
  let iters = (rv + WG - 1u) / WG;
  for (var it = 0u; it < iters; it++) {
    let i = it * WG + tid;
    if (i < rv) {
      // x of the span: EW vec4s (written out: a loop would index xs dynamically).
      var xs: array<vec4<f32>, 16>;
      let xi = xb + i * EW;
      xs[0] = x[xi];
      if (EW > 1u) { xs[1] = x[xi + 1u]; }
      if (EW > 2u) { xs[2] = x[xi + 2u]; xs[3] = x[xi + 3u]; }
      if (EW > 4u) { xs[4] = x[xi + 4u]; xs[5] = x[xi + 5u]; xs[6] = x[xi + 6u]; xs[7] = x[xi + 7u]; }
      if (EW > 8u) {
        xs[8] = x[xi + 8u]; xs[9] = x[xi + 9u]; xs[10] = x[xi + 10u]; xs[11] = x[xi + 11u];
        xs[12] = x[xi + 12u]; xs[13] = x[xi + 13u]; xs[14] = x[xi + 14u]; xs[15] = x[xi + 15u];
      }
      // Group of each octet, shared by the ROWS rows (one division per octet, not per row).
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
      a0.x += span_dot(row0, i, &xs, &gs);
      if (ROWS > 1u) { a0.y += span_dot(min(row0 + 1u, last), i, &xs, &gs); }
      if (ROWS > 2u) { a0.z += span_dot(min(row0 + 2u, last), i, &xs, &gs); }
      if (ROWS > 3u) { a0.w += span_dot(min(row0 + 3u, last), i, &xs, &gs); }
      if (ROWS > 4u) { a1.x += span_dot(min(row0 + 4u, last), i, &xs, &gs); }
      if (ROWS > 5u) { a1.y += span_dot(min(row0 + 5u, last), i, &xs, &gs); }
      if (ROWS > 6u) { a1.z += span_dot(min(row0 + 6u, last), i, &xs, &gs); }
      if (ROWS > 7u) { a1.w += span_dot(min(row0 + 7u, last), i, &xs, &gs); }
    }
  }
#if SUBGROUPS
  reduce_store(a0, a1, 0.0, tid, vec3<u32>(lane, sg, nsg), row0, mi);
#else
  reduce_store(a0, a1, 0.0, tid, vec3<u32>(0u), row0, mi);
#endif
}
