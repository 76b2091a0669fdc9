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
          "--dist-timeout", "5", "--backend", "cpu"});
  int argc = a.argc();
  Options o;
  REQUIRE(take_options(&argc, a.p.data(), &o).ok());
  std::vector<std::string> left(a.p.begin(), a.p.begin() + argc);
  CHECK(left == std::vector<std::string>{"cria", "run", "-m", "x.cria", "-p", "hi", "-t", "2", "--backend", "cpu"});
  CHECK(a.p[argc] == nullptr);
  CHECK(o.split == "layers");
  CHECK(o.layer_split == std::vector<int64_t>{3, 1});
  CHECK(o.timeout_s == 5);
  CHECK(o.model_path == "x.cria");
  CHECK(o.threads == 2);
  CHECK(o.backend == "cpu");
}

TEST_CASE("take_options names a bad value") {
  for (const char* bad : {"--split=rows", "--layer-split=3,,1", "--layer-split=-1,5", "--dist-timeout=0"}) {
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

}  // namespace
}  // namespace cria::dist
