// The capped CPU allocator (see memory_cap.hpp). Each allocation carries its size in a 64-byte
// header in front of the data (keeping the default allocator's 64-byte alignment), so the raw
// allocate/deallocate interface that parts of ATen use keeps working.
#include "llmscope/memory_cap.hpp"

#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "llmscope/error.hpp"

namespace llmscope {
namespace {

constexpr size_t kHeader = 64;

std::atomic<int64_t> cap{0};
std::atomic<int64_t> in_use{0};
at::Allocator* base = nullptr;

void release(void* data) {
  if (data == nullptr) return;
  void* start = static_cast<char*>(data) - kHeader;
  in_use -= *static_cast<int64_t*>(start);
  base->raw_deallocate(start);
}

struct CappedAllocator final : at::Allocator {
  at::DataPtr allocate(size_t n) const override {
    if (n == 0) return {nullptr, nullptr, &release, at::Device(at::kCPU)};
    const auto bytes = static_cast<int64_t>(n);
    if (!charge_capped_memory(bytes)) {
      throw Error("--max-memory: a tensor of " + mebibytes(bytes) + " would take CPU tensors to " +
                  mebibytes(in_use.load() + bytes) + ", past the cap of " + mebibytes(cap.load()));
    }
    void* start = nullptr;
    try {
      start = base->raw_allocate(n + kHeader);
    } catch (...) {
      in_use -= bytes;
      throw;
    }
    *static_cast<int64_t*>(start) = bytes;
    void* data = static_cast<char*>(start) + kHeader;
    return {data, data, &release, at::Device(at::kCPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &release; }
};

}  // namespace

void cap_cpu_memory(int64_t bytes) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    static CappedAllocator capped;
    base = c10::GetCPUAllocator();
    c10::SetCPUAllocator(&capped, /*priority=*/100);
  });
  cap = bytes;
}

int64_t capped_cpu_memory_in_use() { return in_use.load(); }

int64_t cpu_memory_cap() { return cap.load(); }

bool charge_capped_memory(int64_t delta) {
  const int64_t now = in_use.fetch_add(delta) + delta;
  const int64_t limit = cap.load();
  if (delta > 0 && limit > 0 && now > limit) {
    in_use -= delta;
    return false;
  }
  return true;
}

std::string mebibytes(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

int64_t parse_memory_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  double scale = 1;
  const std::string suffix = text.substr(used);
  if (suffix == "K" || suffix == "k")
    scale = 1024.0;
  else if (suffix == "M" || suffix == "m")
    scale = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "g")
    scale = 1024.0 * 1024 * 1024;
  else if (suffix == "T" || suffix == "t")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!suffix.empty())
    used = 0;
  if (used == 0 || !(value > 0) || !std::isfinite(value * scale) || value * scale > 9e18) {
    throw Error(what + ": expected a size such as 512M, 8G or a number of bytes, got '" + text +
                "'");
  }
  return static_cast<int64_t>(value * scale);
}

}  // namespace llmscope
