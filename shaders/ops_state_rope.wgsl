// ops_state_rope.wgsl: a table rotation made as its input is read, exactly as ops_rope.wgsl
// TABLE makes it (x [R, H, P, 2] of adjacent pairs, cos and sin [R, 1, P, 1]), so the rotation is
// not a dispatch of its own: by the cache write of a decoder's keys (ops_state_write.wgsl) and by
// the product that reads its query (ops_matmul.wgsl). The including kernel declares cos_t, sin_t,
// params.rope_h (H), params.rope_half (P) and rope_x(i), element i of x.

#if ROPE
// Element i of the rotated x: of pair i/2, y0 = x0·cos − x1·sin or y1 = x0·sin + x1·cos, each
// product rounded as the graph's ops round it (state_store.wgsl's rotate_pair).
fn rotated(i: u32) -> f32 {
  let o = i / 2u;
  let t = (o / (params.rope_half * params.rope_h)) * params.rope_half + o % params.rope_half;
  let c = cos_t[t];
  let s = sin_t[t];
  return rotate_pair(rope_x(2u * o), rope_x(2u * o + 1u), c, s, (i & 1u) == 1u);
}
#endif
