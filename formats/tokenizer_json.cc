// Reader of Hugging Face tokenizer.json + tokenizer_config.json into
// TokenizerData / ChatTemplateData. Only what cria's runtime implements is
// accepted (byte-level BPE, the pre-tokenizers of Llama 3, GPT-2 and
// Falcon); anything else is an error naming the file and the component, so a
// conversion never silently produces a tokenizer that differs from the original.
#include "formats/tokenizer_json.h"

#include "formats/bytelevel.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace cria {
namespace {

using json = nlohmann::json;

// The Split regex of Llama 3 (and 3.1/3.2), compared verbatim.
constexpr const char* kLlama3Regex =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// Falcon's Split after Digits: runs of digits in groups of three.
constexpr const char* kDigits3Regex = "[0-9][0-9][0-9]";

Status err(const std::string& msg) { return Error(Code::kInvalidArgument, msg); }
Status unsupported(const std::string& msg) { return Error(Code::kUnsupported, msg); }

Result<std::string> read_file(const std::string& path, bool* exists) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *exists = false;
    return Error(Code::kNotFound, path + ": cannot open");
  }
  *exists = true;
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Error(Code::kIo, path + ": read error");
  return ss.str();
}

Result<json> parse_json(const std::string& path, const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(Code::kCorrupt, path + ": not valid JSON");
  if (!j.is_object()) return Error(Code::kCorrupt, path + ": the top level is not a JSON object");
  return j;
}

// Typed field access with errors that name the field.
bool get_bool(const json& o, const char* key, bool dflt) {
  auto it = o.find(key);
  return (it != o.end() && it->is_boolean()) ? it->get<bool>() : dflt;
}

std::string get_string(const json& o, const char* key) {
  auto it = o.find(key);
  return (it != o.end() && it->is_string()) ? it->get<std::string>() : std::string();
}

std::string type_of(const json& o) { return o.is_object() ? get_string(o, "type") : std::string(); }

// A vocabulary string in the byte-level alphabet -> the raw bytes it stands
// for. A string with characters outside the alphabet is kept as written (the
// ByteLevel decoder of tokenizers does the same).
std::string unmap_bytes(const std::string& s) {
  std::string out;
  return bytelevel_decode(s, &out) ? out : s;
}

struct PostInfo {
  std::string bos_content;  // TemplateProcessing's leading special token
  int32_t bos_id = -1;
  bool has_template = false;
};

Status add_pre_step(const json& p, const std::string& where, TokenizerData* tok) {
  const std::string type = type_of(p);
  if (type == "Sequence") {
    auto it = p.find("pretokenizers");
    if (it == p.end() || !it->is_array()) return err(where + ": Sequence without a 'pretokenizers' list");
    for (size_t k = 0; k < it->size(); ++k) {
      CRIA_RETURN_IF_ERROR(add_pre_step((*it)[k], where + ".pretokenizers[" + std::to_string(k) + "]", tok));
    }
    return Status::Ok();
  }
  PreTokStep st;
  if (type == "ByteLevel") {
    st.kind = PreTokKind::kByteLevel;
    st.add_prefix_space = get_bool(p, "add_prefix_space", true);
    st.use_regex = get_bool(p, "use_regex", true);
  } else if (type == "Split") {
    const json* pat = p.contains("pattern") ? &p["pattern"] : nullptr;
    const std::string regex = pat && pat->is_object() ? get_string(*pat, "Regex") : std::string();
    const std::string behavior = get_string(p, "behavior");
    if (regex == kLlama3Regex) {
      st.kind = PreTokKind::kSplitLlama3;
    } else if (regex == kDigits3Regex) {
      st.kind = PreTokKind::kSplitDigits3;
    } else {
      return unsupported(where + ": Split pattern " + (pat ? pat->dump() : std::string("(none)")) +
                         " is not supported (only the Llama 3 regex and Falcon's \"[0-9][0-9][0-9]\")");
    }
    if (behavior != "Isolated" || get_bool(p, "invert", false)) {
      return unsupported(where + ": Split with behavior '" + behavior + "'" +
                         (get_bool(p, "invert", false) ? " and invert" : "") + " is not supported (only Isolated)");
    }
  } else if (type == "Punctuation") {
    const std::string behavior = get_string(p, "behavior");
    if (behavior != "Contiguous") {
      return unsupported(where + ": Punctuation with behavior '" + (behavior.empty() ? "Isolated" : behavior) +
                         "' is not supported (only Contiguous)");
    }
    st.kind = PreTokKind::kPunctuation;
  } else if (type == "Digits") {
    st.kind = PreTokKind::kDigits;
    st.individual_digits = get_bool(p, "individual_digits", false);
  } else {
    return unsupported(where + ": pre-tokenizer type '" + type + "' is not supported");
  }
  tok->pre_tokenizer.push_back(st);
  return Status::Ok();
}

// Decoders that only undo the byte-level mapping.
Status check_decoder(const json& d) {
  if (d.is_null()) return Status::Ok();
  const std::string type = type_of(d);
  if (type == "ByteLevel") return Status::Ok();
  if (type == "Sequence" && d.contains("decoders") && d["decoders"].is_array()) {
    for (const json& x : d["decoders"]) CRIA_RETURN_IF_ERROR(check_decoder(x));
    return Status::Ok();
  }
  return unsupported("decoder type '" + type + "' is not supported (only ByteLevel)");
}

Status read_post_processor(const json& pp, PostInfo* info) {
  if (pp.is_null()) return Status::Ok();
  const std::string type = type_of(pp);
  if (type == "ByteLevel") return Status::Ok();
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const json& x : pp["processors"]) CRIA_RETURN_IF_ERROR(read_post_processor(x, info));
    return Status::Ok();
  }
  if (type != "TemplateProcessing") {
    return unsupported("post_processor type '" + type + "' is not supported");
  }
  auto single = pp.find("single");
  if (single == pp.end() || !single->is_array()) return err("post_processor: TemplateProcessing without 'single'");
  info->has_template = true;
  bool seen_text = false;
  int leading = 0;
  for (const json& item : *single) {
    if (item.contains("Sequence")) {
      seen_text = true;
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].is_object()) {
      return err("post_processor: TemplateProcessing item " + item.dump() + " is neither SpecialToken nor Sequence");
    }
    if (seen_text) {
      return unsupported("post_processor: TemplateProcessing appends " + item["SpecialToken"].dump() +
                         " after the text; cria only supports a leading BOS");
    }
    if (++leading > 1) return unsupported("post_processor: TemplateProcessing adds more than one leading token");
    info->bos_content = get_string(item["SpecialToken"], "id");
  }
  if (!info->bos_content.empty()) {
    auto st = pp.find("special_tokens");
    if (st != pp.end() && st->contains(info->bos_content)) {
      const json& ids = (*st)[info->bos_content]["ids"];
      if (ids.is_array() && ids.size() == 1 && ids[0].is_number_unsigned()) info->bos_id = ids[0].get<int32_t>();
    }
  }
  return Status::Ok();
}

// bos_token / eos_token / pad_token: a string or {"content": ...}.
std::string token_content(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) return get_string(*it, "content");
  return {};
}

Result<std::string> chat_template_text(const json& cfg, const std::string& path) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    // Named templates: the "default" one, else the first.
    std::string first;
    for (const json& t : *it) {
      if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) {
        return err(path + ": chat_template list entries must be {\"name\", \"template\"} objects");
      }
      if (get_string(t, "name") == "default") return t["template"].get<std::string>();
      if (first.empty()) first = t["template"].get<std::string>();
    }
    return first;
  }
  return err(path + ": chat_template is neither a string nor a list of named templates");
}

}  // namespace

ChatKind detect_chat_kind(const std::string& jinja) {
  auto has = [&](const char* s) { return jinja.find(s) != std::string::npos; };
  if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>")) return ChatKind::kLlama3;
  if (has("Falcon:") && has("User:")) return ChatKind::kFalcon;
  return ChatKind::kNone;
}

namespace {

using Ids = std::unordered_map<std::string, uint32_t>;  // tokenizer.json vocabulary string -> id

// normalizer (must be absent) and model: vocab, added tokens, merges.
Status read_model(const json& j, TokenizerData* tok, Ids* ids) {
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& nz = j["normalizer"];
    const bool empty_seq = type_of(nz) == "Sequence" && nz.contains("normalizers") && nz["normalizers"].is_array() &&
                           nz["normalizers"].empty();
    if (!empty_seq) return unsupported("normalizer '" + type_of(nz) + "' is not supported");
  }
  if (!j.contains("model") || !j["model"].is_object()) return err("no 'model' object");
  const json& m = j["model"];
  const std::string mtype = type_of(m);
  if (!(mtype == "BPE" || (mtype.empty() && m.contains("merges")))) {
    return unsupported("model type '" + mtype + "' is not supported (only BPE)");
  }
  if (get_bool(m, "byte_fallback", false)) return unsupported("BPE with byte_fallback is not supported");
  if (!get_string(m, "continuing_subword_prefix").empty() || !get_string(m, "end_of_word_suffix").empty()) {
    return unsupported("BPE with continuing_subword_prefix / end_of_word_suffix is not supported");
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0) {
    return unsupported("BPE dropout is not supported");
  }
  tok->ignore_merges = get_bool(m, "ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) return err("model.vocab is not an object");
  const json& vocab = m["vocab"];

  ids->reserve(vocab.size());
  uint32_t max_id = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() > 0x7FFFFFFF) {
      return err("model.vocab['" + it.key() + "']: the id is not a non-negative integer");
    }
    const auto id = it.value().get<uint32_t>();
    ids->emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) return err("added_tokens is not a list");
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_unsigned() || !a.contains("content") ||
          !a["content"].is_string()) {
        return err("added_tokens entry " + a.dump() + " lacks a numeric id or a string content");
      }
      AddedToken t;
      t.id = a["id"].get<uint32_t>();
      t.content = a["content"].get<std::string>();
      t.special = get_bool(a, "special", false);
      t.lstrip = get_bool(a, "lstrip", false);
      t.rstrip = get_bool(a, "rstrip", false);
      t.single_word = get_bool(a, "single_word", false);
      t.normalized = get_bool(a, "normalized", !t.special);
      if (t.content.empty()) return err("added token " + std::to_string(t.id) + " has empty content");
      if (t.id > 0x7FFFFFFF) return err("added token '" + t.content + "' has an id out of range");
      max_id = std::max(max_id, t.id);
      tok->added_tokens.push_back(std::move(t));
    }
  }
  if (vocab.empty() && tok->added_tokens.empty()) return err("empty vocabulary");

  tok->vocab.assign(static_cast<size_t>(max_id) + 1, std::string());
  std::vector<uint8_t> seen(tok->vocab.size(), 0);
  for (const auto& [str, id] : *ids) {
    if (seen[id]) return err("model.vocab: id " + std::to_string(id) + " is used by two tokens");
    seen[id] = 1;
    tok->vocab[id] = unmap_bytes(str);
  }
  for (const AddedToken& t : tok->added_tokens) tok->vocab[t.id] = t.content;

  // merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs
  if (!m.contains("merges") || !m["merges"].is_array()) return err("model.merges is not a list");
  const json& merges = m["merges"];
  tok->merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& x = merges[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    std::string a, b;
    if (x.is_string()) {
      const std::string str = x.get<std::string>();
      const size_t sp = str.find(' ');
      if (sp == std::string::npos || str.find(' ', sp + 1) != std::string::npos) {
        return err(where + " '" + str + "' is not two tokens separated by a space");
      }
      a = str.substr(0, sp);
      b = str.substr(sp + 1);
    } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
      a = x[0].get<std::string>();
      b = x[1].get<std::string>();
    } else {
      return err(where + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = ids->find(a), ib = ids->find(b);
    if (ia == ids->end() || ib == ids->end()) {
      return err(where + ": '" + (ia == ids->end() ? a : b) + "' is not in the vocabulary");
    }
    if (ids->find(a + b) == ids->end()) return err(where + ": the merged token '" + a + b + "' is not in the vocabulary");
    tok->merges.emplace_back(ia->second, ib->second);
  }
  return Status::Ok();
}

// pre_tokenizer, decoder, post_processor.
Status read_pipeline(const json& j, TokenizerData* tok, PostInfo* post) {
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    return unsupported("no pre_tokenizer (only byte-level BPE with a ByteLevel pre-tokenizer is supported)");
  }
  CRIA_RETURN_IF_ERROR(add_pre_step(j["pre_tokenizer"], "pre_tokenizer", tok));
  if (std::none_of(tok->pre_tokenizer.begin(), tok->pre_tokenizer.end(),
                   [](const PreTokStep& s) { return s.kind == PreTokKind::kByteLevel; })) {
    return unsupported("pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)");
  }
  tok->pre_tokenizer_json = j["pre_tokenizer"].dump();
  if (j.contains("decoder")) CRIA_RETURN_IF_ERROR(check_decoder(j["decoder"]));
  if (j.contains("post_processor")) CRIA_RETURN_IF_ERROR(read_post_processor(j["post_processor"], post));
  return Status::Ok();
}

// tokenizer_config.json (optional): BOS/EOS/pad, add_bos, chat template.
Status read_config(const std::string& dir, const PostInfo& post, const Ids& ids, TokenizerData* tok,
                   ChatTemplateData* chat) {
  auto find_id = [&](const std::string& content) -> int32_t {
    if (content.empty()) return -1;
    for (const AddedToken& t : tok->added_tokens) {
      if (t.content == content) return static_cast<int32_t>(t.id);
    }
    auto it = ids.find(content);
    return it == ids.end() ? -1 : static_cast<int32_t>(it->second);
  };

  const std::string cpath = dir + "/tokenizer_config.json";
  json cfg = json::object();
  bool exists = false;
  Result<std::string> ctext = read_file(cpath, &exists);
  if (exists) {
    if (!ctext.ok()) return ctext.status();
    CRIA_ASSIGN_OR_RETURN(cfg, parse_json(cpath, ctext.value()));
  }
  const std::string bos = token_content(cfg, "bos_token");
  const std::string eos = token_content(cfg, "eos_token");
  tok->bos_id = find_id(bos);
  if (!bos.empty() && tok->bos_id < 0) return err(cpath + ": bos_token '" + bos + "' is not in the vocabulary");
  const int32_t eos_id = find_id(eos);
  if (!eos.empty() && eos_id < 0) return err(cpath + ": eos_token '" + eos + "' is not in the vocabulary");
  tok->pad_id = find_id(token_content(cfg, "pad_token"));

  // BOS: an explicit add_bos_token wins; else a TemplateProcessing that
  // prepends a token; else the Llama 3 family (recognised by its BOS text),
  // whose first tokenizer.json releases had a ByteLevel post-processor and
  // no BOS although the model is trained with one (Meta's reference
  // tokenizer and llama.cpp prepend <|begin_of_text|>).
  const int32_t llama3_bos = find_id("<|begin_of_text|>");
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    tok->add_bos = cfg["add_bos_token"].get<bool>();
  } else if (post.has_template) {
    tok->add_bos = !post.bos_content.empty();
    if (tok->add_bos && tok->bos_id < 0) tok->bos_id = post.bos_id >= 0 ? post.bos_id : find_id(post.bos_content);
  } else if (llama3_bos >= 0) {
    tok->add_bos = true;
    if (tok->bos_id < 0) tok->bos_id = llama3_bos;
  }
  if (tok->add_bos && tok->bos_id < 0) return err(cpath + ": add_bos_token is set but there is no bos_token");

  // EOS: the configured one, plus for the Llama 3 family every token that
  // ends a turn or the text (instruct models end turns with <|eot_id|>,
  // tool calls with <|eom_id|>).
  std::vector<uint32_t> eos_ids;
  if (eos_id >= 0) eos_ids.push_back(static_cast<uint32_t>(eos_id));
  if (llama3_bos >= 0) {
    for (const char* s : {"<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"}) {
      const int32_t id = find_id(s);
      if (id >= 0) eos_ids.push_back(static_cast<uint32_t>(id));
    }
  }
  std::sort(eos_ids.begin(), eos_ids.end());
  eos_ids.erase(std::unique(eos_ids.begin(), eos_ids.end()), eos_ids.end());
  tok->eos_ids = std::move(eos_ids);

  // Chat template: tokenizer_config.json, else chat_template.jinja /
  // chat_template.json beside it (newer transformers save it there).
  CRIA_ASSIGN_OR_RETURN(chat->jinja, chat_template_text(cfg, cpath));
  if (chat->jinja.empty()) {
    Result<std::string> t = read_file(dir + "/chat_template.jinja", &exists);
    if (exists && t.ok()) chat->jinja = t.value();
  }
  if (chat->jinja.empty()) {
    const std::string jpath = dir + "/chat_template.json";
    Result<std::string> t = read_file(jpath, &exists);
    if (exists && t.ok()) {
      CRIA_ASSIGN_OR_RETURN(json cj, parse_json(jpath, t.value()));
      CRIA_ASSIGN_OR_RETURN(chat->jinja, chat_template_text(cj, jpath));
    }
  }
  chat->kind = detect_chat_kind(chat->jinja);
  return Status::Ok();
}

}  // namespace

Status read_hf_tokenizer(const std::string& dir, TokenizerData* tok, ChatTemplateData* chat) {
  *tok = TokenizerData();
  *chat = ChatTemplateData();
  const std::string path = dir + "/tokenizer.json";
  bool exists = false;
  CRIA_ASSIGN_OR_RETURN(std::string text, read_file(path, &exists));
  Ids ids;
  PostInfo post;
  {
    CRIA_ASSIGN_OR_RETURN(json j, parse_json(path, text));
    text = std::string();  // the document and its text are large; free them early
    CRIA_RETURN_IF_ERROR(read_model(j, tok, &ids).with_prefix(path));
    CRIA_RETURN_IF_ERROR(read_pipeline(j, tok, &post).with_prefix(path));
  }
  return read_config(dir, post, ids, tok, chat);
}

}  // namespace cria
