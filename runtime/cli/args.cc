#include "runtime/cli/args.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace cria::cli {

void Args::flag(const char* name, bool* out, const char* help) { opts_.push_back({name, "", help, Kind::kFlag, out}); }
void Args::str(const char* name, std::string* out, const char* meta, const char* help) {
  opts_.push_back({name, meta, help, Kind::kStr, out});
}
void Args::i64(const char* name, int64_t* out, const char* meta, const char* help) {
  opts_.push_back({name, meta, help, Kind::kI64, out});
}
void Args::f64(const char* name, double* out, const char* meta, const char* help) {
  opts_.push_back({name, meta, help, Kind::kF64, out});
}
void Args::list(const char* name, std::vector<std::string>* out, const char* meta, const char* help) {
  opts_.push_back({name, meta, help, Kind::kList, out});
}
void Args::alias(const char* s, const char* l) { aliases_.emplace_back(s, l); }
void Args::positional(const char* meta, std::string* out, bool required) { pos_.push_back({meta, out, required}); }

Args::Opt* Args::find(const std::string& name) {
  std::string n = name;
  for (auto& [s, l] : aliases_)
    if (s == n) n = l;
  for (Opt& o : opts_)
    if (o.name == n) return &o;
  return nullptr;
}

bool Args::given(const char* name) const {
  for (const Opt& o : opts_)
    if (o.name == name) return o.given;
  return false;
}

bool Args::parse(int argc, char** argv) {
  size_t npos = 0;
  bool only_pos = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (!only_pos && a == "--") {
      only_pos = true;
      continue;
    }
    if (!only_pos && (a == "--help" || a == "-h")) {
      help_ = true;
      return true;
    }
    if (!only_pos && a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit((unsigned char)a[1]) || a[1] == '.'))) {
      std::string value;
      bool has_value = false;
      if (size_t eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
      Opt* o = find(a);
      if (!o) {
        error_ = "unknown option " + a;
        return false;
      }
      o->given = true;
      if (o->kind == Kind::kFlag) {
        if (has_value) {
          error_ = a + " takes no value";
          return false;
        }
        *static_cast<bool*>(o->out) = true;
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) {
          error_ = a + " needs a value (" + o->meta + ")";
          return false;
        }
        value = argv[++i];
      }
      char* end = nullptr;
      errno = 0;
      switch (o->kind) {
        case Kind::kStr: *static_cast<std::string*>(o->out) = value; break;
        case Kind::kList: static_cast<std::vector<std::string>*>(o->out)->push_back(value); break;
        case Kind::kI64: {
          long long v = std::strtoll(value.c_str(), &end, 10);
          if (value.empty() || *end || errno) {
            error_ = a + " expects an integer, got '" + value + "'";
            return false;
          }
          *static_cast<int64_t*>(o->out) = v;
          break;
        }
        case Kind::kF64: {
          double v = std::strtod(value.c_str(), &end);
          if (value.empty() || *end || errno || !std::isfinite(v)) {
            error_ = a + " expects a number, got '" + value + "'";
            return false;
          }
          *static_cast<double*>(o->out) = v;
          break;
        }
        case Kind::kFlag: break;
      }
      continue;
    }
    if (npos >= pos_.size()) {
      error_ = "unexpected argument '" + a + "'";
      return false;
    }
    *pos_[npos++].out = a;
  }
  for (size_t p = npos; p < pos_.size(); ++p) {
    if (pos_[p].required) {
      error_ = "missing " + pos_[p].meta;
      return false;
    }
  }
  return true;
}

std::string Args::usage() const {
  std::string u = "usage: cria " + command_ + " " + synopsis_ + "\n";
  for (const Opt& o : opts_) {
    std::string left = "  " + o.name;
    for (auto& [s, l] : aliases_)
      if (l == o.name) left = "  " + s + ", " + o.name;
    if (!o.meta.empty()) left += " " + o.meta;
    if (left.size() < 30) left.resize(30, ' ');
    else left += "  ";
    u += left + o.help + "\n";
  }
  return u;
}

}  // namespace cria::cli
