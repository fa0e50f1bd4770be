// Small helpers shared by the project's native runners: flag lookup, clocks, files, peak RSS.
// Header-only on purpose: each runner is one translation unit plus this file, built with a single g++ call.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace effvit {

// Milliseconds on the monotonic clock (the same clock the upstream tools time runs with).
inline double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

// Peak resident set size of this process in KiB (Linux reports ru_maxrss in KiB).
inline long peak_rss_kb() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
  return usage.ru_maxrss;
}

// A KiB figure of /proc/self/status (`key` with its colon, e.g. "VmRSS:"); -1 where /proc has no such line.
inline long proc_status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

// VmHWM (peak resident memory, KiB), the figure the harness records for every runner; -1 where /proc lacks it.
inline long vm_hwm_kb() { return proc_status_kb("VmHWM:"); }

// The harness's stop rule for timed runs: at least `min_runs` AND at least `min_secs`, never past `max_secs` (but at
// least one run). max_secs <= 0 means no upper limit.
struct StopRule {
  long min_runs = 1;
  double min_secs = 0.0;
  double max_secs = 0.0;
  bool done(long runs, double elapsed_s) const {
    if (max_secs > 0.0 && runs >= 1 && elapsed_s >= max_secs) return true;
    return runs >= min_runs && elapsed_s >= min_secs;
  }
};

// Markers around the timed runs (flushed at once: a power sampler beside the runner reads only between them, from
// the runner's output file).
inline void timed_begin() {
  std::printf("Timed runs: begin\n");
  std::fflush(stdout);
}
inline void timed_end(long runs, double ms) {
  std::printf("Timed runs: end, %ld runs in %.4f ms\n", runs, ms);
  std::fflush(stdout);
}

// A seconds value (`--min_secs=1.5`); false (and a message on stderr) when it is not a number >= 0.
inline bool seconds(const std::string& name, const std::string& text, double* out) {
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || *out < 0.0) {
    std::fprintf(stderr, "error: --%s=%s is not a number of seconds >= 0\n", name.c_str(), text.c_str());
    return false;
  }
  return true;
}

// Whole file as bytes; false when it cannot be read.
inline bool read_file(const std::string& path, std::vector<char>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Write to PATH.tmp then rename, so a reader never sees half an output file.
inline bool write_file(const std::string& path, const void* data, size_t bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// IEEE half <-> float (no dependency on a half type; exact for every half value).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xffu) == 0xffu) return sign | 0x7c00u | (mant ? 0x200u : 0u);  // inf / nan
  if (exp >= 31) return sign | 0x7c00u;                                              // overflow -> inf
  if (exp <= 0) {                                                                    // subnormal or zero
    if (exp < -10) return sign;
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1u);
    const uint32_t mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // round to nearest even
  return sign | static_cast<uint16_t>(half);
}

// gflags-style `--name=value` / `--name value` / `--flag` options; the remaining words are positional.
class Flags {
 public:
  Flags(int argc, char** argv, const std::vector<std::string>& booleans) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
        positional_.push_back(arg);
        continue;
      }
      std::string name = arg.substr(2);
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        values_[name.substr(0, eq)] = name.substr(eq + 1);
      } else if (is_boolean(name, booleans)) {
        values_[name] = "true";
      } else if (i + 1 < argc) {
        values_[name] = argv[++i];
      } else {
        values_[name] = "";
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback = "") const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  // Integer value; false (and a message on stderr) when it is not a whole number.
  bool integer(const std::string& name, long fallback, long* out) const {
    auto it = values_.find(name);
    if (it == values_.end()) {
      *out = fallback;
      return true;
    }
    char* end = nullptr;
    *out = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0') {
      std::fprintf(stderr, "error: --%s=%s is not a whole number\n", name.c_str(), it->second.c_str());
      return false;
    }
    return true;
  }
  const std::vector<std::string>& positional() const { return positional_; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : values_) out.push_back(kv.first);
    return out;
  }

 private:
  static bool is_boolean(const std::string& name, const std::vector<std::string>& booleans) {
    for (const auto& b : booleans)
      if (b == name) return true;
    return false;
  }
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace effvit
