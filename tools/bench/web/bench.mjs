// The browser side of tools/bench. The harness loads index.html?runtime=NAME once per runtime, in
// one browser process:
//   probe           adapter facts (GPUAdapterInfo, isFallbackAdapter), WebNN presence
//   nibble-*        Go's wasm_exec.js runs /nibble.wasm (tools/bench/page), which does the work
//   ort-*           ONNX Runtime Web from /ort/ (node_modules/onnxruntime-web/dist, never a CDN)
// Results go back as POSTs: /result (JSON), /output (the last run's y as raw float32), /done.
const params = new URLSearchParams(location.search);
const runtime = params.get('runtime');
const verbose = params.has('verbose'); // ORT's own log at VERBOSE: which EP takes which node, and why not

const msg = (e) => (e && e.message ? `${e.name || 'Error'}: ${e.message}` : String(e));

async function post(path, body) {
  const r = await fetch(path, {method: 'POST', body});
  if (!r.ok) throw new Error(`POST ${path}: ${r.status} ${await r.text()}`);
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`GET ${url}: ${r.status}`);
  return r.arrayBuffer();
}

async function probe() {
  const p = {
    user_agent: navigator.userAgent,
    hardware_concurrency: navigator.hardwareConcurrency,
    cross_origin_isolated: self.crossOriginIsolated,
    webnn: !!navigator.ml,
  };
  try {
    if (!navigator.gpu) throw new Error('navigator.gpu is missing');
    const a = await navigator.gpu.requestAdapter();
    if (!a) throw new Error('requestAdapter() returned null');
    const info = a.info || {};
    p.adapter = {
      vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
      // isFallbackAdapter moved from GPUAdapter to GPUAdapterInfo; read whichever exists.
      isFallbackAdapter: info.isFallbackAdapter ?? a.isFallbackAdapter ?? null,
      features: [...a.features].sort(),
      maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
    };
  } catch (e) {
    p.adapter_error = msg(e);
  }
  await post('/probe', JSON.stringify(p));
}

async function runNibble() {
  const go = new Go();
  go.argv = ['nibble-bench', runtime];
  const {instance} = await WebAssembly.instantiateStreaming(fetch('/nibble.wasm'), go.importObject);
  // The Go program posts its results and /done itself; this /done only counts if it did not
  // (the server takes the first one per page).
  await go.run(instance);
  await post('/done', JSON.stringify({runtime, error: 'the nibble page exited without reporting'}));
}

// Which ORT bundle serves which runtime. onnxruntime-web/webgpu is the native WebGPU EP (C++
// kernels compiled into the asyncify wasm); the default bundle (JSEP wasm) carries the WebNN EP.
const ortRuntimes = {
  'ort-webgpu': {module: '/ort/ort.webgpu.min.mjs', ep: ['webgpu'], path: 'WebGPU EP (onnxruntime-web/webgpu)'},
  'ort-webnn': {module: '/ort/ort.min.mjs', ep: [{name: 'webnn', deviceType: 'cpu'}], path: 'WebNN EP (cpu)'},
  'ort-wasm': {module: '/ort/ort.wasm.min.mjs', ep: ['wasm'], path: 'wasm EP (CPU)'},
};

// ORT's WebNN EP expresses MatMulNBits as dequantizeLinear over uint4 (its verbose log names data
// type 21, UINT4); say whether this context accepts that.
async function uint4Note() {
  try {
    const ctx = await navigator.ml.createContext({deviceType: 'cpu'});
    const types = ctx.opSupportLimits().dequantizeLinear?.input?.dataTypes ?? [];
    ctx.destroy?.();
    return `WebNN dequantizeLinear input types here: [${types.join(' ')}]` + (types.includes('uint4') ? '' : ' (no uint4)');
  } catch (e) {
    return `opSupportLimits: ${msg(e)}`;
  }
}

async function runORT() {
  const b = ortRuntimes[runtime];
  if (!b) throw new Error(`unknown runtime ${runtime}`);
  const ort = await import(b.module);
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = navigator.hardwareConcurrency;
  ort.env.logLevel = 'warning';
  const plan = await (await fetch('/plan.json')).json();
  for (const c of plan.cases) {
    const res = {runtime, case: c.name, path: b.path, ms: [], notes: [`onnxruntime-web ${ort.env.versions?.web ?? '?'}`]};
    let session;
    try {
      const model = new Uint8Array(await fetchBytes(`/case/${c.name}/model.onnx`));
      const x = new Float32Array(await fetchBytes(`/case/${c.name}/x.bin`));
      // First with CPU fallback off, so a session that is created proves MatMulNBits runs on
      // the EP asked for; if that fails, again with fallback, and the path says so.
      const opts = {executionProviders: b.ep, logSeverityLevel: verbose ? 0 : 2};
      if (runtime !== 'ort-wasm') opts.extra = {session: {disable_cpu_ep_fallback: '1'}};
      let t0 = performance.now();
      try {
        session = await ort.InferenceSession.create(model, opts);
      } catch (e) {
        if (runtime === 'ort-wasm') throw e;
        res.notes.push(`with CPU fallback disabled the session was refused (${msg(e)}): MatMulNBits runs on ORT's CPU (wasm) EP`);
        res.path += ' → MatMulNBits on CPU EP';
        if (runtime === 'ort-webnn') res.notes.push(await uint4Note());
        delete opts.extra;
        t0 = performance.now();
        session = await ort.InferenceSession.create(model, opts);
      }
      res.build_ms = performance.now() - t0;
      const feeds = {A: new ort.Tensor('float32', x, [c.m, c.k])};
      // Outputs stay on the CPU (ORT's default location), so session.run resolves only after y
      // has been read back from the device: x upload + run + readback, as nibble's MatMul.
      const once = async () => {
        const t = performance.now();
        const out = await session.run(feeds);
        const y = out.Y.data;
        return [performance.now() - t, y];
      };
      let [dt, y] = await once();
      res.first_ms = dt;
      for (let i = 0; i < plan.warmup; i++) [dt, y] = await once();
      for (let i = 0; i < plan.runs; i++) {
        [dt, y] = await once();
        res.ms.push(dt);
      }
      await post(`/output?runtime=${runtime}&case=${c.name}`, y);
    } catch (e) {
      res.error = msg(e);
    } finally {
      if (session) await session.release();
    }
    await post('/result', JSON.stringify(res));
  }
  await post('/done', JSON.stringify({runtime}));
}

async function main() {
  if (runtime === 'probe') {
    await probe();
    await post('/done', JSON.stringify({runtime}));
  } else if (runtime.startsWith('nibble-')) {
    await runNibble();
  } else {
    await runORT();
  }
}

main().catch((e) => post('/done', JSON.stringify({runtime, error: msg(e)})));
