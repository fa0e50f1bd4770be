// benchmark_model for effvit-deploy on the stable TFLite C API (the aarch64 folder's TFLite runner): loads a .tflite
// with LiteRT's libLiteRtRuntimeCApi.so (ai-edge-litert wheel), optionally applies the XNNPACK delegate, and prints
// upstream benchmark_model's lines (the harness's parser reads them), with upstream's flags:
//
//   benchmark_model --graph=m.tflite --num_threads=1 --warmup_runs=2 --num_runs=10 --warmup_min_secs=0
//                   --min_secs=0 --max_secs=60 --report_peak_memory_footprint=true [--use_xnnpack=true|false]
//                   [--xnnpack_force_fp16=true] [--input_layer=NAME --input_layer_shape=1,3,224,224
//                   --input_layer_value_files=NAME:FILE] [--output_filepath=FILE]
//
// Stop rule (upstream's): at least --num_runs runs AND --min_secs seconds, never past --max_secs (at least one run);
// the warm-up likewise with --warmup_runs / --warmup_min_secs. --input_layer_value_files: the raw bytes of the
// input tensor (upstream); --output_filepath: the raw bytes of every output tensor, concatenated (upstream).
// Ours beside upstream's lines: `XNNPACK delegate flags: 0x..` (read back from the delegate) and `Peak RSS: N KB
// (VmHWM)` (/proc/self/status at the end; VmHWM is the process's high-water mark, so no polling thread is needed).
// Exit codes: 0 ok, 1 the runtime failed, 2 bad arguments.
//
// The C API is declared here (no LiteRT headers ship in the wheel). TfLiteXNNPackDelegateOptions changed layout
// across versions (LiteRT inserted `runtime_flags` after `num_threads`, moving `flags` from offset 4 to 8), so this
// runner never uses a struct definition: Default() fills a generously sized buffer (AAPCS64 returns any struct over
// 16 bytes through the x8 pointer, whatever its size) and only the fields at the offsets of the pinned library
// (ai-edge-litert 1.4.0's TfLiteXNNPackDelegateOptions: num_threads@0, runtime_flags@4, flags@8, ...,
// weight_cache_file_descriptor@40 = -1 by default) are touched, after checking those defaults; the flags are then
// read back from the created delegate.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "runner_util.h"

extern "C" {
struct TfLiteModel;
struct TfLiteInterpreterOptions;
struct TfLiteInterpreter;
struct TfLiteTensor;
struct TfLiteDelegate;
typedef int TfLiteStatus;  // kTfLiteOk == 0
typedef int TfLiteType;    // kTfLiteFloat32 == 1, kTfLiteFloat16 == 10

const char* TfLiteVersion(void);
TfLiteModel* TfLiteModelCreateFromFile(const char* path);
void TfLiteModelDelete(TfLiteModel* model);
TfLiteInterpreterOptions* TfLiteInterpreterOptionsCreate(void);
void TfLiteInterpreterOptionsDelete(TfLiteInterpreterOptions* options);
void TfLiteInterpreterOptionsSetNumThreads(TfLiteInterpreterOptions* options, int32_t num_threads);
void TfLiteInterpreterOptionsAddDelegate(TfLiteInterpreterOptions* options, TfLiteDelegate* delegate);
TfLiteInterpreter* TfLiteInterpreterCreate(const TfLiteModel* model, const TfLiteInterpreterOptions* options);
void TfLiteInterpreterDelete(TfLiteInterpreter* interpreter);
int32_t TfLiteInterpreterGetInputTensorCount(const TfLiteInterpreter* interpreter);
TfLiteTensor* TfLiteInterpreterGetInputTensor(const TfLiteInterpreter* interpreter, int32_t index);
TfLiteStatus TfLiteInterpreterAllocateTensors(TfLiteInterpreter* interpreter);
TfLiteStatus TfLiteInterpreterInvoke(TfLiteInterpreter* interpreter);
int32_t TfLiteInterpreterGetOutputTensorCount(const TfLiteInterpreter* interpreter);
const TfLiteTensor* TfLiteInterpreterGetOutputTensor(const TfLiteInterpreter* interpreter, int32_t index);
TfLiteType TfLiteTensorType(const TfLiteTensor* tensor);
int32_t TfLiteTensorNumDims(const TfLiteTensor* tensor);
int32_t TfLiteTensorDim(const TfLiteTensor* tensor, int32_t dim);
size_t TfLiteTensorByteSize(const TfLiteTensor* tensor);
void* TfLiteTensorData(const TfLiteTensor* tensor);
const char* TfLiteTensorName(const TfLiteTensor* tensor);
TfLiteDelegate* TfLiteXNNPackDelegateCreate(const void* options);
void TfLiteXNNPackDelegateDelete(TfLiteDelegate* delegate);
int TfLiteXNNPackDelegateGetFlags(TfLiteDelegate* delegate);
}

namespace {

constexpr uint32_t kForceFp16 = 0x00000004;  // TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16 (unchanged since TF 2.9)
constexpr size_t kNumThreadsOffset = 0, kFlagsOffset = 8, kCacheFdOffset = 40;  // ai-edge-litert 1.4.0 layout

// Room for any later growth of the options struct; returned through x8 (AAPCS64), so the callee writes its own size.
struct alignas(16) XnnpackOptionsBuffer {
  unsigned char bytes[512];
};
extern "C" XnnpackOptionsBuffer TfLiteXNNPackDelegateOptionsDefault(void);

template <typename T>
T field(const XnnpackOptionsBuffer& b, size_t offset) {
  T v;
  std::memcpy(&v, b.bytes + offset, sizeof v);
  return v;
}
template <typename T>
void set_field(XnnpackOptionsBuffer* b, size_t offset, T v) {
  std::memcpy(b->bytes + offset, &v, sizeof v);
}

// XNNPACK delegate with our thread count and (optionally) forced fp16; nullptr + a message when the library's
// defaults do not look like the layout above (another LiteRT version: the offsets must be re-checked).
TfLiteDelegate* make_xnnpack(long threads, bool force_fp16, uint32_t* flags_out) {
  XnnpackOptionsBuffer options = TfLiteXNNPackDelegateOptionsDefault();
  const uint32_t flags = field<uint32_t>(options, kFlagsOffset);
  if (field<int32_t>(options, kCacheFdOffset) != -1 || (flags & ~0x7ffu) != 0) {
    std::fprintf(stderr, "ERROR: TfLiteXNNPackDelegateOptionsDefault() does not have the ai-edge-litert 1.4.0 "
                         "layout this runner was written for (flags@8=0x%x, fd@40=%d)\n",
                 flags, field<int32_t>(options, kCacheFdOffset));
    return nullptr;
  }
  set_field<int32_t>(&options, kNumThreadsOffset, threads > 1 ? static_cast<int32_t>(threads) : 0);
  set_field<uint32_t>(&options, kFlagsOffset, force_fp16 ? flags | kForceFp16 : flags);
  TfLiteDelegate* delegate = TfLiteXNNPackDelegateCreate(&options);
  if (delegate == nullptr) return nullptr;
  *flags_out = static_cast<uint32_t>(TfLiteXNNPackDelegateGetFlags(delegate));
  if (force_fp16 && (*flags_out & kForceFp16) == 0) {
    std::fprintf(stderr, "ERROR: the XNNPACK delegate did not take the FORCE_FP16 flag (flags 0x%x)\n", *flags_out);
    TfLiteXNNPackDelegateDelete(delegate);
    return nullptr;
  }
  return delegate;
}

// Upstream's boolean flag values.
bool boolean(const effvit::Flags& flags, const std::string& name, bool fallback, bool* out) {
  if (!flags.has(name)) {
    *out = fallback;
    return true;
  }
  const std::string v = flags.str(name);
  if (v == "true" || v == "1") {
    *out = true;
  } else if (v == "false" || v == "0") {
    *out = false;
  } else {
    std::fprintf(stderr, "error: --%s=%s is not true or false\n", name.c_str(), v.c_str());
    return false;
  }
  return true;
}

// `NAME:FILE` (':' in NAME escaped as '\:', as upstream) -> (NAME, FILE).
bool split_value_file(const std::string& spec, std::string* name, std::string* path) {
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == '\\' && i + 1 < spec.size() && spec[i + 1] == ':') {
      name->push_back(':');
      ++i;
    } else if (spec[i] == ':') {
      *path = spec.substr(i + 1);
      return !name->empty() && !path->empty();
    } else {
      name->push_back(spec[i]);
    }
  }
  return false;
}

struct Timings {
  std::vector<double> us;
  double mean() const {
    double s = 0;
    for (double v : us) s += v;
    return us.empty() ? 0.0 : s / static_cast<double>(us.size());
  }
};

// Upstream's `count=N first=F curr=C min=.. max=.. avg=.. std=..` line (microseconds) plus p5/median/p95.
void print_count(const Timings& t) {
  std::vector<double> s = t.us;
  std::sort(s.begin(), s.end());
  const double avg = t.mean();
  double var = 0;
  for (double v : t.us) var += (v - avg) * (v - avg);
  const double sd = std::sqrt(var / static_cast<double>(t.us.size()));
  auto pct = [&](double p) { return s[static_cast<size_t>(p * static_cast<double>(s.size() - 1) + 0.5)]; };
  std::printf("INFO: count=%zu first=%.0f curr=%.0f min=%.0f max=%.0f avg=%g std=%.0f p5=%.0f median=%.0f p95=%.0f\n\n",
              t.us.size(), t.us.front(), t.us.back(), s.front(), s.back(), avg, sd, pct(0.05), pct(0.5), pct(0.95));
  std::fflush(stdout);
}

// Runs until the rule says stop; false when an invocation fails.
bool run_loop(TfLiteInterpreter* interp, const effvit::StopRule& rule, Timings* t) {
  const double start = effvit::now_ms();
  while (!rule.done(static_cast<long>(t->us.size()), (effvit::now_ms() - start) / 1000.0)) {
    const double t0 = effvit::now_ms();
    if (TfLiteInterpreterInvoke(interp) != 0) return false;
    t->us.push_back((effvit::now_ms() - t0) * 1000.0);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const long rss_start = effvit::proc_status_kb("VmRSS:");
  effvit::Flags flags(argc, argv, {});
  static const std::vector<std::string> known = {
      "graph", "num_threads", "warmup_runs", "num_runs", "warmup_min_secs", "min_secs", "max_secs",
      "report_peak_memory_footprint", "memory_footprint_check_interval_ms", "use_xnnpack", "xnnpack_force_fp16",
      "input_layer", "input_layer_shape", "input_layer_value_files", "output_filepath"};
  for (const auto& name : flags.names()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::fprintf(stderr, "error: unknown flag --%s (this benchmark_model takes --%s", name.c_str(), known[0].c_str());
      for (size_t i = 1; i < known.size(); ++i) std::fprintf(stderr, ", --%s", known[i].c_str());
      std::fprintf(stderr, ")\n");
      return 2;
    }
  }
  if (!flags.positional().empty()) {
    std::fprintf(stderr, "error: unexpected argument %s (flags are --name=value)\n", flags.positional()[0].c_str());
    return 2;
  }
  long threads = -1, warmup_runs = 1, num_runs = 50, interval = 50;
  bool use_xnnpack = true, force_fp16 = false, report_peak = false;
  effvit::StopRule warm, timed;
  timed.min_secs = 1.0;
  timed.max_secs = 150.0;
  warm.min_secs = 0.5;
  if (!flags.integer("num_threads", -1, &threads) || !flags.integer("warmup_runs", 1, &warmup_runs) ||
      !flags.integer("num_runs", 50, &num_runs) ||
      !flags.integer("memory_footprint_check_interval_ms", 50, &interval) ||
      !boolean(flags, "use_xnnpack", true, &use_xnnpack) ||
      !boolean(flags, "xnnpack_force_fp16", false, &force_fp16) ||
      !boolean(flags, "report_peak_memory_footprint", false, &report_peak) ||
      (flags.has("warmup_min_secs") && !effvit::seconds("warmup_min_secs", flags.str("warmup_min_secs"),
                                                        &warm.min_secs)) ||
      (flags.has("min_secs") && !effvit::seconds("min_secs", flags.str("min_secs"), &timed.min_secs)) ||
      (flags.has("max_secs") && !effvit::seconds("max_secs", flags.str("max_secs"), &timed.max_secs)))
    return 2;
  if (num_runs < 1 || warmup_runs < 0) {
    std::fprintf(stderr, "error: --num_runs must be >= 1 and --warmup_runs >= 0\n");
    return 2;
  }
  if (force_fp16 && !use_xnnpack) {
    std::fprintf(stderr, "error: --xnnpack_force_fp16=true needs --use_xnnpack=true\n");
    return 2;
  }
  const std::string graph = flags.str("graph");
  if (graph.empty()) {
    std::fprintf(stderr, "error: --graph=FILE.tflite is required\n");
    return 2;
  }
  timed.min_runs = num_runs;
  warm.min_runs = warmup_runs;
  warm.max_secs = timed.max_secs;

  std::printf("INFO: STARTING!\n");
  std::printf("INFO: Log parameter values verbosely: [0]\n");
  std::printf("INFO: Min num runs: [%ld]\n", num_runs);
  std::printf("INFO: Min runs duration (seconds): [%g]\n", timed.min_secs);
  std::printf("INFO: Max runs duration (seconds): [%g]\n", timed.max_secs);
  std::printf("INFO: Num threads: [%ld]\n", threads);
  std::printf("INFO: Min warmup runs: [%ld]\n", warmup_runs);
  std::printf("INFO: Min warmup runs duration (seconds): [%g]\n", warm.min_secs);
  if (report_peak) std::printf("INFO: Report the peak memory footprint: [1]\n");
  std::printf("INFO: Graph: [%s]\n", graph.c_str());
  std::printf("INFO: Use xnnpack: [%d]\n", use_xnnpack ? 1 : 0);
  if (force_fp16) std::printf("INFO: xnnpack_force_fp16: [1]\n");
  std::printf("INFO: TFLite C API library version: %s\n", TfLiteVersion());
  std::fflush(stdout);

  const double init_start = effvit::now_ms();
  TfLiteModel* model = TfLiteModelCreateFromFile(graph.c_str());
  if (model == nullptr) {
    std::fprintf(stderr, "ERROR: cannot load the model %s\n", graph.c_str());
    return 1;
  }
  std::printf("INFO: Loaded model %s\n", graph.c_str());
  struct stat file_info;  // the size only: the runtime has read the file already
  if (stat(graph.c_str(), &file_info) == 0)
    std::printf("INFO: The input model file size (MB): %g\n", static_cast<double>(file_info.st_size) / 1e6);
  TfLiteInterpreterOptions* options = TfLiteInterpreterOptionsCreate();
  if (threads > 0) TfLiteInterpreterOptionsSetNumThreads(options, static_cast<int32_t>(threads));
  TfLiteDelegate* delegate = nullptr;
  if (use_xnnpack) {
    uint32_t got = 0;
    delegate = make_xnnpack(threads, force_fp16, &got);
    if (delegate == nullptr) return 1;
    std::printf("INFO: XNNPACK delegate flags: 0x%x%s\n", got, (got & kForceFp16) ? " (FORCE_FP16)" : "");
    TfLiteInterpreterOptionsAddDelegate(options, delegate);
  }
  std::fflush(stdout);
  TfLiteInterpreter* interp = TfLiteInterpreterCreate(model, options);
  if (interp == nullptr) {
    std::fprintf(stderr, "ERROR: failed to create the interpreter (or to apply the delegate)\n");
    return 1;
  }
  if (TfLiteInterpreterGetInputTensorCount(interp) < 1 || TfLiteInterpreterAllocateTensors(interp) != 0) {
    std::fprintf(stderr, "ERROR: failed to allocate tensors\n");
    return 1;
  }
  // Inputs: the value file (raw tensor bytes) for the named layer, else deterministic values in [-1, 1).
  std::string value_name, value_path;
  if (flags.has("input_layer_value_files") &&
      !split_value_file(flags.str("input_layer_value_files"), &value_name, &value_path)) {
    std::fprintf(stderr, "error: --input_layer_value_files takes NAME:FILE\n");
    return 2;
  }
  for (int32_t i = 0; i < TfLiteInterpreterGetInputTensorCount(interp); ++i) {
    TfLiteTensor* in = TfLiteInterpreterGetInputTensor(interp, i);
    const std::string name = TfLiteTensorName(in);
    if (i == 0 && flags.has("input_layer") && flags.str("input_layer") != name) {
      std::fprintf(stderr, "error: --input_layer=%s but the model's input 0 is %s\n", flags.str("input_layer").c_str(),
                   name.c_str());
      return 2;
    }
    if (i == 0 && flags.has("input_layer_shape")) {
      std::string dims;
      for (int32_t d = 0; d < TfLiteTensorNumDims(in); ++d)
        dims += (d ? "," : "") + std::to_string(TfLiteTensorDim(in, d));
      if (dims != flags.str("input_layer_shape")) {
        std::fprintf(stderr, "error: --input_layer_shape=%s but input %s has shape %s (no resizing here)\n",
                     flags.str("input_layer_shape").c_str(), name.c_str(), dims.c_str());
        return 2;
      }
    }
    const size_t size = TfLiteTensorByteSize(in);
    auto* data = static_cast<unsigned char*>(TfLiteTensorData(in));
    if (!value_name.empty() && value_name == name) {
      std::vector<char> values;
      if (!effvit::read_file(value_path, &values)) {
        std::fprintf(stderr, "error: cannot read the input value file %s\n", value_path.c_str());
        return 2;
      }
      if (values.size() != size) {
        std::fprintf(stderr, "error: %s has %zu bytes, input %s needs %zu\n", value_path.c_str(), values.size(),
                     name.c_str(), size);
        return 2;
      }
      std::memcpy(data, values.data(), size);
    } else if (TfLiteTensorType(in) == 1) {
      uint32_t state = 12345u;
      for (size_t k = 0; k < size / 4; ++k) {
        state = state * 1664525u + 1013904223u;
        const float v = static_cast<float>(state >> 8) / 8388608.0f - 1.0f;
        std::memcpy(data + 4 * k, &v, 4);
      }
    } else {
      for (size_t k = 0; k < size; ++k) data[k] = static_cast<unsigned char>(k * 7u);
    }
  }
  if (!value_name.empty() && value_name != TfLiteTensorName(TfLiteInterpreterGetInputTensor(interp, 0)) &&
      TfLiteInterpreterGetInputTensorCount(interp) == 1) {
    std::fprintf(stderr, "error: --input_layer_value_files names %s, the model's input is %s\n", value_name.c_str(),
                 TfLiteTensorName(TfLiteInterpreterGetInputTensor(interp, 0)));
    return 2;
  }
  const double init_ms = effvit::now_ms() - init_start;
  const long rss_init = effvit::proc_status_kb("VmRSS:");
  std::printf("INFO: Initialized session in %.3fms.\n", init_ms);

  std::printf("INFO: Running benchmark for at least %ld iterations and at least %g seconds but terminate if "
              "exceeding %g seconds.\n", warmup_runs, warm.min_secs, warm.max_secs);
  std::fflush(stdout);
  Timings warmup, regular;
  if (!run_loop(interp, warm, &warmup)) {
    std::fprintf(stderr, "ERROR: invoke failed during warm-up\n");
    return 1;
  }
  if (!warmup.us.empty()) print_count(warmup);
  std::printf("INFO: Running benchmark for at least %ld iterations and at least %g seconds but terminate if "
              "exceeding %g seconds.\n", num_runs, timed.min_secs, timed.max_secs);
  std::fflush(stdout);
  if (!run_loop(interp, timed, &regular)) {
    std::fprintf(stderr, "ERROR: invoke failed\n");
    return 1;
  }
  print_count(regular);
  const double first = warmup.us.empty() ? regular.us.front() : warmup.us.front();
  std::printf("INFO: Inference timings in us: Init: %.0f, First inference: %.0f, Warmup (avg): %g, Inference (avg): "
              "%g\n", init_ms * 1000.0, first, warmup.us.empty() ? 0.0 : warmup.mean(), regular.mean());
  const long rss_end = effvit::proc_status_kb("VmRSS:");
  if (rss_start > 0 && rss_init > 0 && rss_end > 0)
    std::printf("INFO: Memory footprint delta from the start of the tool (MB): init=%g overall=%g\n",
                static_cast<double>(rss_init - rss_start) / 1024.0,
                static_cast<double>(rss_end - rss_start) / 1024.0);
  if (report_peak) {
    const long hwm = effvit::vm_hwm_kb();
    std::printf("INFO: Peak RSS: %ld KB (%s)\n", hwm > 0 ? hwm : effvit::peak_rss_kb(), hwm > 0 ? "VmHWM" : "ru_maxrss");
  }

  if (flags.has("output_filepath")) {
    std::vector<unsigned char> out;
    for (int32_t i = 0; i < TfLiteInterpreterGetOutputTensorCount(interp); ++i) {
      const TfLiteTensor* t = TfLiteInterpreterGetOutputTensor(interp, i);
      const auto* p = static_cast<const unsigned char*>(TfLiteTensorData(t));
      out.insert(out.end(), p, p + TfLiteTensorByteSize(t));
    }
    if (!effvit::write_file(flags.str("output_filepath"), out.data(), out.size())) {
      std::fprintf(stderr, "ERROR: cannot write --output_filepath %s\n", flags.str("output_filepath").c_str());
      return 1;
    }
  }
  std::fflush(stdout);
  TfLiteInterpreterDelete(interp);
  if (delegate != nullptr) TfLiteXNNPackDelegateDelete(delegate);
  TfLiteInterpreterOptionsDelete(options);
  TfLiteModelDelete(model);
  return 0;
}
