// onnxruntime_perf_test for effvit-deploy: the upstream tool's command line and summary lines, written against the
// public ONNX Runtime C++ API (upstream's perf_test needs ORT internals and is built only with ORT's unit tests).
//
//   onnxruntime_perf_test -I -m times -r 50 -x 1 -y 1 -e cpu model.onnx
//   onnxruntime_perf_test -I -m times -r 1 -x 1 -e cpu --input_file x.bin --output_file y.bin model.onnx
//
// Like upstream: -I makes random inputs (seed -S), one warm-up run precedes the -r timed runs, latencies are printed
// in seconds with percentiles taken at index floor(n * p) of the sorted times. Our additions: --input_file (raw
// float32 values of input 0, converted to its dtype) and --output_file (output 0 as raw float32, written whole then
// renamed), for the harness's parity check; --min_secs S / --max_secs S (-m times only): the timed runs continue
// until -r runs AND S seconds, and stop after --max_secs seconds (at least one run), the harness's stop rule.
// Printed beside upstream's lines (the harness's parser reads them; keep them stable):
//   Timed runs: begin / Timed runs: end, <k> runs in <ms> ms   around the timed runs (flushed at once)
//   Arena max in use: <bytes> bytes (<allocator stats>)        the session CPU allocator's MaxInUse, when it has stats
//   Peak working set size: <bytes> bytes                       VmHWM from /proc/self/status (upstream's name)
// Exit codes: 0 ok, 1 the runtime failed, 2 bad arguments.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "runner_util.h"

namespace {

struct Options {
  std::string model;
  std::string mode = "duration";
  long repeat = 1000;
  long duration_s = 10;
  long intra = 0;
  long inter = 0;
  long level = 99;
  long seed = 0;
  std::string provider = "cpu";
  bool generate = false;
  std::string input_file, output_file;
  double min_secs = 0.0, max_secs = 0.0;
};

int usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\nusage: onnxruntime_perf_test [-I] [-m times|duration] [-r N] [-t S] [-x intra] "
               "[-y inter] [-e cpu] [-o 0|1|2|99] [-S seed] [--input_file F] [--output_file F] [--min_secs S] "
               "[--max_secs S] model.onnx\n",
               why);
  return 2;
}

bool parse_long(const char* text, long* out) {
  char* end = nullptr;
  *out = std::strtol(text, &end, 10);
  return *text != '\0' && *end == '\0';
}

int parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](long* out) {
      if (i + 1 >= argc || !parse_long(argv[i + 1], out)) return false;
      ++i;
      return true;
    };
    if (a == "-I") {
      o->generate = true;
    } else if (a == "-m" && i + 1 < argc) {
      o->mode = argv[++i];
    } else if (a == "-e" && i + 1 < argc) {
      o->provider = argv[++i];
    } else if (a == "--input_file" && i + 1 < argc) {
      o->input_file = argv[++i];
    } else if (a == "--output_file" && i + 1 < argc) {
      o->output_file = argv[++i];
    } else if ((a == "--min_secs" || a == "--max_secs") && i + 1 < argc) {
      if (!effvit::seconds(a.substr(2), argv[++i], a == "--min_secs" ? &o->min_secs : &o->max_secs)) return 2;
    } else if (a == "-r" || a == "-t" || a == "-x" || a == "-y" || a == "-o" || a == "-S") {
      long v = 0;
      if (!value(&v)) return usage(("option " + a + " needs a whole number").c_str());
      if (a == "-r") o->repeat = v;
      if (a == "-t") o->duration_s = v;
      if (a == "-x") o->intra = v;
      if (a == "-y") o->inter = v;
      if (a == "-o") o->level = v;
      if (a == "-S") o->seed = v;
    } else if (!a.empty() && a[0] == '-') {
      return usage(("unknown option " + a).c_str());
    } else {
      o->model = a;
    }
  }
  if (o->model.empty()) return usage("no model file given");
  if (o->mode != "times" && o->mode != "duration") return usage("-m must be times or duration");
  if (o->provider != "cpu") return usage("this build has only the cpu execution provider (-e cpu)");
  if (o->repeat < 1) return usage("-r must be >= 1");
  return 0;
}

GraphOptimizationLevel level_of(long level) {
  switch (level) {
    case 0:
      return ORT_DISABLE_ALL;
    case 1:
      return ORT_ENABLE_BASIC;
    case 2:
      return ORT_ENABLE_EXTENDED;
    default:
      return ORT_ENABLE_ALL;
  }
}

size_t element_size(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
      return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
      return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
      return 8;
    default:
      return 1;
  }
}

// Input bytes of `type`: the float32 values converted, or random values (normal for floats, small ints otherwise).
bool make_input(ONNXTensorElementDataType type, size_t count, const std::vector<float>* values, std::mt19937* rng,
                std::vector<uint8_t>* out) {
  out->assign(count * element_size(type), 0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < count; ++i) {
    const float v = values ? (*values)[i] : normal(*rng);
    switch (type) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
        reinterpret_cast<float*>(out->data())[i] = v;
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
        reinterpret_cast<uint16_t*>(out->data())[i] = effvit::float_to_half(v);
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
        reinterpret_cast<int64_t*>(out->data())[i] = static_cast<int64_t>(v);
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
        reinterpret_cast<int32_t*>(out->data())[i] = static_cast<int32_t>(v);
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
        reinterpret_cast<int8_t*>(out->data())[i] = static_cast<int8_t>(v);
        break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
        out->data()[i] = static_cast<uint8_t>(v);
        break;
      default:
        return false;
    }
  }
  return true;
}

// The session's CPU allocator statistics (the BFC arena: MaxInUse is its peak bytes in use), or why there are none.
void print_arena(const Ort::Session& session, const Ort::MemoryInfo& cpu) {
  try {
    Ort::Allocator allocator(session, cpu);
    Ort::KeyValuePairs stats = allocator.GetStats();
    const char* max_in_use = stats.GetValue("MaxInUse");
    const char* total = stats.GetValue("TotalAllocated");
    if (max_in_use == nullptr) {
      std::printf("Arena max in use: not reported (the allocator has no MaxInUse statistic)\n");
      return;
    }
    std::printf("Arena max in use: %s bytes (TotalAllocated %s)\n", max_in_use, total ? total : "?");
  } catch (const Ort::Exception& e) {
    std::printf("Arena max in use: not reported (%s)\n", e.what());
  }
}

double percentile(const std::vector<double>& sorted, double p) {
  size_t index = static_cast<size_t>(static_cast<double>(sorted.size()) * p);
  return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse(argc, argv, &o)) return rc;
  if (!o.generate && o.input_file.empty())
    return usage("give -I (generated inputs) or --input_file (test_data_set folders are not supported)");
  std::vector<float> file_values;
  if (!o.input_file.empty()) {
    std::vector<char> bytes;
    if (!effvit::read_file(o.input_file, &bytes)) return usage(("cannot read --input_file " + o.input_file).c_str());
    file_values.resize(bytes.size() / sizeof(float));
    std::memcpy(file_values.data(), bytes.data(), file_values.size() * sizeof(float));
  }
  try {
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "perf_test");
    Ort::SessionOptions so;
    so.SetIntraOpNumThreads(static_cast<int>(o.intra));
    so.SetInterOpNumThreads(static_cast<int>(o.inter));
    so.SetExecutionMode(ORT_SEQUENTIAL);
    so.SetGraphOptimizationLevel(level_of(o.level));
    const double created = effvit::now_ms();
    Ort::Session session(env, o.model.c_str(), so);
    const double session_s = (effvit::now_ms() - created) / 1000.0;
    std::printf("Session creation time cost: %g s\n", session_s);

    Ort::AllocatorWithDefaultOptions allocator;
    Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::mt19937 rng(static_cast<uint32_t>(o.seed));
    std::vector<std::string> in_names, out_names;
    std::vector<std::vector<uint8_t>> buffers(session.GetInputCount());
    std::vector<Ort::Value> inputs;
    for (size_t i = 0; i < session.GetInputCount(); ++i) {
      in_names.push_back(session.GetInputNameAllocated(i, allocator).get());
      Ort::TypeInfo type_info = session.GetInputTypeInfo(i);  // must outlive `info`, which points into it
      auto info = type_info.GetTensorTypeAndShapeInfo();
      std::vector<int64_t> shape = info.GetShape();
      size_t count = 1;
      for (auto& d : shape) {
        if (d <= 0) d = 1;  // dynamic dimensions become 1, as upstream's -I does
        count *= static_cast<size_t>(d);
      }
      const bool from_file = i == 0 && !o.input_file.empty();
      if (from_file && file_values.size() != count) {
        std::fprintf(stderr, "error: --input_file has %zu float32 values, input %s needs %zu\n", file_values.size(),
                     in_names.back().c_str(), count);
        return 2;
      }
      const auto type = info.GetElementType();
      if (!make_input(type, count, from_file ? &file_values : nullptr, &rng, &buffers[i])) {
        std::fprintf(stderr, "error: input %s has unsupported element type %d\n", in_names.back().c_str(), type);
        return 1;
      }
      inputs.push_back(Ort::Value::CreateTensor(cpu, buffers[i].data(), buffers[i].size(), shape.data(), shape.size(),
                                                type));
    }
    for (size_t i = 0; i < session.GetOutputCount(); ++i)
      out_names.push_back(session.GetOutputNameAllocated(i, allocator).get());
    std::vector<const char*> in_ptrs, out_ptrs;
    for (auto& n : in_names) in_ptrs.push_back(n.c_str());
    for (auto& n : out_names) out_ptrs.push_back(n.c_str());
    auto run = [&]() {
      return session.Run(Ort::RunOptions{nullptr}, in_ptrs.data(), inputs.data(), inputs.size(), out_ptrs.data(),
                         out_ptrs.size());
    };

    const double w0 = effvit::now_ms();
    std::vector<Ort::Value> outputs = run();  // upstream's single warm-up run
    std::printf("First inference time cost: %g ms\n", effvit::now_ms() - w0);

    std::vector<double> times;
    effvit::StopRule rule;
    rule.min_runs = o.repeat;
    rule.min_secs = o.min_secs;
    rule.max_secs = o.max_secs;
    effvit::timed_begin();
    const double start = effvit::now_ms();
    const double deadline = start + static_cast<double>(o.duration_s) * 1000.0;
    while (o.mode == "times" ? !rule.done(static_cast<long>(times.size()), (effvit::now_ms() - start) / 1000.0)
                             : effvit::now_ms() < deadline) {
      const double t0 = effvit::now_ms();
      outputs = run();
      times.push_back((effvit::now_ms() - t0) / 1000.0);
    }
    const double total_s = (effvit::now_ms() - start) / 1000.0;
    effvit::timed_end(static_cast<long>(times.size()), total_s * 1000.0);
    double sum = 0.0;
    for (double t : times) sum += t;
    std::vector<double> sorted(times);
    std::sort(sorted.begin(), sorted.end());
    std::printf("Total inference time cost: %g s\n", total_s);
    std::printf("Total inference requests: %zu\n", times.size());
    std::printf("Average inference time cost: %g ms\n", sum / static_cast<double>(times.size()) * 1000.0);
    print_arena(session, cpu);
    const long hwm = effvit::vm_hwm_kb();
    std::printf("Peak working set size: %ld bytes\n", (hwm > 0 ? hwm : effvit::peak_rss_kb()) * 1024L);
    std::printf("Min Latency: %g s\n", sorted.front());
    std::printf("Max Latency: %g s\n", sorted.back());
    std::printf("P50 Latency: %g s\n", percentile(sorted, 0.50));
    std::printf("P90 Latency: %g s\n", percentile(sorted, 0.90));
    std::printf("P95 Latency: %g s\n", percentile(sorted, 0.95));
    std::printf("P99 Latency: %g s\n", percentile(sorted, 0.99));
    std::printf("P999 Latency: %g s\n", percentile(sorted, 0.999));

    if (!o.output_file.empty()) {
      auto info = outputs[0].GetTensorTypeAndShapeInfo();
      const size_t n = info.GetElementCount();
      std::vector<float> values(n);
      if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        const float* p = outputs[0].GetTensorData<float>();
        values.assign(p, p + n);
      } else if (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
        const uint16_t* p = static_cast<const uint16_t*>(outputs[0].GetTensorRawData());
        for (size_t i = 0; i < n; ++i) values[i] = effvit::half_to_float(p[i]);
      } else {
        std::fprintf(stderr, "error: output %s has element type %d; only float and float16 can be written\n",
                     out_names[0].c_str(), info.GetElementType());
        return 1;
      }
      if (!effvit::write_file(o.output_file, values.data(), n * sizeof(float))) {
        std::fprintf(stderr, "error: cannot write --output_file %s\n", o.output_file.c_str());
        return 1;
      }
      std::printf("Wrote output %s (%zu values) to %s\n", out_names[0].c_str(), n, o.output_file.c_str());
    }
  } catch (const Ort::Exception& e) {
    std::fprintf(stderr, "error: onnxruntime: %s\n", e.what());
    return 1;
  }
  return 0;
}
