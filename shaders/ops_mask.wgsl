// ops_mask.wgsl: where the products that normalize a softmax as they read it find a row's mask
// entries (ops_matmul.wgsl SOFTMAX, ops_attn.wgsl): SMASK, a mask at binding 4 broadcast as
// ops_softmax.wgsl's (the including kernel's params hold rank, dims, ms and mlast); without it
// every entry is kept.

#if SOFTMAX
#if SMASK
@group(0) @binding(4) var<storage, read> mask: array<f32>;
#endif

// The mask offset of row r (its coordinates before the last dimension times the mask's
// strides), 0 without a mask.
fn mask_base(r: u32) -> u32 {
  var mb = 0u;
#if SMASK
  var rem = r;
  for (var j = params.rank; j > 0u; j--) {
    let dd = j - 1u;
    let nd = params.dims[dd >> 2u][dd & 3u];
    mb += (rem % nd) * params.ms[dd >> 2u][dd & 3u];
    rem /= nd;
  }
#endif
  return mb;
}

fn kept(mb: u32, c: u32) -> bool {
#if SMASK
  return mask[mb + c * params.mlast] != 0.0;
#else
  return true;
#endif
}
#endif
