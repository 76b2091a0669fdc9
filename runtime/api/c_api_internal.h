// What the C API's translation units share (c_api.cc, c_api_stages.cc):
// the model handle and the error plumbing. Not part of the public API.
#pragma once

#include <memory>
#include <string>

#include "cria/cria.h"
#include "formats/checksum_stream.h"
#include "formats/model_file.h"
#include "runtime/engine/session.h"
#include "runtime/model/model.h"
#include "runtime/tokenizer/chat.h"
#include "runtime/tokenizer/tokenizer.h"

struct cria_model {
  std::shared_ptr<const cria::Model> model;
  std::shared_ptr<const cria::Tokenizer> tok;
  cria::ChatTemplateData chat;
  cria::GenerationDefaults gen;
  std::string arch, hf_arch, chat_name;
  uint64_t parameters = 0, tensor_bytes = 0;
};

struct cria_verifier {
  std::unique_ptr<cria::ChecksumStream> stream;
};

namespace cria::api {

extern thread_local std::string g_error;

cria_status to_c(cria::Code c);
cria_stop_reason to_c(cria::StopReason r);
// Records the message (cria_last_error) and returns its code.
cria_status fail(const cria::Status& s);
cria_status fail(cria_status code, const std::string& msg);
// Places a validated file's layers (opt) and wraps the model in a handle.
cria_status finish_load(std::unique_ptr<cria::ModelFile> file, cria::ModelOptions opt, cria_model** out);

}  // namespace cria::api
