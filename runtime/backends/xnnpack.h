#pragma once

#include <memory>

#include "runtime/backends/backend.h"

namespace cria::backends {

// Fails when XNNPACK cannot start on this CPU.
Result<std::unique_ptr<Backend>> make_xnnpack_backend();

}  // namespace cria::backends
