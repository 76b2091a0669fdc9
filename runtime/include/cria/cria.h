/* cria — a C API for running Llama 3 and Falcon models from .cria files.
 *
 *   cria_model* model;
 *   if (cria_model_load("model.cria", NULL, &model) != CRIA_OK) {  // or &params
 *     fprintf(stderr, "%s\n", cria_last_error());
 *     return 1;
 *   }
 *   cria_session* session;
 *   cria_session_create(model, NULL, &session);
 *   cria_generate_params p;
 *   cria_generate_params_init(model, &p);
 *   p.prompt = "Tell me a fortune.";
 *   p.use_chat_template = 1;
 *   cria_generate(session, &p, on_piece, NULL, NULL);
 *   cria_session_free(session);
 *   cria_model_free(model);
 *
 * One model may be shared by many sessions, on any threads; a session is
 * used by one thread at a time (cria_session_cancel may come from any).
 * Errors: every function returns a cria_status; cria_last_error() gives the
 * message of the last failure on the calling thread.
 */
#ifndef CRIA_CRIA_H_
#define CRIA_CRIA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CRIA_API __declspec(dllexport)
#else
#define CRIA_API __attribute__((visibility("default")))
#endif

typedef enum cria_status {
  CRIA_OK = 0,
  CRIA_ERR_INVALID_ARGUMENT = 1,
  CRIA_ERR_NOT_FOUND = 2,
  CRIA_ERR_IO = 3,
  CRIA_ERR_CORRUPT = 4,
  CRIA_ERR_UNSUPPORTED = 5,
  CRIA_ERR_OUT_OF_RANGE = 6,
  CRIA_ERR_CANCELLED = 7,
  CRIA_ERR_OUT_OF_MEMORY = 8,
  CRIA_ERR_INTERNAL = 9
} cria_status;

typedef enum cria_stop_reason {
  CRIA_STOP_NONE = 0,
  CRIA_STOP_EOS = 1,          /* an end-of-sequence token */
  CRIA_STOP_MAX_TOKENS = 2,   /* max_new_tokens / max_length reached */
  CRIA_STOP_STRING = 3,       /* a stop string was generated */
  CRIA_STOP_CONTEXT_FULL = 4, /* no room left in the context */
  CRIA_STOP_CANCELLED = 5,    /* cria_session_cancel */
  CRIA_STOP_CALLBACK = 6      /* the token callback returned non-zero */
} cria_stop_reason;

typedef struct cria_model cria_model;
typedef struct cria_session cria_session;

/* Message of the calling thread's last error ("" if none). */
CRIA_API const char* cria_last_error(void);
CRIA_API const char* cria_status_name(cria_status s);
CRIA_API const char* cria_version(void);

/* ---- models ---------------------------------------------------------- */

typedef struct cria_model_params {
  /* Where the linear layers run: "auto" (NULL too) | "cpu" | "xnnpack" |
   * "vulkan". auto places each one on the backend measured fastest for its
   * weight type and falls back to cpu (saying why on stderr) when a backend
   * cannot start; a backend named here that this build or machine lacks is
   * an error listing what there is. Ops a backend cannot take run on cpu. */
  const char* backend;
  /* With backend "vulkan": only the first gpu_layers blocks run on the
   * device, the rest (and the output head, unless every block is there) on
   * cpu, for a board with less device memory than the model. -1 (the
   * default): every layer. Other backends take only -1. */
  int32_t gpu_layers;
  /* Where the CPU reads the weights from: "auto" (NULL too) | "copy" | "map".
   * copy reads the weights the CPU kernels stream into anonymous memory in
   * 2 MiB pages (transparent huge pages), the fastest decode, costing the
   * weights' size in private memory; map reads them in place from the
   * mapped file (least memory: shared page cache the kernel may evict).
   * auto copies on Linux when transparent huge pages are not off and the
   * copy fits the memory available, else maps. cria_model_placement's
   * "weights" row says which was used and how much got 2 MiB pages. */
  const char* weights;
} cria_model_params;
CRIA_API void cria_model_params_init(cria_model_params* params);
/* params may be NULL (the defaults). */
CRIA_API cria_status cria_model_load(const char* path, const cria_model_params* params, cria_model** out);
/* Loads from bytes in memory; cria copies nothing: `data` must outlive the
 * model (the WASM build streams a download straight into such a buffer). */
CRIA_API cria_status cria_model_load_from_memory(const void* data, size_t size, const char* name,
                                                 cria_model** out);
CRIA_API void cria_model_free(cria_model* model);

typedef struct cria_model_info {
  const char* architecture;      /* "llama" | "falcon" */
  const char* hf_architecture;   /* e.g. "LlamaForCausalLM" */
  const char* chat_template;     /* "llama3" | "falcon" | "none" */
  int32_t vocab_size, hidden_size, num_layers, num_heads, num_kv_heads, context_length;
  int32_t bos_id, add_bos;
  uint64_t file_size, parameters;
  double bits_per_weight;
  int32_t head_dim;              /* its own field: not always hidden_size / num_heads */
} cria_model_info;
CRIA_API cria_status cria_model_get_info(const cria_model* model, cria_model_info* out);
/* Which backend runs each op kind, one line per kind (what `cria inspect
 * --placement` prints); same buffer protocol as cria_tokenize, in bytes
 * (*len_out excludes the terminating NUL, which is written when it fits). */
CRIA_API cria_status cria_model_placement(const cria_model* model, char* buf, size_t cap, size_t* len_out);
/* The ids generation stops at by default (the tokenizer's EOS tokens and the
 * generation_config's eos_token_id), the first being the tokenizer's own EOS
 * (transformers' tokenizer.eos_token_id); same buffer protocol as
 * cria_tokenize. */
CRIA_API cria_status cria_model_eos_ids(const cria_model* model, int32_t* ids, size_t cap, size_t* n_out);

/* ---- checking a file while it arrives ----------------------------------
 * Verifies every tensor's checksum as a model file's bytes arrive in order
 * (a download streamed into memory), with no second pass:
 *   create once the first `have` bytes hold the preamble and header (the
 *   header ends at the preamble's header_offset + header_size), update after
 *   every chunk, finish at the end. update/finish fail with CRIA_ERR_CORRUPT
 *   naming the first tensor whose bytes do not match. `file` always points
 *   at the file's first byte; `file_size` is the size the preamble declares. */
typedef struct cria_verifier cria_verifier;
CRIA_API cria_status cria_verifier_create(const void* file, uint64_t have, uint64_t file_size, const char* name,
                                          cria_verifier** out);
CRIA_API cria_status cria_verifier_update(cria_verifier* v, const void* file, uint64_t have);
CRIA_API cria_status cria_verifier_finish(const cria_verifier* v);
CRIA_API void cria_verifier_free(cria_verifier* v);

/* ---- a model split by layers across instances -------------------------
 * For hosts that hold a model too large for one address space in several
 * (the browser: one WebAssembly instance per worker, each with its own
 * wasm32 memory). Each instance holds a contiguous range of layers and
 * only the byte ranges of the file its layers read; a token's hidden state
 * passes from one instance to the next. The first instance loads with
 * cria_model_load_ranges after installing a cria_pipeline_host, and then
 * tokenizes, samples and generates as usual (cria_generate); the others
 * run cria_stage_forward on what reaches them. `head` is always the
 * file's first `head_size` bytes, which hold the preamble and the header
 * (64 + header_size bytes). */
typedef struct cria_byte_range {
  uint64_t offset, size; /* absolute file offsets */
} cria_byte_range;
typedef struct cria_split_stage {
  int64_t layer_begin, layer_end; /* layers [begin, end) */
  uint64_t bytes;                 /* the sum of its ranges */
  uint32_t first_range, n_ranges; /* its ranges in the ranges array */
} cria_split_stage;
/* Splits the layers into n_stages contiguous stages, the largest as small
 * as it can be (the embedding on the first, the final norm and head on the
 * last, the tied embedding on both), and lists each stage's byte ranges
 * beyond the header. *n_ranges_out is the full count: call again with a
 * bigger `ranges` when it exceeds ranges_cap. */
CRIA_API cria_status cria_file_split(const void* head, uint64_t head_size, uint64_t file_size, const char* name,
                                     int32_t n_stages, cria_split_stage* stages, cria_byte_range* ranges,
                                     size_t ranges_cap, size_t* n_ranges_out);
/* Verifies the tensors of one byte range as it arrives on its own (the
 * cria_verifier protocol, with `file` in update pointing at the range's
 * first byte and `have` counted from there). */
CRIA_API cria_status cria_verifier_create_range(const void* head, uint64_t head_size, uint64_t file_size,
                                                const cria_byte_range* range, const char* name,
                                                cria_verifier** out);
/* Loads layers [layer_begin, layer_end) from the header and the byte
 * ranges (data[i] holds ranges[i]; all must outlive the model). Fails,
 * naming the tensor, when a tensor those layers read is not among them. */
CRIA_API cria_status cria_model_load_ranges(const void* head, uint64_t head_size, uint64_t file_size,
                                            const cria_byte_range* ranges, const void* const* data, size_t n_ranges,
                                            int64_t layer_begin, int64_t layer_end, const char* name,
                                            cria_model** out);

/* One token of a batch, as it travels between instances. */
typedef struct cria_batch_entry {
  int32_t token, pos, seq;
  int32_t logits; /* non-zero: its logits row is wanted */
} cria_batch_entry;

/* How the first instance reaches the others. Each call carries one message
 * down the chain of instances and returns when the last has answered; a
 * non-NULL return is the error (the host keeps the text alive until the
 * next call). forward: `hidden` holds n rows of hidden_size floats (the
 * first instance's output); the logits rows of the entries that ask for
 * them, in batch order, go to `logits` (n_logits rows of vocab_size). */
typedef struct cria_pipeline_host {
  void* user;
  const char* (*open)(void* user, int32_t sid, int32_t n_seq, int32_t n_ctx, const char* kv_type, int32_t max_tokens);
  const char* (*forward)(void* user, int32_t sid, const cria_batch_entry* batch, int32_t n, const float* hidden,
                         int32_t hidden_size, float* logits, int32_t n_logits, int32_t vocab_size);
  const char* (*copy_rows)(void* user, int32_t sid, int32_t src, int32_t dst, int32_t n_pos);
  void (*close)(void* user, int32_t sid);
} cria_pipeline_host;
/* Installs the host for this process (NULL removes it); later model loads
 * and sessions run their layers locally and the rest through the host. */
CRIA_API void cria_set_pipeline_host(const cria_pipeline_host* host);

/* A later instance: its layers' KV cache and scratch for one session of
 * the first instance (the open message's n_seq, n_ctx, kv_type,
 * max_tokens). */
typedef struct cria_stage cria_stage;
CRIA_API cria_status cria_stage_create(const cria_model* model, int32_t threads, int32_t n_seq, int32_t n_ctx,
                                       const char* kv_type, int32_t max_tokens, cria_stage** out);
/* Runs n entries through the stage's layers from `hidden_in` (n x
 * hidden_size). A stage that ends before the last layer writes its hidden
 * state (n x hidden_size) to `out`; the last writes the wanted logits rows
 * (vocab_size each). */
CRIA_API cria_status cria_stage_forward(cria_stage* stage, const cria_batch_entry* batch, int32_t n,
                                        const float* hidden_in, float* out);
CRIA_API cria_status cria_stage_copy_rows(cria_stage* stage, int32_t src, int32_t dst, int32_t n_pos);
CRIA_API void cria_stage_free(cria_stage* stage);

/* ---- tokens ---------------------------------------------------------- */

/* Encodes `len` bytes of text. Writes up to `cap` ids; *n_out is the full
 * count (call again with a bigger buffer when *n_out > cap). */
CRIA_API cria_status cria_tokenize(const cria_model* model, const char* text, size_t len, int add_bos,
                                   int parse_special, int32_t* ids, size_t cap, size_t* n_out);
/* Raw bytes of the ids (may end inside a UTF-8 character); same buffer
 * protocol as cria_tokenize. */
CRIA_API cria_status cria_detokenize(const cria_model* model, const int32_t* ids, size_t n, char* out,
                                     size_t cap, size_t* len_out);

/* ---- sessions -------------------------------------------------------- */

typedef struct cria_session_options {
  int32_t n_ctx;     /* 0: the model's context, capped at 4096 */
  int32_t n_seq;     /* sequences decoded together (>= num_return_sequences); 0: 1 */
  int32_t threads;   /* 0: all cores */
  int32_t batch;     /* prompt tokens per forward pass; 0: 256 */
  /* KV cache type: "f16" (NULL or "": the default), "q8" or "q4" (int8 /
   * int4 in blocks of 32 with a scale each: about 0.56x / 0.31x of f16's
   * memory, for long contexts), "f32". The cache is committed as it fills. */
  const char* kv_type;
} cria_session_options;

CRIA_API void cria_session_options_init(cria_session_options* opt);
CRIA_API cria_status cria_session_create(cria_model* model, const cria_session_options* opt, cria_session** out);
CRIA_API void cria_session_free(cria_session* session);
/* Context length (tokens) and thread count the session runs with. */
CRIA_API int32_t cria_session_n_ctx(const cria_session* session);
CRIA_API int32_t cria_session_threads(const cria_session* session);
/* The thread pool's parallel runs so far (every matmul, attention and row
 * op split over threads), and how many of them ran on the calling thread
 * alone because the other threads were held up: another process had their
 * cores (CRIA_ADAPTIVE_THREADS=0 never runs solo). Counts only grow; read
 * them between cria_generate calls. Either pointer may be NULL. */
CRIA_API void cria_session_pool_runs(const cria_session* session, uint64_t* runs, uint64_t* solo_runs);
/* Makes a running cria_generate on this session stop soon (any thread). */
CRIA_API void cria_session_cancel(cria_session* session);

typedef struct cria_message {
  const char* role;     /* "system" | "user" | "assistant" */
  const char* content;
} cria_message;

typedef struct cria_generate_params {
  /* Input: token ids, or a prompt, or chat messages (always templated), or a
   * batch of prompts decoded together (continuation i answers prompts[i];
   * each is templated when use_chat_template is set; the session needs
   * n_seq >= n_prompts). */
  const int32_t* prompt_ids;   /* used as is when set (no BOS added) */
  size_t n_prompt_ids;
  const char* const* prompts;
  size_t n_prompts;
  const char* prompt;
  const cria_message* messages;
  size_t n_messages;
  const char* system;          /* with prompt + use_chat_template: optional system message */
  int use_chat_template;       /* wrap `prompt` as one user turn in the model's template */
  int add_bos;                 /* -1: the model's default; 0/1: force (plain prompts) */
  int truncate;                /* drop the oldest prompt tokens (after BOS) that do not fit */
  /* Length. */
  int32_t max_new_tokens;      /* -1: until EOS or the context is full */
  int32_t max_length;          /* 0: off; prompt + new tokens, like transformers */
  int32_t num_return_sequences;/* 1..n_seq of the session */
  /* Sampling (transformers semantics). */
  int do_sample;               /* 0: greedy */
  float temperature, top_p, min_p, repetition_penalty;
  int32_t top_k;
  uint64_t seed;
  /* Stopping, in addition to the model's EOS ids (replaced when eos_ids is set). */
  const int32_t* eos_ids;
  size_t n_eos_ids;
  const char* const* stop_strings;
  size_t n_stop_strings;
} cria_generate_params;

/* Defaults: greedy, max_new_tokens 256, no limits; with a model, its
 * generation_config's sampling settings (do_sample, temperature, top_k,
 * top_p, repetition_penalty) where it has them. */
CRIA_API void cria_generate_params_init(const cria_model* model, cria_generate_params* p);

/* Called for every piece of text as soon as it is final (never half a UTF-8
 * character; stop strings never shown). `seq` is the continuation index.
 * Return non-zero to stop that continuation. */
typedef int (*cria_token_callback)(void* user, int32_t seq, const char* text, size_t len, int32_t token);

typedef struct cria_generate_result {
  int32_t prompt_tokens;
  int32_t reused_prompt_tokens;   /* cache rows kept from the previous call (a chat's earlier turns) */
  int32_t generated_tokens;       /* over all continuations */
  double prefill_seconds, decode_seconds, time_to_first_token;
  cria_stop_reason stop_reason;   /* of continuation 0 */
} cria_generate_result;

CRIA_API cria_status cria_generate(cria_session* session, const cria_generate_params* params,
                                   cria_token_callback callback, void* user, cria_generate_result* result);

/* The exact text the model is prompted with (template applied), for
 * inspection: same buffer protocol as cria_detokenize; NUL-terminated when
 * it fits. */
CRIA_API cria_status cria_render_prompt(const cria_model* model, const cria_generate_params* params, char* out,
                                        size_t cap, size_t* len_out);

/* Natural-log probabilities of ids[i + 1] given ids[0..i] for i >= first:
 * writes n - 1 - first values. Uses (and clears) the session's cache. */
CRIA_API cria_status cria_score(cria_session* session, const int32_t* ids, size_t n, size_t first, double* logprobs);

/* ---- conversion ------------------------------------------------------ */

/* Where a running cria_convert is: the tensor being written (canonical name),
 * its index of `count`, and bytes of the output's data segment written. */
typedef struct cria_convert_progress {
  const char* tensor;
  size_t index, count;
  uint64_t bytes_done, bytes_total;
  int tensor_done;   /* 1 on the last report of a tensor */
} cria_convert_progress;

/* Called on the converting thread after every chunk; return non-zero to stop
 * (cria_convert then fails with CRIA_ERR_CANCELLED and writes nothing). */
typedef int (*cria_convert_callback)(void* user, const cria_convert_progress* progress);

typedef struct cria_convert_options {
  const char* quant;          /* "f32" | "f16" | "q8" | "q4" | "keep"; NULL or "": q4 for HF, keep for GGUF */
  int32_t group;              /* q4 group size along K: 32 or 128 */
  int32_t threads;            /* quantization threads, >= 1 */
  int search;                 /* 1: error-minimising scale search; 0: round-to-nearest */
  const char* chat_template;  /* NULL or "": from the source; "llama3" | "falcon" | "none" */
} cria_convert_options;

/* Defaults: quant NULL, group 32, threads 2, search 1, chat_template NULL. */
CRIA_API void cria_convert_options_init(cria_convert_options* opt);
/* Converts a Hugging Face checkpoint directory or a .gguf file `src` to the
 * .cria file `dst`. On failure nothing is left at `dst` (an existing file is
 * only replaced on success). Builds without the converter (CRIA_TOOLS=OFF,
 * WASM) return CRIA_ERR_UNSUPPORTED. */
CRIA_API cria_status cria_convert(const char* src, const char* dst, const cria_convert_options* opt,
                                  cria_convert_callback callback, void* user);

#ifdef __cplusplus
}
#endif

#endif /* CRIA_CRIA_H_ */
