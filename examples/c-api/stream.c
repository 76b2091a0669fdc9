/* Streams a completion through the C API:
 *   stream MODEL.cria "prompt" [--chat]
 * Text goes to stdout as it is generated; errors to stderr. */
#include <stdio.h>
#include <string.h>

#include <cria/cria.h>

static int on_text(void* user, int32_t seq, const char* text, size_t len, int32_t token) {
  (void)user;
  (void)seq;
  (void)token;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.cria PROMPT [--chat]\n", argv[0]);
    return 2;
  }
  cria_model* model = NULL;
  if (cria_model_load(argv[1], NULL, &model) != CRIA_OK) {
    fprintf(stderr, "error: %s\n", cria_last_error());
    return 1;
  }
  cria_session* session = NULL;
  if (cria_session_create(model, NULL, &session) != CRIA_OK) {
    fprintf(stderr, "error: %s\n", cria_last_error());
    cria_model_free(model);
    return 1;
  }
  cria_generate_params p;
  cria_generate_params_init(model, &p);
  p.prompt = argv[2];
  p.use_chat_template = argc > 3 && strcmp(argv[3], "--chat") == 0;
  p.max_new_tokens = 64;
  cria_generate_result r;
  cria_status s = cria_generate(session, &p, on_text, NULL, &r);
  if (s != CRIA_OK) fprintf(stderr, "error: %s\n", cria_last_error());
  else fprintf(stderr, "\n[%d prompt tokens, %d generated, %.1f tok/s]\n", r.prompt_tokens, r.generated_tokens,
               r.decode_seconds > 0 ? r.generated_tokens / r.decode_seconds : 0.0);
  cria_session_free(session);
  cria_model_free(model);
  return s == CRIA_OK ? 0 : 1;
}
