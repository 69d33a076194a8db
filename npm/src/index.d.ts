// Types of @nibble-ml/nibble. Field names are the Go engine's JSON tags (wasm/engine,
// wasm/internal/jsapi): the same objects the wasm returns.

/** Where the wasm runs and where it is fetched from; set before the first call. */
export declare const env: {
  /** Run nibble in a dedicated Web Worker (default where Workers exist); false: the page's thread. */
  worker: boolean;
  /** URL of nibble.wasm; default: beside this module (bundlers emit it). */
  wasmURL: string | URL | undefined;
};

/** "hybrid": weights on every backend offered, each stage of the model on the one a probe at load found fastest and correct (Plan.precision.placement). */
export type Backend = "auto" | "webgpu" | "webnn" | "cpu" | "hybrid";

/** A weight format: "q<bits>-<sym|asym>-<g<group>|pc>[-f16|-f32]", "f16", "f32" or "auto". */
export type Format =
  | "auto" | "q4-sym-g32" | "q4-asym-g32" | "q4-sym-g128" | "q8-sym-g32" | "q8-asym-g128"
  | "q2-asym-g16" | "q4-sym-g32-f16" | "q8-sym-pc" | "f16" | "f32" | (string & {});

/**
 * Precision by intent (wasm/plan): "auto" picks the most accurate tier that fits memoryBudget and
 * the device; "quality" int8; "balanced" int8 with int4 where measured harmless; "mixed" per
 * tensor from measured sensitivity; "small" int4 g16 f16 scales; "int4" q4-sym-g32; "tiny" the
 * fewest int4 bytes.
 */
export type Policy = "auto" | "quality" | "balanced" | "mixed" | "small" | "int4" | "tiny";

/** The stable codes of NibbleError. */
export type ErrorCode =
  | "NOT_FOUND" | "UNSUPPORTED_FORMAT" | "UNSUPPORTED_MODEL" | "OUT_OF_MEMORY" | "DEVICE_LOST"
  | "ABORTED" | "NETWORK" | "BAD_ARGUMENT" | "INTERNAL";

/** Every rejection of the package. */
export declare class NibbleError extends Error {
  readonly name: "NibbleError";
  /** What went wrong, stable across versions: switch on it. */
  readonly code: ErrorCode;
  /** One line a person can act on. */
  readonly message: string;
  /** An Error whose message is the whole Go error chain (for bug reports). */
  readonly cause: Error | undefined;
}

export interface LoadOptions {
  /** "auto" (default): WebGPU on a hardware adapter, else WebNN, else the CPU. */
  backend?: Backend;
  /** The weight matrices' format (default "auto": q4-sym-g32). Give format or policy. */
  format?: Format;
  policy?: Policy;
  /** Pins tensors to formats whatever the policy says: "pattern=format[@backend],…" (a glob on
   * the tensor's name, or "role:<role>"). */
  overrides?: string;
  /**
   * Bytes the quantized model may hold: with a policy, the plan's budget; a model that cannot
   * fit fails with OUT_OF_MEMORY before its weights are fetched.
   */
  memoryBudget?: number;
  /** Pick each group's scale by error search: slower loads, lower error. */
  search?: boolean;
  /**
   * Round activations to int8 where the backend has fast int8 products (default false), adding
   * that rounding to the error. "webgpu" (or "auto" on WebGPU): every matrix-vector product
   * (a decoder's token steps, an encoder's head for up to 4 texts) rounds its inputs to int8 per
   * block of 32 (16 for int8 weights) and uses packed int8 dot products, for quantized weights
   * whose groups are whole blocks and a browser whose WGSL has packed_4x8_integer_dot_product;
   * each output moves by at most Σ|w|·d·(½ + 2⁻¹³), d a block's max|x|/127; a 7B decode step
   * ran 18–27 % faster on an H200. "webnn": an encoder's layers in int8 calibrated once on
   * built-in sentences (static W8A8, TFLite's int8 kernels; generate ignores it). "cpu" and
   * "hybrid" ignore it. stats().notes says what applied.
   */
  int8Activations?: boolean;
  /**
   * Keep the quantized tensors, and the model's manifest, in the Cache API ("nibble-quantized")
   * and load from there next time, with no download, and offline. Default: on for every file
   * with a sha256 (a model directory with manifest.json); false neither reads nor writes.
   */
  cache?: boolean;
  /** Cancels the load and frees what it held; the promise rejects with code ABORTED. */
  signal?: AbortSignal;
  /** Called about every 100 ms while the load runs, and once at its end. */
  onProgress?: (p: Progress) => void;
  /** Overrides env.worker for this load. */
  worker?: boolean;
}

export interface Progress {
  source: string;
  bytesReceived: number;
  bytesTotal: number;
  tensorsReady: number;
  tensorsTotal: number;
  heldBytes: number;
  peakHeldBytes: number;
  residentBytes: number;
  quantizedTotal: number;
  resumes: number;
  elapsedMs: number;
  firstReadyMs: number;
  firstOutputMs: number;
  /** The wasm's linear memory now. */
  wasmMemoryBytes: number;
  /** Files read from the cache (their bytes are not in bytesReceived). */
  cacheHits: number;
  cacheRead: number;
  cacheWritten: number;
  done: boolean;
  error?: string;
}

export interface Memory {
  f32Bytes: number;
  residentBytes: number;
  reductionPct: number;
  layerF32Bytes: number;
  layerBytes: number;
  peakHeldBytes: number;
  wasmMemoryBytes: number;
  tensorsPending: number;
}

export interface Stats extends Memory {
  url: string;
  kind: "file" | "tfjs";
  arch: string;
  backend: Exclude<Backend, "auto">;
  format: string;
  loadMs: number;
  firstOutputMs: number;
  bytesReceived: number;
  resumes: number;
  /** Whether the load used the cache; files read from it; entry bytes read and written. */
  cache: boolean;
  cacheHits: number;
  cacheRead: number;
  cacheWritten: number;
  /** Loads sharing this model (concurrent loads of one URL share one download). */
  handles: number;
  notes: string[];
}

export interface TensorPlan {
  name: string;
  shape: number[];
  /** As stored in the file. */
  dtype: string;
  /** As held by the backend. */
  format: string;
  bytes: number;
  f32Bytes: number;
  resident: boolean;
  /** A weight matrix (what measure() times). */
  layer: boolean;
}

/** One tensor's line of the precision plan: its format and why. */
export interface PlanChoice {
  name: string;
  role:
    | "embedding" | "attn_q" | "attn_k" | "attn_v" | "attn_qkv" | "attn_out" | "ffn_up" | "ffn_gate"
    | "ffn_down" | "dense" | "head" | "norm" | "bias" | "other" | (string & {});
  layer: number;
  shape: number[];
  format: string;
  bits: number;
  groupSize?: number;
  scheme?: string;
  scales?: string;
  backend?: string;
  /** An override named the backend: a hybrid load runs the tensor's stage there or fails. */
  pinned?: boolean;
  bytes: number;
  reason: string;
}

/** What a hybrid load's probe measured of one stage (or the whole model) on one backend. */
export interface PlacementProbe {
  backend: string;
  /** Median of the timed runs, upload and readback included. */
  ms: number;
  /** Relative RMS error against the reference's (cpu) output. */
  relErr: number;
  error?: string;
}

/** Where a hybrid load runs each stage of the model, and why (wasm/plan Placement). */
export interface Placement {
  reference: string;
  bound: number;
  probe: string;
  stages: { name: string; pinned?: string; probe: PlacementProbe[]; backend: string; reason: string; moved?: string }[];
  whole: PlacementProbe[];
  splitMs: number;
  chosenMs: number;
  /** Stage boundaries per pass where the backend changes (activations cross through host memory). */
  crossings: number;
  /** Crossings made so far, and the bytes they moved. */
  crossed: number;
  crossedBytes: number;
  notes?: string[];
}

/** The precision plan a load followed (wasm/plan). */
export interface PrecisionPlan {
  policy: string;
  budget?: number;
  bytes: number;
  f32Bytes: number;
  backends?: string[];
  /** The output's error predicted from measured per-tensor sensitivity, where there is data. */
  predicted?: { metric: string; meanLoss: number; worstLoss: number };
  tensors: PlanChoice[];
  /** A hybrid load's placement of the model's stages. */
  placement?: Placement;
  notes?: string[];
}

export interface Plan {
  backend: Exclude<Backend, "auto">;
  format: string;
  precision: PrecisionPlan | null;
  /** Each tensor as held now. */
  tensors: TensorPlan[];
}

export interface EmbedOptions {
  /** Stops the run at its next stage; the promise rejects with code ABORTED. */
  signal?: AbortSignal;
}

export interface GenerateOptions {
  /** Stop after this many tokens (default: at the end-of-generation token or a full cache). */
  maxTokens?: number;
  /** 0 (default): greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** The same seed gives the same tokens. */
  seed?: number;
  /** The KV cache's length in tokens (default the model's, capped at 2048). */
  context?: number;
  /** The KV cache's storage (default "f32"). */
  cache?: "f32" | "f16" | "int8";
  /** Stops before the next token; the promise rejects with code ABORTED. */
  signal?: AbortSignal;
  onToken?: (t: Token) => void;
}

/** One generated token; text is "" for a token that ends inside a UTF-8 character. */
export interface Token {
  id: number;
  text: string;
}

export interface Generation {
  text: string;
  tokens: number[];
  ms: number;
}

export interface MeasureOptions {
  m?: number;
  runs?: number;
  maxLayers?: number;
  seed?: number;
  onLayer?: (r: LayerResult) => void;
}

export interface LayerResult {
  name: string;
  n: number;
  k: number;
  m: number;
  format: string;
  bytes: number;
  f32Bytes: number;
  medianMs: number;
  minMs: number;
  runs: number;
  relRms: number;
  cosine: number;
  maxAbs: number;
  error?: string;
}

/** A loaded model. Its methods run where the model lives (the worker by default). */
export declare class Model {
  readonly url: string;
  readonly kind: "file" | "tfjs";
  /** "use-lite" (embed) or "llama" (generate) when nibble runs the whole model, else "". */
  readonly arch: string;
  readonly backend: Exclude<Backend, "auto">;
  readonly format: string;
  readonly loadMs: number;
  /** Bytes held for the weights, and the same tensors as float32. */
  readonly bytes: number;
  readonly f32Bytes: number;
  readonly cache: boolean;
  readonly notes: string[];
  /**
   * One unit-length Float32Array(512) per text, in order (Universal Sentence Encoder Lite).
   * Texts past 128 tokens are clipped, as the model does. Rejects UNSUPPORTED_MODEL for a model
   * nibble cannot run whole, BAD_ARGUMENT for an empty list or a non-string.
   */
  embed(texts: string | string[], options?: EmbedOptions): Promise<Float32Array[]>;
  /**
   * Generates text after prompt (a Llama-family GGUF model); rejects UNSUPPORTED_MODEL for
   * other models. onToken sees each token as it is sampled. The promise is also an async
   * iterable over the tokens, `for await (const t of m.generate(prompt)) …`; leaving the loop
   * early stops the generation (the promise then rejects ABORTED), as the signal does.
   */
  generate(prompt: string, options?: GenerateOptions): Promise<Generation> & AsyncIterable<Token>;
  stats(): Promise<Stats>;
  plan(): Promise<Plan>;
  tensors(): Promise<TensorPlan[]>;
  /** y[rows×N] = x[rows×K] · dequant(W)ᵀ for one resident weight matrix. */
  matmul(name: string, x: Float32Array, rows: number): Promise<Float32Array>;
  /** Each weight matrix's latency on the backend and error against float32. */
  measure(options?: MeasureOptions): Promise<LayerResult[]>;
  /** Frees the model (the last of the loads sharing it frees the weights and the backend). */
  dispose(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Loads a model: a directory ending in "/" (with manifest.json; "…/m" is understood too), a
 * manifest.json, a TF.js model.json, or one .safetensors / .gguf file. Resolves once every
 * tensor is resident.
 */
export declare function load(url: string, options?: LoadOptions): Promise<Model>;

export interface Devices {
  webgpu: {
    available: boolean;
    error?: string;
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    /** A CPU emulation (SwiftShader, lavapipe). */
    software: boolean;
    shaderF16: boolean;
    subgroups: boolean;
    timestampQuery: boolean;
    subgroupMinSize: number;
    subgroupMaxSize: number;
    features: string[];
    limits: Record<string, number>;
  };
  webnn: {
    available: boolean;
    error?: string;
    deviceType: string;
    dequantizeLinear: string[];
    constants: string[];
    float16: boolean;
    summary: string[];
  };
  cpu: { gomaxprocs: number; goVersion: string };
}

/** What the thread nibble runs on offers (the worker's, by default). */
export declare function devices(options?: { worker?: boolean }): Promise<Devices>;

/** nibble's version and the Go version that built it. */
export declare function version(options?: { worker?: boolean }): Promise<string>;
