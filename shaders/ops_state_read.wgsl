// ops_state_read.wgsl: the read half of a StateWrite: rows [0, keep) of a state as f32, after
// ops_state_write.wgsl stored the new rows (dispatches of one pass run in order). The state's
// layout per format is that file's; ops_state_load.wgsl reads it.

struct Params {
  n: u32,          // elements read
  d: u32,          // int8: elements per scaled row
  scale_word: u32, // int8: first word of the scales
  wpr: u32,        // int8: words per scaled row
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> st: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Elements per invocation: a long cache is millions of elements, and one a thread left an H200
// reading 0.4 TB/s (NOTES.md). The backend's grid covers ceil(n / PER) invocations.
const PER: u32 = 4u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t0 = flat_index(gid, nwg) * PER;
  for (var e = 0u; e < PER; e++) {
    let t = t0 + e;
    if (t < params.n) {
      y[t] = state_load(t);
    }
  }
}
