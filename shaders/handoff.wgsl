// handoff.wgsl: a float handed from one workgroup to another within a dispatch, through a word
// of atomics, shared by gemv_a8.wgsl (QTAIL: a block's outputs to its last workgroup) and
// ops_attn.wgsl (SPLIT: a chunk's partials to its row's last workgroup). The word is stored as
// the complement of the float's bits (a NaN made the canonical one first), so no stored word is
// 0, the value of a word not yet stored: WGSL's atomics are relaxed, and a count of the
// writers says nothing of the other words, so a reader loads a word again while it reads 0, at
// most HAND_SPIN times (then it reads NaN), and zeroes it for the next dispatch.

const HAND_SPIN: u32 = 1048576u;

// The word that hands v over.
fn hand_word(v: f32) -> u32 {
  var b = bitcast<u32>(v);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) {
    b = 0x7FC00000u; // any NaN as the canonical one: its complement is not 0
  }
  return ~b;
}

// The float word w hands over (0, never stored, reads as NaN).
fn hand_value(w: u32) -> f32 {
  return bitcast<f32>(~w);
}
