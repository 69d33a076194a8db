// ops_state_load.wgsl: element t of a graph.State as f32, read from its buffer `st` (array<u32>)
// in the layout of ops_state_write.wgsl. Shared by the state read (its variant) and the products
// that read a KV cache in place (ops_matmul.wgsl with OpKey.State: no f32 copy of the cache is
// made). The including kernel declares st and a params with d, scale_word and wpr (int8).

#if F32
fn state_load(t: u32) -> f32 {
  return bitcast<f32>(st[t]);
}
#endif

#if F16
// Element 2i in the low half of word i: an odd element count per row needs no alignment here.
fn state_load(t: u32) -> f32 {
  return unpack2x16float(st[t / 2u])[t & 1u];
}
#endif

#if INT8
fn state_load(t: u32) -> f32 {
  return state_int8(t, st[state_int8_word(t)], st[state_int8_scale(t)]);
}

// The words of element t and of its row's scale, and its value from them: apart, so that a
// kernel reading two states (ops_attn.wgsl: keys and values) reads the other's words too.
fn state_int8_word(t: u32) -> u32 {
  let row = t / params.d;
  return row * params.wpr + (t - row * params.d) / 4u;
}

fn state_int8_scale(t: u32) -> u32 {
  return params.scale_word + t / params.d;
}

fn state_int8(t: u32, word: u32, scale: u32) -> f32 {
  let c = t % params.d;
  let q = i32(word << (24u - 8u * (c & 3u))) >> 24u; // sign-extends the byte
  return bitcast<f32>(scale) * f32(q);
}
#endif
