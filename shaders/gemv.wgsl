// gemv.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for few activation rows (decoding), built for memory
// bandwidth: each thread reads whole vec4<u32> of a weight row (16 to 64 codes per load), ROWS
// rows share the x values a thread holds in registers, and a workgroup reduces its WG partial
// sums per row with subgroupAdd where the device has subgroups, else a workgroup-memory tree.
//
// Grid: (ceil(n / ROWS), m, 1); workgroup WG threads (a power of two). Consts from the header:
// WG, ROWS, and SCALE_PER_VEC: true when one scale serves a whole vec4<u32> load (per-channel,
// or groups a multiple of 4·EW codes long: int4 g32 and up, say).

@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Elements per scale lookup: a word, or 8 codes for int2 (groups are multiples of 8 long).
const SEGL: u32 = min(EW, 8u);
const NSEG: u32 = 4u * EW / SEGL;
// vec4<f32> of codes per u32 word.
const CPW: u32 = max(EW / 4u, 1u);

var<workgroup> red: array<f32, ROWS * WG>;

// Σ over the 4·EW elements of vec4 i of the row, with x[4·EW·i ..] in xv.
fn row_dot(row: u32, i: u32, xv: ptr<function, array<vec4<f32>, EW>>) -> f32 {
  let wv = w[row * (params.row_words / 4u) + i];
#if QUANT
  let k0 = i * 4u * EW;
  if (SCALE_PER_VEC) {
    let g = group_of(k0);
    let z = zero_at(row, g);
    var s = 0.0;
    for (var c = 0u; c < EW; c++) {
      s += dot4(codes4(wv[c / CPW], c % CPW) - z, (*xv)[c]);
    }
    return s * scale_at(row, g);
  }
  var total = 0.0;
  for (var seg = 0u; seg < NSEG; seg++) {
    let g = group_of(k0 + seg * SEGL);
    let z = zero_at(row, g);
    var s = 0.0;
    for (var c = seg * SEGL / 4u; c < (seg + 1u) * SEGL / 4u; c++) {
      s += dot4(codes4(wv[c / CPW], c % CPW) - z, (*xv)[c]);
    }
    total += s * scale_at(row, g);
  }
  return total;
#else
#if F16W
  return dot4(vec4<f32>(unpack2x16float(wv.x), unpack2x16float(wv.y)), (*xv)[0]) +
         dot4(vec4<f32>(unpack2x16float(wv.z), unpack2x16float(wv.w)), (*xv)[1]);
#else
  return dot4(bitcast<vec4<f32>>(wv), (*xv)[0]);
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
  let rv = params.row_words / 4u;
  let xb = mi * (params.kp / 4u);
  var acc: array<f32, ROWS>;
  // A uniform trip count keeps the barriers and subgroup operations below in uniform control flow.
  let iters = (rv + WG - 1u) / WG;
  for (var it = 0u; it < iters; it++) {
    let i = it * WG + tid;
    if (i < rv) {
      var xv: array<vec4<f32>, EW>;
      for (var c = 0u; c < EW; c++) {
        xv[c] = x[xb + i * EW + c];
      }
      for (var r = 0u; r < ROWS; r++) {
        if (row0 + r < params.n) {
          acc[r] += row_dot(row0 + r, i, &xv);
        }
      }
    }
  }
#if SUBGROUPS
  for (var r = 0u; r < ROWS; r++) {
    let s = subgroupAdd(acc[r]);
    if (lane == 0u) {
      red[r * WG + sg] = s;
    }
  }
  workgroupBarrier();
  if (tid < ROWS && row0 + tid < params.n) {
    var t = 0.0;
    for (var j = 0u; j < nsg; j++) {
      t += red[tid * WG + j];
    }
    y[mi * params.y_stride + params.y_offset + row0 + tid] = t;
  }
#else
  for (var r = 0u; r < ROWS; r++) {
    red[r * WG + tid] = acc[r];
  }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      for (var r = 0u; r < ROWS; r++) {
        red[r * WG + tid] += red[r * WG + tid + s];
      }
    }
    workgroupBarrier();
  }
  if (tid < ROWS && row0 + tid < params.n) {
    y[mi * params.y_stride + params.y_offset + row0 + tid] = red[tid * WG];
  }
#endif
}
