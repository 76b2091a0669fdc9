// The MPI-free half of runtime/dist: option parsing, the layer split, the
// file identity ranks compare.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "runtime/dist/options.h"

namespace cria::dist {
namespace {

struct Argv {
  std::vector<std::string> s;
  std::vector<char*> p;
  explicit Argv(std::vector<std::string> v) : s(std::move(v)) {
    for (auto& x : s) p.push_back(x.data());
    p.push_back(nullptr);
  }
  int argc() const { return (int)s.size(); }
};

TEST_CASE("take_options removes the distributed options and reads what a worker needs") {
  Argv a({"cria", "run", "-m", "x.cria", "--split", "layers", "-p", "hi", "--layer-split=3,1", "-t", "2",
          "--dist-timeout", "5", "--backend", "cpu", "--micro-batch", "48"});
  int argc = a.argc();
  Options o;
  REQUIRE(take_options(&argc, a.p.data(), &o).ok());
  std::vector<std::string> left(a.p.begin(), a.p.begin() + argc);
  CHECK(left == std::vector<std::string>{"cria", "run", "-m", "x.cria", "-p", "hi", "-t", "2", "--backend", "cpu"});
  CHECK(a.p[argc] == nullptr);
  CHECK(o.split == "layers");
  CHECK(o.layer_split == std::vector<int64_t>{3, 1});
  CHECK(o.timeout_s == 5);
  CHECK(o.micro_batch == 48);
  CHECK(o.model_path == "x.cria");
  CHECK(o.threads == 2);
  CHECK(o.backend == "cpu");
}

TEST_CASE("take_options names a bad value") {
  for (const char* bad : {"--split=rows", "--layer-split=3,,1", "--layer-split=-1,5", "--dist-timeout=0",
                          "--micro-batch=-1", "--micro-batch=8x"}) {
    Argv a({"cria", "run", bad});
    int argc = a.argc();
    Options o;
    const Status st = take_options(&argc, a.p.data(), &o);
    CHECK_FALSE(st.ok());
    const std::string opt = std::string(bad).substr(0, std::string(bad).find('='));
    CHECK_MESSAGE(st.message().find(opt) != std::string::npos, st.message());
  }
  Argv none({"cria", "run", "-m", "x"});
  CHECK_FALSE(has_dist_options(none.argc(), none.p.data()));
  Argv some({"cria", "run", "--layer-split", "1,1"});
  CHECK(has_dist_options(some.argc(), some.p.data()));
}

TEST_CASE("layer_ranges: even split with the remainder first, explicit counts checked") {
  using R = std::vector<std::pair<int64_t, int64_t>>;
  auto ranges = [](int64_t n, int ranks, std::vector<int64_t> split) {
    auto r = layer_ranges(n, ranks, split);
    REQUIRE(r.ok());
    return std::move(r).value();
  };
  CHECK(ranges(16, 2, {}) == R{{0, 8}, {8, 16}});
  CHECK(ranges(10, 3, {}) == R{{0, 4}, {4, 7}, {7, 10}});
  CHECK(ranges(80, 1, {}) == R{{0, 80}});
  CHECK(ranges(16, 2, {10, 6}) == R{{0, 10}, {10, 16}});
  CHECK(ranges(4, 3, {1, 2, 1}) == R{{0, 1}, {1, 3}, {3, 4}});
  CHECK_FALSE(layer_ranges(4, 3, {0, 3, 1}).ok());     // a rank without layers
  CHECK_FALSE(layer_ranges(16, 2, {10, 5}).ok());     // does not add up
  CHECK_FALSE(layer_ranges(16, 3, {10, 6}).ok());     // wrong rank count
  CHECK_FALSE(layer_ranges(2, 3, {}).ok());           // more ranks than layers
}

TEST_CASE("layer_ranges_by_memory: even for boards alike, in proportion to room otherwise") {
  using R = std::vector<std::pair<int64_t, int64_t>>;
  constexpr int64_t G = 1ll << 30;
  auto ranges = [](int64_t n, int64_t head, std::vector<int64_t> mem) {
    auto r = layer_ranges_by_memory(n, head, mem);
    REQUIRE(r.ok());
    return std::move(r).value();
  };
  // Within 10%: the even split (remainder first), as layer_ranges.
  CHECK(ranges(3, 0, {10 * G, 10 * G + 1}) == R{{0, 2}, {2, 3}});
  CHECK(ranges(80, G, {60 * G, 64 * G}) == R{{0, 40}, {40, 80}});
  // A 64 GB Orin and an 8 GB Pi 5: 72 GB of room, the Orin's share 8/9.
  CHECK(ranges(80, 0, {64 * G, 8 * G}) == R{{0, 71}, {71, 80}});
  // The last rank runs the head: its room shrinks by it (40 vs 30 - 10).
  CHECK(ranges(10, 10 * G, {40 * G, 30 * G}) == R{{0, 7}, {7, 10}});
  CHECK(ranges(10, 0, {40 * G, 30 * G}) == R{{0, 6}, {6, 10}});
  CHECK(ranges(80, 0, {64 * G, 32 * G, 16 * G, 8 * G}) == R{{0, 43}, {43, 64}, {64, 75}, {75, 80}});
  // Every rank keeps at least one layer, even one with no room left.
  CHECK(ranges(4, 0, {100 * G, G, G}) == R{{0, 2}, {2, 3}, {3, 4}});
  CHECK(ranges(4, 8 * G, {100 * G, 100 * G, G}) == R{{0, 2}, {2, 3}, {3, 4}});
  // Unknown memory (0) or more ranks than layers: the even split's rules.
  CHECK(ranges(16, 0, {0, 8 * G}) == R{{0, 8}, {8, 16}});
  CHECK_FALSE(layer_ranges_by_memory(2, 0, {G, 2 * G, 3 * G}).ok());
}

TEST_CASE("memory_to_offer reads CRIA_MEM_AVAILABLE and names a bad value") {
  setenv("CRIA_MEM_AVAILABLE", "8G", 1);
  CHECK(memory_to_offer().value() == (8ll << 30));
  setenv("CRIA_MEM_AVAILABLE", "512MB", 1);
  CHECK(memory_to_offer().value() == (512ll << 20));
  setenv("CRIA_MEM_AVAILABLE", "1.5g", 1);
  CHECK(memory_to_offer().value() == (3ll << 29));
  setenv("CRIA_MEM_AVAILABLE", "123456", 1);
  CHECK(memory_to_offer().value() == 123456);
  for (const char* bad : {"", "lots", "8X", "-1G", "8GiB", "0"}) {
    setenv("CRIA_MEM_AVAILABLE", bad, 1);
    auto r = memory_to_offer();
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("CRIA_MEM_AVAILABLE") != std::string::npos);
  }
  unsetenv("CRIA_MEM_AVAILABLE");
  CHECK(memory_to_offer().ok());
}

}  // namespace
}  // namespace cria::dist
