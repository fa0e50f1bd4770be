// executor_runner for effvit-deploy: loads a .pte with the standalone ExecuTorch runtime that the executorch wheel
// ships (executorch/lib, XNNPACK backend linked), runs `forward` and logs like upstream's
// examples/portable/executor_runner (same flags, same "Model executed successfully" line), plus what the harness
// records: every iteration's time, the load time, the memory-planned buffers and the peak RSS (VmHWM).
//
//   executor_runner --model_path=m.pte --num_executions=60 --cpu_threads=1
//   executor_runner --model_path=m.pte --num_executions=60 --warmup_executions=10 --min_secs=5 --max_secs=60
//   executor_runner --model_path=m.pte --num_executions=1 --cpu_threads=1 --inputs=x.bin --output_file=y.bin
//
// --inputs: raw little-endian float32 values of input 0 (converted to the input's dtype); without it every input is
// all ones, as upstream. --output_file: output 0 as raw float32 (written whole, then renamed).
// Our stop rule (not upstream's): the first --warmup_executions (default 0) of the --num_executions are warm-up;
// the timed ones after them continue until --num_executions in all AND --min_secs of timed runs, and stop at
// --max_secs of timed runs (at least one). `Iteration i of N` then names N = --num_executions, the minimum.
// Printed beside upstream's lines (the harness's parser reads them; keep them stable):
//   Planned memory: <bytes> bytes in <k> buffer(s)      sum of MethodMeta::memory_planned_buffer_size(i)
//   Timed runs: begin / Timed runs: end, <k> runs in <ms> ms   around the timed executions (flushed at once)
//   Peak RSS: <kB> KB (VmHWM)                            /proc/self/status VmHWM (ru_maxrss where it is absent)
// Exit codes: 0 ok, 1 the runtime failed (load, execute), 2 bad arguments.
#include <executorch/extension/data_loader/file_data_loader.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/executor/method.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

#include <cstdarg>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runner_util.h"

// The wheel ships the threadpool library but not its header: declare the two calls used (upstream signatures).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace {

using executorch::aten::ScalarType;
using executorch::extension::FileDataLoader;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::HierarchicalAllocator;
using executorch::runtime::MemoryAllocator;
using executorch::runtime::MemoryManager;
using executorch::runtime::Method;
using executorch::runtime::Program;
using executorch::runtime::Span;

const double kStart = effvit::now_ms();
constexpr size_t kMethodPoolBytes = 4u << 20;  // method metadata + non-planned values (upstream uses 4 MiB)
constexpr size_t kTempPoolBytes = 1u << 20;

// Upstream's log line shape: `I 00:00:01.234 executorch:executor_runner.cpp:LINE] message`.
#define LOG_I(...) log_line('I', __LINE__, __VA_ARGS__)
#define LOG_E(...) log_line('E', __LINE__, __VA_ARGS__)

void log_line(char level, int line, const char* fmt, ...) {
  const long ms = static_cast<long>(effvit::now_ms() - kStart);
  std::fprintf(level == 'E' ? stderr : stdout, "%c %02ld:%02ld:%02ld.%03ld executorch:executor_runner.cpp:%d] ", level,
               ms / 3600000, (ms / 60000) % 60, (ms / 1000) % 60, ms % 1000, line);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(level == 'E' ? stderr : stdout, fmt, args);
  va_end(args);
  std::fputc('\n', level == 'E' ? stderr : stdout);
}

size_t element_size(ScalarType t) {
  switch (t) {
    case ScalarType::Float:
    case ScalarType::Int:
      return 4;
    case ScalarType::Half:
    case ScalarType::Short:
      return 2;
    case ScalarType::Long:
    case ScalarType::Double:
      return 8;
    default:
      return 1;
  }
}

// Input bytes for tensor `t`: all ones (upstream's default) or the float32 file converted to the tensor's dtype.
bool fill_input(ScalarType t, size_t count, const std::vector<float>* values, std::vector<uint8_t>* out) {
  out->assign(count * element_size(t), 0);
  for (size_t i = 0; i < count; ++i) {
    const float v = values ? (*values)[i] : 1.0f;
    switch (t) {
      case ScalarType::Float:
        reinterpret_cast<float*>(out->data())[i] = v;
        break;
      case ScalarType::Half:
        reinterpret_cast<uint16_t*>(out->data())[i] = effvit::float_to_half(v);
        break;
      case ScalarType::Int:
        reinterpret_cast<int32_t*>(out->data())[i] = static_cast<int32_t>(v);
        break;
      case ScalarType::Long:
        reinterpret_cast<int64_t*>(out->data())[i] = static_cast<int64_t>(v);
        break;
      case ScalarType::Char:
        reinterpret_cast<int8_t*>(out->data())[i] = static_cast<int8_t>(v);
        break;
      case ScalarType::Byte:
      case ScalarType::Bool:
        out->data()[i] = static_cast<uint8_t>(v);
        break;
      default:
        return false;
    }
  }
  return true;
}

// Output 0 as float32 (float and half tensors; anything else is reported as unsupported).
bool output_as_float(const executorch::aten::Tensor& t, std::vector<float>* out) {
  const size_t n = static_cast<size_t>(t.numel());
  out->resize(n);
  if (t.scalar_type() == ScalarType::Float) {
    const float* p = t.const_data_ptr<float>();
    out->assign(p, p + n);
    return true;
  }
  if (t.scalar_type() == ScalarType::Half) {
    const uint16_t* p = static_cast<const uint16_t*>(t.const_data_ptr());
    for (size_t i = 0; i < n; ++i) (*out)[i] = effvit::half_to_float(p[i]);
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  effvit::Flags flags(argc, argv, {});
  const std::string model_path = flags.str("model_path", "model.pte");
  const std::string method_name = flags.str("method_name", "forward");
  long num_executions = 1, cpu_threads = -1, warmup_executions = 0;
  if (!flags.integer("num_executions", 1, &num_executions) || !flags.integer("cpu_threads", -1, &cpu_threads) ||
      !flags.integer("warmup_executions", 0, &warmup_executions))
    return 2;
  if (num_executions < 1) {
    std::fprintf(stderr, "error: --num_executions must be >= 1\n");
    return 2;
  }
  if (warmup_executions < 0 || warmup_executions >= num_executions) {
    std::fprintf(stderr, "error: --warmup_executions must be >= 0 and below --num_executions\n");
    return 2;
  }
  effvit::StopRule rule;
  rule.min_runs = num_executions - warmup_executions;
  if ((flags.has("min_secs") && !effvit::seconds("min_secs", flags.str("min_secs"), &rule.min_secs)) ||
      (flags.has("max_secs") && !effvit::seconds("max_secs", flags.str("max_secs"), &rule.max_secs)))
    return 2;
  for (const auto& name : flags.names()) {
    static const std::vector<std::string> known = {"model_path",  "method_name", "num_executions",
                                                   "cpu_threads", "inputs",      "output_file",
                                                   "warmup_executions", "min_secs", "max_secs"};
    bool ok = false;
    for (const auto& k : known) ok = ok || k == name;
    if (!ok) {
      std::fprintf(stderr, "error: unknown flag --%s\n", name.c_str());
      return 2;
    }
  }
  executorch::runtime::runtime_init();

  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (cpu_threads > 0 && pool != nullptr) {
    LOG_I("Resetting threadpool with num threads = %ld", cpu_threads);
    pool->_unsafe_reset_threadpool(static_cast<uint32_t>(cpu_threads));
  }

  const double load_start = effvit::now_ms();
  auto loader = FileDataLoader::from(model_path.c_str());
  if (!loader.ok()) {
    LOG_E("FileDataLoader::from() failed for %s: 0x%x", model_path.c_str(), static_cast<unsigned>(loader.error()));
    return 1;
  }
  auto program = Program::load(&loader.get(), Program::Verification::Minimal);
  if (!program.ok()) {
    LOG_E("Failed to parse model file %s: 0x%x", model_path.c_str(), static_cast<unsigned>(program.error()));
    return 1;
  }
  LOG_I("Model file %s is loaded.", model_path.c_str());
  auto meta = program->method_meta(method_name.c_str());
  if (!meta.ok()) {
    LOG_E("Failed to get method_meta for %s: 0x%x", method_name.c_str(), static_cast<unsigned>(meta.error()));
    return 1;
  }
  // Memory-planned buffers, sized by the program (what upstream's runner does).
  std::vector<std::unique_ptr<uint8_t[]>> planned;
  std::vector<Span<uint8_t>> spans;
  size_t planned_bytes = 0;
  for (size_t id = 0; id < meta->num_memory_planned_buffers(); ++id) {
    const size_t size = static_cast<size_t>(meta->memory_planned_buffer_size(id).get());
    planned.emplace_back(new uint8_t[size]);
    spans.emplace_back(planned.back().get(), size);
    planned_bytes += size;
  }
  LOG_I("Planned memory: %zu bytes in %zu buffer(s)", planned_bytes, spans.size());
  HierarchicalAllocator planned_memory({spans.data(), spans.size()});
  std::vector<uint8_t> method_pool(kMethodPoolBytes), temp_pool(kTempPoolBytes);
  MemoryAllocator method_allocator(static_cast<uint32_t>(method_pool.size()), method_pool.data());
  MemoryAllocator temp_allocator(static_cast<uint32_t>(temp_pool.size()), temp_pool.data());
  MemoryManager memory_manager(&method_allocator, &planned_memory, &temp_allocator);
  auto method = program->load_method(method_name.c_str(), &memory_manager);
  if (!method.ok()) {
    LOG_E("Loading of method %s failed with status 0x%x", method_name.c_str(), static_cast<unsigned>(method.error()));
    return 1;
  }
  LOG_I("Method loaded.");

  std::vector<float> file_values;
  const bool from_file = flags.has("inputs");
  if (from_file) {
    std::vector<char> bytes;
    const std::string path = flags.str("inputs");
    if (path.find(',') != std::string::npos) {
      std::fprintf(stderr, "error: --inputs takes one file here (the model has one input)\n");
      return 2;
    }
    if (!effvit::read_file(path, &bytes)) {
      std::fprintf(stderr, "error: cannot read --inputs file %s\n", path.c_str());
      return 2;
    }
    file_values.resize(bytes.size() / sizeof(float));
    std::memcpy(file_values.data(), bytes.data(), file_values.size() * sizeof(float));
  }
  std::vector<std::vector<uint8_t>> input_bytes(meta->num_inputs());
  std::vector<executorch::extension::TensorPtr> inputs;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto info = meta->input_tensor_meta(i);
    if (!info.ok()) {
      LOG_E("Input %zu is not a tensor", i);
      return 1;
    }
    std::vector<int32_t> sizes(info->sizes().begin(), info->sizes().end());
    size_t count = 1;
    for (int32_t s : sizes) count *= static_cast<size_t>(s);
    if (from_file && i == 0 && file_values.size() != count) {
      std::fprintf(stderr, "error: --inputs file has %zu float32 values, input 0 needs %zu\n", file_values.size(),
                   count);
      return 2;
    }
    if (!fill_input(info->scalar_type(), count, (from_file && i == 0) ? &file_values : nullptr, &input_bytes[i])) {
      LOG_E("Input %zu has an unsupported dtype %d", i, static_cast<int>(info->scalar_type()));
      return 1;
    }
    inputs.push_back(executorch::extension::make_tensor_ptr(sizes, input_bytes[i].data(), info->scalar_type()));
    const Error set = method->set_input(EValue(*inputs.back()), i);
    if (set != Error::Ok) {
      LOG_E("set_input %zu failed: 0x%x", i, static_cast<unsigned>(set));
      return 1;
    }
  }
  LOG_I("Model loaded in %.3f ms.", effvit::now_ms() - load_start);
  if (pool != nullptr) LOG_I("Threadpool threads = %zu", pool->get_thread_count());

  double total = 0.0, timed_start = 0.0;
  long executed = 0;
  for (long i = 1;; ++i) {
    if (i == warmup_executions + 1) {
      effvit::timed_begin();
      timed_start = effvit::now_ms();
    }
    if (i > warmup_executions &&
        rule.done(i - 1 - warmup_executions, (effvit::now_ms() - timed_start) / 1000.0))
      break;
    const double t0 = effvit::now_ms();
    const Error status = method->execute();
    const double dt = effvit::now_ms() - t0;
    if (status != Error::Ok) {
      LOG_E("Execution of method %s failed with status 0x%x", method_name.c_str(), static_cast<unsigned>(status));
      return 1;
    }
    total += dt;
    executed = i;
    LOG_I("Iteration %ld of %ld: %.4f ms", i, num_executions, dt);
  }
  effvit::timed_end(executed - warmup_executions, effvit::now_ms() - timed_start);
  LOG_I("Model executed successfully %ld time(s) in %.4f ms.", executed, total);
  const long hwm = effvit::vm_hwm_kb();
  LOG_I("Peak RSS: %ld KB (%s)", hwm > 0 ? hwm : effvit::peak_rss_kb(), hwm > 0 ? "VmHWM" : "ru_maxrss");

  const EValue& out = method->get_output(0);
  if (!out.isTensor()) {
    LOG_E("Output 0 is not a tensor");
    return 1;
  }
  const auto& tensor = out.toTensor();
  LOG_I("%zu outputs: output 0 has %zd values, dtype %d", method->outputs_size(), static_cast<ssize_t>(tensor.numel()),
        static_cast<int>(tensor.scalar_type()));
  if (flags.has("output_file")) {
    std::vector<float> values;
    if (!output_as_float(tensor, &values)) {
      LOG_E("Output 0 has dtype %d; only float and half outputs can be written", static_cast<int>(tensor.scalar_type()));
      return 1;
    }
    if (!effvit::write_file(flags.str("output_file"), values.data(), values.size() * sizeof(float))) {
      LOG_E("Cannot write --output_file %s", flags.str("output_file").c_str());
      return 1;
    }
    LOG_I("Wrote output 0 to %s", flags.str("output_file").c_str());
  }
  return 0;
}
