// ops_gather.wgsl: y[r][c] = table[ids[r]][c] for r < count, c < d; an id outside [0, v) gives a
// row of zeros. Variant VALUE reads an f32 value of the graph. Variant WEIGHT reads one row chunk
// of a resident weight through decode.wgsl (prepended, with its Params at binding 0 describing
// the chunk): codes with scales and zero points, f16 or f32, rows padded to 16 bytes.
//
// A weight may be held as any [n, k] with the table's element count (float tables only; a
// quantized table's rows are the table's rows), so element (id, c) is flat e = id·d + c, held in
// row e / wk at column e % wk. A weight split into row chunks is gathered by one dispatch per
// chunk, each writing the elements whose row it holds; the first also writes the zeros of
// out-of-range ids, so every element is written exactly once.

struct GatherParams {
  count: u32, // ids
  d: u32,     // table row length
  v: u32,     // table rows
  wk: u32,    // WEIGHT: k of the resident tensor
  r0: u32,    // WEIGHT: rows [r0, r1) of the resident tensor are in this chunk
  r1: u32,
  first: u32, // 1: this dispatch writes the zero rows
  _pad0: u32,
}

@group(0) @binding(6) var<uniform> gp: GatherParams;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if VALUE
@group(0) @binding(1) var<storage, read> table: array<f32>;
#endif
#if WEIGHT
@group(0) @binding(1) var<storage, read> w: array<u32>;

// Element c of device row r of the chunk, dequantized as wasm/quant does: s·(q − z) in f32.
fn weight_at(r: u32, c: u32) -> f32 {
#if QUANT
  let g = group_of(c);
  let q = codes_at(w[r * params.row_words + c / EW], c % EW).x;
  return (q - zero_at(r, g)) * scale_at(r, g);
#else
#if F16W
  let pair = unpack2x16float(w[r * params.row_words + c / 2u]);
  return select(pair.x, pair.y, (c & 1u) == 1u);
#else
  return bitcast<f32>(w[r * params.row_words + c]);
#endif
#endif
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg);
  if (i >= gp.count * gp.d) {
    return;
  }
  let r = i / gp.d;
  let c = i % gp.d;
  let id = ids[r];
  if (id < 0 || u32(id) >= gp.v) {
    if (gp.first == 1u) {
      y[i] = 0.0;
    }
    return;
  }
#if VALUE
  y[i] = table[u32(id) * gp.d + c];
#endif
#if WEIGHT
  let e = u32(id) * gp.d + c;
  let row = e / gp.wk;
  if (row >= gp.r0 && row < gp.r1) {
    y[i] = weight_at(row - gp.r0, e % gp.wk);
  }
#endif
}
