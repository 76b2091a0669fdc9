#include "formats/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "quant/fp16.h"

namespace cria {

using json = nlohmann::json;

namespace {

// Element sizes of every dtype the safetensors spec defines.
bool st_dtype_size(const std::string& d, uint64_t* size, StDType* kind) {
  static const std::pair<const char*, uint64_t> kTypes[] = {
      {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},  {"U32", 4},     {"F32", 4},
      {"F64", 8},  {"I64", 8}, {"U64", 8}};
  for (auto& [name, sz] : kTypes) {
    if (d == name) {
      *size = sz;
      *kind = d == "F32" ? StDType::kF32 : d == "F16" ? StDType::kF16 : d == "BF16" ? StDType::kBF16 : StDType::kOther;
      return true;
    }
  }
  return false;
}

bool get_u64(const json& j, uint64_t* out) {
  if (!j.is_number_unsigned()) {
    if (j.is_number_integer() && j.get<int64_t>() >= 0) {
      *out = (uint64_t)j.get<int64_t>();
      return true;
    }
    return false;
  }
  *out = j.get<uint64_t>();
  return true;
}

}  // namespace

Status pread_exact(int fd, void* buf, uint64_t n, uint64_t offset, const std::string& path) {
  uint8_t* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, std::min<uint64_t>(n, 1ull << 30), (off_t)offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error(Code::kIo, path + ": read failed: " + std::strerror(errno));
    }
    if (r == 0) return Error(Code::kCorrupt, path + ": unexpected end of file");
    p += r;
    n -= (uint64_t)r;
    offset += (uint64_t)r;
  }
  return Status::Ok();
}

Status parse_safetensors_header(const char* header, size_t header_len, uint64_t data_size,
                                const std::string& file_name, std::vector<StTensor>* out) {
  auto bad = [&](const std::string& m) { return Error(Code::kCorrupt, file_name + ": " + m); };
  json j = json::parse(header, header + header_len, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("malformed safetensors header (not valid JSON)");
  if (!j.is_object()) return bad("malformed safetensors header (not a JSON object)");
  std::vector<StTensor> ts;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const json& v = it.value();
    const std::string& name = it.key();
    if (!v.is_object()) return bad("tensor " + name + ": entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto of = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("tensor " + name + ": missing dtype");
    if (sh == v.end() || !sh->is_array()) return bad("tensor " + name + ": missing shape");
    if (of == v.end() || !of->is_array() || of->size() != 2) return bad("tensor " + name + ": missing data_offsets");
    StTensor t;
    t.name = name;
    t.dtype_name = dt->get<std::string>();
    uint64_t esize;
    if (!st_dtype_size(t.dtype_name, &esize, &t.dtype))
      return bad("tensor " + name + ": unknown dtype " + t.dtype_name);
    uint64_t numel = 1;
    for (const json& d : *sh) {
      uint64_t x;
      if (!get_u64(d, &x)) return bad("tensor " + name + ": bad shape");
      if (x != 0 && numel > (UINT64_MAX / 16) / x) return bad("tensor " + name + ": shape overflows");
      numel *= x;
      t.shape.push_back(x);
    }
    if (!get_u64((*of)[0], &t.begin) || !get_u64((*of)[1], &t.end) || t.end < t.begin)
      return bad("tensor " + name + ": bad data_offsets");
    if (t.end > data_size)
      return bad("tensor " + name + ": data_offsets [" + std::to_string(t.begin) + ", " +
                 std::to_string(t.end) + ") out of range (data is " + std::to_string(data_size) + " bytes)");
    if (t.end - t.begin != numel * esize)
      return bad("tensor " + name + ": " + std::to_string(t.end - t.begin) + " bytes for shape of " +
                 std::to_string(numel) + " " + t.dtype_name + " elements");
    ts.push_back(std::move(t));
  }
  // Overlapping data would let two tensors alias each other's bytes.
  std::vector<const StTensor*> by_off;
  for (const StTensor& t : ts)
    if (t.end > t.begin) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end)
      return bad("tensors " + by_off[i - 1]->name + " and " + by_off[i]->name + " overlap");
  *out = std::move(ts);
  return Status::Ok();
}

SafetensorsSet::~SafetensorsSet() {
  for (int fd : fds_) ::close(fd);
}

Status SafetensorsSet::add_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(errno == ENOENT ? Code::kNotFound : Code::kIo, path + ": " + std::strerror(errno));
  fds_.push_back(fd);
  paths_.push_back(path);
  struct stat st;
  if (fstat(fd, &st) != 0) return Error(Code::kIo, path + ": " + std::strerror(errno));
  const uint64_t fsize = (uint64_t)st.st_size;
  uint64_t hlen = 0;
  if (fsize < 8) return Error(Code::kCorrupt, path + ": too short for a safetensors file");
  CRIA_RETURN_IF_ERROR(pread_exact(fd, &hlen, 8, 0, path));
  if (hlen > fsize - 8)
    return Error(Code::kCorrupt, path + ": header length " + std::to_string(hlen) +
                                     " points past the end of the file (" + std::to_string(fsize) + " bytes)");
  if (hlen > (100ull << 20)) return Error(Code::kCorrupt, path + ": header length " + std::to_string(hlen) + " is implausible");
  std::string header(hlen, '\0');
  CRIA_RETURN_IF_ERROR(pread_exact(fd, header.data(), hlen, 8, path));
  std::vector<StTensor> ts;
  CRIA_RETURN_IF_ERROR(parse_safetensors_header(header.data(), header.size(), fsize - 8 - hlen, path, &ts));
  for (StTensor& t : ts) {
    t.begin += 8 + hlen;
    t.end += 8 + hlen;
    t.file = paths_.size() - 1;
    if (index_.count(t.name)) return Error(Code::kCorrupt, path + ": tensor " + t.name + " appears in two files");
    index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  return Status::Ok();
}

Result<std::unique_ptr<SafetensorsSet>> SafetensorsSet::open_file(const std::string& path) {
  std::unique_ptr<SafetensorsSet> s(new SafetensorsSet());
  CRIA_RETURN_IF_ERROR(s->add_file(path));
  return s;
}

Result<std::unique_ptr<SafetensorsSet>> SafetensorsSet::open_dir(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  struct stat st;
  if (::stat(single.c_str(), &st) == 0) return open_file(single);
  if (::stat(index.c_str(), &st) != 0)
    return Error(Code::kNotFound, dir + ": no model.safetensors or model.safetensors.index.json");
  std::unique_ptr<SafetensorsSet> s(new SafetensorsSet());
  int fd = ::open(index.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(Code::kIo, index + ": " + std::strerror(errno));
  std::string text((size_t)st.st_size, '\0');
  Status rs = pread_exact(fd, text.data(), text.size(), 0, index);
  ::close(fd);
  CRIA_RETURN_IF_ERROR(rs);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(Code::kCorrupt, index + ": not valid JSON");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return Error(Code::kCorrupt, index + ": no weight_map");
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) return Error(Code::kCorrupt, index + ": weight_map entry " + it.key() + " is not a file name");
    const std::string f = it.value().get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "..")
      return Error(Code::kCorrupt, index + ": bad shard name " + f);
    shards.insert(f);
  }
  if (shards.empty()) return Error(Code::kCorrupt, index + ": weight_map is empty");
  for (const std::string& f : shards) CRIA_RETURN_IF_ERROR(s->add_file(dir + "/" + f));
  // Every tensor the index names must be in the shard it names.
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const StTensor* t = s->find(it.key());
    if (!t || s->paths_[t->file] != dir + "/" + it.value().get<std::string>())
      return Error(Code::kCorrupt, index + ": tensor " + it.key() + " is not in " + it.value().get<std::string>());
  }
  return s;
}

const StTensor* SafetensorsSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

uint64_t SafetensorsSet::total_bytes() const {
  uint64_t n = 0;
  for (const StTensor& t : tensors_) n += t.end - t.begin;
  return n;
}

void SafetensorsSet::prefetch(const StTensor& t, uint64_t first, uint64_t count) const {
  const uint64_t esize = t.dtype == StDType::kF32 ? 4 : 2;
  if ((first + count) * esize > t.end - t.begin) return;
  ::posix_fadvise(fds_[t.file], (off_t)(t.begin + first * esize), (off_t)(count * esize), POSIX_FADV_WILLNEED);
}

Status SafetensorsSet::read_f32(const StTensor& t, uint64_t first, uint64_t count, float* out) const {
  const std::string& path = paths_[t.file];
  const uint64_t esize = t.dtype == StDType::kF32 ? 4 : 2;
  if (t.dtype == StDType::kOther)
    return Error(Code::kUnsupported, path + ": tensor " + t.name + " has dtype " + t.dtype_name +
                                         "; supported: F32, F16, BF16");
  if ((first + count) * esize > t.end - t.begin)
    return Error(Code::kInternal, path + ": read past tensor " + t.name);
  const uint64_t off = t.begin + first * esize;
  if (t.dtype == StDType::kF32) return pread_exact(fds_[t.file], out, count * 4, off, path);
  scratch_.resize(count * 2);
  CRIA_RETURN_IF_ERROR(pread_exact(fds_[t.file], scratch_.data(), count * 2, off, path));
  const uint16_t* h = reinterpret_cast<const uint16_t*>(scratch_.data());
  if (t.dtype == StDType::kF16) {
    for (uint64_t i = 0; i < count; ++i) out[i] = fp16_to_f32(h[i]);
  } else {
    for (uint64_t i = 0; i < count; ++i) out[i] = bf16_to_f32(h[i]);
  }
  return Status::Ok();
}

}  // namespace cria
