// gemm.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for many activation rows (prefill, batches). A
// workgroup of 16×16 threads computes a TM×TN tile of y; each step along K stages a TM×TK tile
// of x and a TN×TK tile of dequantized weights in workgroup memory, so every weight is decoded
// once per workgroup and reused TM times. Each thread keeps a (TM/16)×(TN/16) block of sums.
//
// Grid: (ceil(n / TN), ceil(m / TM), 1). Consts from the header: TM, TN, TK.

@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const RM: u32 = TM / 16u; // y rows per thread
const RN: u32 = TN / 16u; // y columns per thread
const WPT: u32 = TK / EW; // u32 words of one weight row in a K tile

#if F16
alias tile_t = f16;
#else
alias tile_t = f32;
#endif

// Both tiles are stored K-major so the inner loop reads consecutive addresses across threads.
var<workgroup> xs: array<tile_t, TK * TM>;
var<workgroup> ws: array<tile_t, TK * TN>;

// Decode one word of row `row` (word index wi in the row) into ws column r, K offset kk.
fn stage_word(row: u32, wi: u32, r: u32, kk: u32) {
  let wd = w[row * params.row_words + wi];
#if QUANT
  for (var c = 0u; c < EW / 4u; c++) {
    let g = group_of(wi * EW + c * 4u);
    let v = scale_at(row, g) * (codes4(wd, c) - zero_at(row, g));
    for (var e = 0u; e < 4u; e++) {
      ws[(kk + c * 4u + e) * TN + r] = tile_t(v[e]);
    }
  }
#else
#if F16W
  let v = unpack2x16float(wd);
  ws[kk * TN + r] = tile_t(v.x);
  ws[(kk + 1u) * TN + r] = tile_t(v.y);
#else
  ws[kk * TN + r] = tile_t(bitcast<f32>(wd));
#endif
#endif
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let n0 = wid.x * TN;
  let m0 = wid.y * TM;
  var acc: array<array<f32, RN>, RM>;
  let ktiles = (params.kp + TK - 1u) / TK;
  for (var kt = 0u; kt < ktiles; kt++) {
    let k0 = kt * TK;
    // x tile: TM rows × TK/4 vec4, zero beyond m and kp.
    for (var idx = tid; idx < TM * TK / 4u; idx += 256u) {
      let mr = idx / (TK / 4u);
      let c = idx % (TK / 4u);
      var v = vec4<f32>(0.0);
      if (m0 + mr < params.m && k0 + c * 4u < params.kp) {
        v = x[((m0 + mr) * params.kp + k0) / 4u + c];
      }
      for (var e = 0u; e < 4u; e++) {
        xs[(c * 4u + e) * TM + mr] = tile_t(v[e]);
      }
    }
    // weight tile: TN rows × WPT words, decoded; zero beyond n and the row's words.
    for (var idx = tid; idx < TN * WPT; idx += 256u) {
      let r = idx / WPT;
      let wj = idx % WPT;
      let wi = k0 / EW + wj;
      if (n0 + r < params.n && wi < params.row_words) {
        stage_word(n0 + r, wi, r, wj * EW);
      } else {
        for (var e = 0u; e < EW; e++) {
          ws[(wj * EW + e) * TN + r] = tile_t(0.0);
        }
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<tile_t, RM>;
      for (var i = 0u; i < RM; i++) {
        a[i] = xs[kk * TM + lid.y * RM + i];
      }
      for (var j = 0u; j < RN; j++) {
        let b = ws[kk * TN + lid.x * RN + j];
        for (var i = 0u; i < RM; i++) {
          // Products in tile_t (f16 with F16), sums always in f32.
          acc[i][j] += f32(a[i] * b);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < RM; i++) {
    let mi = m0 + lid.y * RM + i;
    for (var j = 0u; j < RN; j++) {
      let ni = n0 + lid.x * RN + j;
      if (mi < params.m && ni < params.n) {
        y[mi * params.y_stride + params.y_offset + ni] = acc[i][j];
      }
    }
  }
}
