// gemm_reduce.wgsl: the second dispatch of a GEMM whose K is split across workgroups
// (gemm_tile.wgsl with KSLICES): part holds SLICES partial products [SLICES][m][n], n this
// dispatch's weight rows; y[m][n] is their sum, stored where the tile kernel stores without
// slices (y_stride, y_offset: a row chunk of a wider y). One invocation per output, consecutive
// invocations on consecutive n, so every load and store is coalesced.
//
// Grid: (ceil(n / WG), m, 1); WG threads. Consts from the header: WG, SLICES. Params from
// decode.wgsl: the tile dispatch's own block.

@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  let mi = gid.y;
  if (n >= params.n || mi >= params.m) {
    return;
  }
  let plane = params.m * params.n;
  var i = mi * params.n + n;
  var s = 0.0;
  for (var j = 0u; j < SLICES; j++) {
    s += part[i];
    i += plane;
  }
  y[mi * params.y_stride + params.y_offset + n] = s;
}
