// state_store.wgsl: what a state write stores, shared by ops_state_write.wgsl (with
// ops_state_rope.wgsl) and by the GEMVs that write a decoder's keys and values as they store
// them (gemv_reduce.wgsl KV_WRITE), so both round exactly alike.

// The IEEE half of v, rounded to nearest even as the cpu's float16.Fromfloat32 does
// (pack2x16float's rounding is left to the implementation), in the low 16 bits.
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

// Element odd of the pair (x0, x1) rotated by c and s: y0 = x0·c − x1·s, y1 = x0·s + x1·c, each
// product rounded as the graph's ops round it (a Mul each, then the Sub or the Add).
fn rotate_pair(x0: f32, x1: f32, c: f32, s: f32, odd: bool) -> f32 {
  if (!odd) {
    let a = x0 * c;
    let b = x1 * s;
    return a - b;
  }
  let d = x0 * s;
  let e = x1 * c;
  return d + e;
}
