// gemm_tile.wgsl: y[m][n] = Σ_k x[m][k]·w[n][k] for many activation rows on a GPU: tiles in
// workgroup memory (gemm.wgsl, with none, is the variant for CPU implementations of WebGPU).
//
// A workgroup computes a BM×BN block of y. Per step of BK along K its threads stage BM×BK
// activations and BN×BK weights, dequantized once there, in workgroup memory; each thread then
// accumulates a TM×TN block (TN = ROWS) from it: per k, TM/4 + TN/4 vec4 loads feed TM·TN
// multiply-adds. A weight is decoded once per workgroup that needs it (m/BM times in all), not
// once per activation row. The next step's global loads are issued before this step's
// arithmetic and held in registers (scales and zero points too), so their latency hides behind it
// and nothing between the arithmetic and the next barrier waits on memory.
//
// Thread (ty, tx) owns activation rows 4·ty + 4·WGM·i + {0..3} and weight rows 4·tx + 4·WGN·j +
// {0..3}: at one k, neighbouring threads read neighbouring vec4s (distinct banks, or one address
// broadcast). Staging writes go down a column of the tile with consecutive threads on consecutive
// rows, so they are conflict-free too, and no padding is needed.
//
// With KS = 2 two groups of WG threads share a tile, each summing half of every K step, and add
// their sums through workgroup memory at the end: twice the threads in flight for the same tiles.
//
// With KSLICES the K steps are split across workgroups too: grid y holds SLICES copies of the
// tile rows, copy s summing the s-th run of ceil(steps / SLICES) steps, and y (binding 3) is a
// scratch buffer receiving [SLICES][m][n] partial products (n: this dispatch's rows, no
// y_stride or y_offset); gemm_reduce.wgsl adds them into the real y. Where tiles are few
// (m = 128, n = 4096: 128 of 64×64 for 132 SMs) that is SLICES times the workgroups in flight.
//
// Grid: (ceil(n / BN), ceil(m / BM) · SLICES, 1); WG·KS threads. Consts from the header: WG, WGM,
// TM, ROWS, BK, KS, and SLICES with KSLICES.

@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WT: u32 = WG * KS;              // threads of the workgroup
const WGN: u32 = WG / WGM;
const BM: u32 = WGM * TM;
const BN: u32 = WGN * ROWS;
const XV: u32 = BM * BK / 4u;        // x vec4s per tile
const XPT: u32 = (XV + WT - 1u) / WT; // … per thread
const WPR: u32 = BK / EW;             // words of one weight row per tile
const WW: u32 = BN * WPR;             // words per tile
const WPT: u32 = (WW + WT - 1u) / WT; // … per thread
const BOFF: u32 = BK * BM / 4u;       // where bs starts in smem

// as[k][m] then bs[k][n], as vec4s along m and n; at the end, the KS groups' sums.
var<workgroup> smem: array<vec4<f32>, BK * (BM + BN) / 4u>;

struct Tile {
  n0: u32,
  m0: u32,
}

// What one thread carries from the global loads of a step to its workgroup-memory stores: x
// vectors, weight words, and each word's scale and zero point for its first and second octet
// (an int2 word holds two; groups are multiples of 8 long).
struct Regs {
  x: array<vec4<f32>, XPT>,
  w: array<u32, WPT>,
  s: array<vec2<f32>, WPT>,
  z: array<vec2<f32>, WPT>,
}

// Global loads of tile t into registers. Past K (kp, row_words) they read zeros; rows past n and
// m read the last real one (results dropped at the store).
fn load_tile(tl: Tile, t: u32, tid: u32, rg: ptr<function, Regs>) {
  let kx = params.kp / 4u;
  for (var j = 0u; j < XPT; j++) {
    let v = j * WT + tid;
    let kv = t * (BK / 4u) + v / BM;
    var xv = vec4<f32>(0.0);
    if (v < XV && kv < kx) {
      xv = x[min(tl.m0 + v % BM, params.m - 1u) * kx + kv];
    }
    (*rg).x[j] = xv;
  }
  for (var j = 0u; j < WPT; j++) {
    let l = j * WT + tid;
    let wk = t * WPR + l / BN;
    let row = min(tl.n0 + l % BN, params.n - 1u);
    var wd = 0u;
    if (l < WW && wk < params.row_words) {
      wd = w[row * params.row_words + wk];
    }
    (*rg).w[j] = wd;
#if QUANT
    let g0 = group_of(wk * EW);
    let g1 = select(g0, group_of(wk * EW + 8u), EW > 8u);
    (*rg).s[j] = vec2<f32>(scale_at(row, g0), scale_at(row, g1));
    (*rg).z[j] = vec2<f32>(zero_at(row, g0), zero_at(row, g1));
#endif
  }
}

fn put_b(k: u32, n: u32, v: f32) {
  smem[BOFF + k * (BN / 4u) + n / 4u][n % 4u] = v;
}

// Registers into workgroup memory, the weights dequantized.
fn store_tile(tid: u32, rg: ptr<function, Regs>) {
  for (var j = 0u; j < XPT; j++) {
    let v = j * WT + tid;
    if (v < XV) {
      let r = v % BM;
      let k = 4u * (v / BM);
      let xv = (*rg).x[j];
      smem[k * (BM / 4u) + r / 4u][r % 4u] = xv.x;
      smem[(k + 1u) * (BM / 4u) + r / 4u][r % 4u] = xv.y;
      smem[(k + 2u) * (BM / 4u) + r / 4u][r % 4u] = xv.z;
      smem[(k + 3u) * (BM / 4u) + r / 4u][r % 4u] = xv.w;
    }
  }
  for (var j = 0u; j < WPT; j++) {
    let l = j * WT + tid;
    if (l < WW) {
      let n = l % BN;
      let e0 = (l / BN) * EW; // first element of the word within the tile
      let wd = (*rg).w[j];
#if QUANT
      // Groups are multiples of 8 long: four aligned codes share one scale.
      for (var e4 = 0u; e4 < EW / 4u; e4++) {
        let o = e4 / 2u; // octet of the word
        let q = (codes_at(wd, 4u * e4) - (*rg).z[j][o]) * (*rg).s[j][o];
        put_b(e0 + 4u * e4, n, q.x);
        put_b(e0 + 4u * e4 + 1u, n, q.y);
        put_b(e0 + 4u * e4 + 2u, n, q.z);
        put_b(e0 + 4u * e4 + 3u, n, q.w);
      }
#else
#if F16W
      let h = unpack2x16float(wd);
      put_b(e0, n, h.x);
      put_b(e0 + 1u, n, h.y);
#else
      put_b(e0, n, bitcast<f32>(wd));
#endif
#endif
    }
  }
}

@compute @workgroup_size(WT)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
#if KSLICES
  let mt = (params.m + BM - 1u) / BM; // tile rows
  let slice = wid.y / mt;
  let tl = Tile(wid.x * BN, (wid.y % mt) * BM);
  let steps = (params.kp + BK - 1u) / BK;
  let per = (steps + SLICES - 1u) / SLICES;
  // A slice past the last step (K shorter than SLICES steps) sums nothing and stores zeros.
  let t0 = min(slice * per, steps);
  let tiles = min(t0 + per, steps);
#else
  let tl = Tile(wid.x * BN, wid.y * BM);
  let t0 = 0u;
  let tiles = (params.kp + BK - 1u) / BK;
#endif
  let tt = tid % WG; // place in the tile
  let half = tid / WG; // which K group (KS = 2)
  let tx = tt % WGN;
  let ty = tt / WGN;
  var rg: Regs;
  // acc[i·TN/4 + j]: activation row i of the thread, its weight rows 4j..4j+3.
  var acc: array<vec4<f32>, TM * ROWS / 4u>;
  load_tile(tl, t0, tid, &rg);
  store_tile(tid, &rg);
  workgroupBarrier();
  for (var t = t0; t < tiles; t++) {
    if (t + 1u < tiles) {
      load_tile(tl, t + 1u, tid, &rg);
    }
    for (var kk = 0u; kk < BK / KS; kk++) {
      let k = half * (BK / KS) + kk;
      var a: array<vec4<f32>, TM / 4u>;
      var b: array<vec4<f32>, ROWS / 4u>;
      for (var i = 0u; i < TM / 4u; i++) {
        a[i] = smem[k * (BM / 4u) + i * WGM + ty];
      }
      for (var j = 0u; j < ROWS / 4u; j++) {
        b[j] = smem[BOFF + k * (BN / 4u) + j * WGN + tx];
      }
      for (var i = 0u; i < TM; i++) {
        let av = vec4<f32>(a[i / 4u][i % 4u]);
        for (var j = 0u; j < ROWS / 4u; j++) {
          acc[i * (ROWS / 4u) + j] = fma(av, b[j], acc[i * (ROWS / 4u) + j]);
        }
      }
    }
    workgroupBarrier();
    if (t + 1u < tiles) {
      store_tile(tid, &rg);
    }
    workgroupBarrier();
  }
  if (KS > 1u) {
    // The second group's sums to the first, one vec4 of each thread at a time (the loop above
    // ended on a barrier: smem is free).
    for (var j = 0u; j < TM * ROWS / 4u; j++) {
      if (half == 1u) {
        smem[tt] = acc[j];
      }
      workgroupBarrier();
      if (half == 0u) {
        acc[j] += smem[tt];
      }
      workgroupBarrier();
    }
  }
  for (var i = 0u; i < TM; i++) {
    let m = tl.m0 + (i / 4u) * 4u * WGM + 4u * ty + i % 4u;
    if (half == 0u && m < params.m) {
      for (var j = 0u; j < ROWS / 4u; j++) {
        let v = acc[i * (ROWS / 4u) + j];
        let n = tl.n0 + j * 4u * WGN + 4u * tx;
#if KSLICES
        let base = (slice * params.m + m) * params.n + n;
#else
        let base = m * params.y_stride + params.y_offset + n;
#endif
        if (n < params.n) { y[base] = v.x; }
        if (n + 1u < params.n) { y[base + 1u] = v.y; }
        if (n + 2u < params.n) { y[base + 2u] = v.z; }
        if (n + 3u < params.n) { y[base + 3u] = v.w; }
      }
    }
  }
}
