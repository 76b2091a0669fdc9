#pragma once

#include <memory>

#include "runtime/backends/backend.h"

namespace cria::backends {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace cria::backends
