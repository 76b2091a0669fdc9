#include "runtime/engine/pipeline.h"

namespace cria {

namespace {
LayerPipeline* g_pipeline = nullptr;
}  // namespace

LayerPipeline* process_pipeline() { return g_pipeline; }
void set_process_pipeline(LayerPipeline* p) { g_pipeline = p; }

}  // namespace cria
