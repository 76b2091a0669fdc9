// Types of web/dist/cria.mjs.

export interface LoadProgress {
  /** 'starting' | 'downloading' | 'reading cache' | 'verifying' | 'caching' */
  phase: string;
  loaded: number;
  total: number;
  /** A model split across instances: which one reported (loaded and total cover all of them). */
  instance?: number;
}

/** One instance of a model split by layers. */
export interface InstanceStage {
  /** Layers [begin, end) it holds. */
  layers: [number, number];
  /** Bytes of the file it received (its header copy and its own byte ranges). */
  bytes: number;
}

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Threads for the multi-threaded build (default: the cores, at most 8). */
  threads?: number;
  /** 'auto' (default): threads when SharedArrayBuffer is available (cross-origin isolated pages, Node). */
  variant?: 'auto' | 'mt' | 'st';
  /** Context length in tokens (default: the model's, at most 4096, shrunk to the memory left). */
  contextLength?: number;
  /** KV cache type: 'f16' (default), 'q8' or 'q4' (int8 / int4 in blocks of 32: about half / a third of the memory, so a longer context fits). */
  kv?: 'f16' | 'q8' | 'q4';
  /** URL sources: keep the file in Cache Storage under this cache name (true: 'cria-models'). */
  cache?: string | boolean;
  /** Name used in messages for ArrayBuffer sources. */
  name?: string;
  /** Aborts the download. */
  signal?: AbortSignal;
  /**
   * WebAssembly instances (workers) to split the model across by layers, each with its own wasm32 memory
   * and threads, fetching only its own byte ranges (default: 1, or as many as a model too large for one
   * memory needs). More than one needs SharedArrayBuffer (cross-origin isolated pages, Node).
   */
  instances?: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface GenerateSettings {
  max_new_tokens?: number;
  max_length?: number;
  /** 0: greedy. Any sampling setting turns sampling on. */
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number;
  repetition_penalty?: number;
  seed?: number;
  /** Always take the most likely token. */
  greedy?: boolean;
  stop?: string[];
  signal?: AbortSignal;
}

export interface GenerateRequest extends GenerateSettings {
  messages?: ChatMessage[];
  prompt?: string;
  /** With `prompt`: wrap it as one user turn in the model's chat template. */
  chat?: boolean;
  /** With `prompt` and `chat`: a system message. */
  system?: string;
  /** Plain prompts: -1 the model's default, 0/1 force. */
  add_bos?: number;
  /** Token ids used as the prompt as they are (no BOS added). */
  prompt_ids?: number[];
  /** End-of-sequence ids replacing the model's. */
  eos_ids?: number[];
  /** Drop the oldest prompt tokens (after BOS) that do not fit the context. */
  truncate?: boolean;
}

export interface GenerateResult {
  prompt_tokens: number;
  /** Prompt tokens whose cache rows were kept from the previous request (a chat's earlier turns). */
  reused_prompt_tokens: number;
  generated_tokens: number;
  prefill_seconds: number;
  decode_seconds: number;
  time_to_first_token: number;
  stop_reason: 'eos' | 'max_tokens' | 'stop_string' | 'context_full' | 'cancelled' | 'none';
}

export interface ModelInfo {
  architecture: string;
  hf_architecture: string;
  chat_template: string;
  vocab_size: number;
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  num_kv_heads: number;
  context_length: number;
  file_size: number;
  parameters: number;
  bits_per_weight: number;
  head_dim: number;
  kv_bytes_per_token: number;
}

export interface GenerationStream extends AsyncIterable<string> {
  /** Resolves when generation ends (rejects with the error or AbortError). */
  result: Promise<GenerateResult>;
}

export declare function threadsAvailable(): boolean;

export declare class Cria {
  private constructor();
  static load(source: string | URL | Blob | ArrayBuffer | ArrayBufferView, options?: LoadOptions): Promise<Cria>;
  readonly info: ModelInfo;
  readonly threads: number;
  readonly variant: 'mt' | 'st';
  /** How many WebAssembly instances hold the model (more than one: split by layers). */
  readonly instances: number;
  /** Each instance's layers and the bytes it received. */
  readonly stages: InstanceStage[];
  readonly contextLength: number;
  /** The KV cache type the model runs with. */
  readonly kv: 'f16' | 'q8' | 'q4';
  /** Whether a running generation stops at the next token when aborted (threaded build, or JSPI). */
  readonly cancelWhileRunning: boolean;
  readonly lastResult: GenerateResult | null;
  stream(request: GenerateRequest, options?: GenerateSettings): GenerationStream;
  generate(request: GenerateRequest, options?: GenerateSettings): Promise<string>;
  renderPrompt(request: GenerateRequest): Promise<string>;
  dispose(): void;
}

export default Cria;
