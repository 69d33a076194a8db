// ops_rope.wgsl: rotary position embedding over x[B, T, H, Dh]: pair i of a head at position p =
// pos[t] turns by p·base^(−2i/Dh). Variant INTERLEAVED pairs (2i, 2i+1) (GGUF llama), HALVES
// pairs (i, i + Dh/2) (NeoX).
//
// Why the angle is not p·freq fed to cos: positions reach thousands of radians, where an f32
// product is off by ~1e-4 rad and WGSL's cos and sin are only specified inside [−π, π] (to
// 2⁻¹¹). So the backend computes freq/2π per pair in float64 and sends it split (h1 and h0 of 12
// significant bits each, lo the rest); with p split into two 12-bit halves every partial product
// is exact in f32, and their fractional parts sum to the turn count mod 1 to ~1e-7. The sine and
// cosine of the reduced angle (|x| ≤ π/4) are short Taylor series, exact to ~1e-9.

struct Params {
  n: u32,    // B·T·H·Dh/2 pairs
  t: u32,
  h: u32,
  half: u32, // Dh/2
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if TABLE
// Variant TABLE: the angles come as tables, cos and sin [R, 1, P, 1] for x [R, H, P, 2] (adjacent
// pairs), as wasm/model/llama writes RoPE in ten graph ops, which the backend runs as this one
// (fuse.go, tableRotation): y0 = x0·cos − x1·sin, y1 = x0·sin + x1·cos, each product rounded as
// the ops round it. params.t is unused, params.h is H, params.half is P.
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

// Pair o: the angle's cos and sin from the tables, the pair's indices in x and y.
fn angle(o: u32) -> vec2<f32> {
  let t = (o / (params.half * params.h)) * params.half + o % params.half;
  return vec2<f32>(cos_t[t], sin_t[t]);
}

fn pair(o: u32) -> vec2<u32> {
  return vec2<u32>(2u * o, 2u * o + 1u);
}
#else
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(4) var<storage, read> freq: array<vec4<f32>>; // (h1, h0, lo, 0) per pair

// cos and sin of 2π·turns, for any turns.
fn cos_sin_turns(turns: f32) -> vec2<f32> {
  let q = round(turns * 4.0);
  let a = (turns - q * 0.25) * 6.2831853071795865;
  let a2 = a * a;
  let s = a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0 * (1.0 - a2 / 42.0 * (1.0 - a2 / 72.0))));
  let c = 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0 * (1.0 - a2 / 30.0 * (1.0 - a2 / 56.0 * (1.0 - a2 / 90.0))));
  // Quadrant q mod 4 rotates (c, s) by q·90°.
  switch (i32(q) & 3) {
    case 1: { return vec2<f32>(-s, c); }
    case 2: { return vec2<f32>(-c, -s); }
    case 3: { return vec2<f32>(s, -c); }
    default: { return vec2<f32>(c, s); }
  }
}

// Pair o: the angle's cos and sin at its position, and the pair's indices in x and y.
fn angle(o: u32) -> vec2<f32> {
  let i = o % params.half;
  let head = o / params.half; // (b·T + t)·H + h
  let t = (head / params.h) % params.t;
  let p = pos[t];
  let ap = u32(abs(p));
  let p1 = f32(ap & 0xfffff000u);
  let p0 = f32(ap & 0xfffu);
  let f = freq[i];
  var turns = fract(p1 * f.x) + fract(p1 * f.y) + fract(p0 * f.x) + fract(p0 * f.y) + fract(f32(ap) * f.z);
  turns = fract(turns) * sign(f32(p));
  return cos_sin_turns(turns);
}

fn pair(o: u32) -> vec2<u32> {
  let i = o % params.half;
  let base = (o / params.half) * 2u * params.half;
#if INTERLEAVED
  return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
#else
  return vec2<u32>(base + i, base + i + params.half);
#endif
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat_index(gid, nwg);
  if (o >= params.n) {
    return;
  }
  let cs = angle(o);
  let ix = pair(o);
  let x0 = x[ix.x];
  let x1 = x[ix.y];
  let a = x0 * cs.x;
  let b = x1 * cs.y;
  let d = x0 * cs.y;
  let e = x1 * cs.x;
  y[ix.x] = a - b;
  y[ix.y] = d + e;
}
