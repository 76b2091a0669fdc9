#include "runtime/cli/term.h"

#include <unistd.h>

#include <cstdio>

namespace cria::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "cria: %s\n", message.c_str());
  return 1;
}

int usage_error(const std::string& message, const std::string& usage) {
  std::fprintf(stderr, "cria: %s\n%s", message.c_str(), usage.c_str());
  return 2;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label) : label_(std::move(label)), tty_(stderr_is_tty()) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(uint64_t done, uint64_t total, const std::string& what) {
  if (!tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double frac = total ? (double)done / (double)total : 1.0;
  const int width = 28;
  std::string bar(width, ' ');
  for (int i = 0; i < (int)(frac * width); ++i) bar[i] = '#';
  char buf[512];
  std::snprintf(buf, sizeof(buf), "\r%s [%s] %5.1f%% %s / %s %s/s %s", label_.c_str(), bar.c_str(), frac * 100,
                human_bytes((double)done).c_str(), human_bytes((double)total).c_str(),
                human_bytes(secs > 0 ? done / secs : 0).c_str(), what.c_str());
  std::string s = buf;
  if (s.size() > 140) s.resize(140);
  size_t w = s.size();
  if (w < last_width_) s.append(last_width_ - w, ' ');
  last_width_ = w;
  std::fputs(s.c_str(), stderr);
  std::fflush(stderr);
}

void Progress::line(const std::string& text) {
  if (tty_) return;
  std::fprintf(stderr, "%s %s\n", label_.c_str(), text.c_str());
}

void Progress::finish(const std::string& summary) {
  if (tty_ && last_width_) std::fputs("\n", stderr);
  std::fprintf(stderr, "%s\n", summary.c_str());
}

}  // namespace cria::cli
