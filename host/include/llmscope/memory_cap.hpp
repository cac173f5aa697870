// A cap on the memory tensors and Lua values may take on the CPU (`--max-memory`): libtorch's CPU
// allocator is wrapped so that an allocation that would take the total past the cap fails with a
// message naming the request and the cap, instead of the kernel's OOM killer ending the process
// (or the machine) later; the Lua host charges its allocations to the same total. Tensors viewing
// a mapped checkpoint are not allocations and do not count.
#pragma once

#include <cstdint>
#include <string>

namespace llmscope {

// Installs the wrapper on first use (process-wide) and sets the cap; 0 lifts it.
void cap_cpu_memory(int64_t bytes);
// Bytes held by tensors allocated since the wrapper was installed, and by what charge_capped_memory
// counted.
int64_t capped_cpu_memory_in_use();
// The cap in bytes (0: none).
int64_t cpu_memory_cap();
// Counts `delta` bytes of memory that is not a tensor (the Lua host's own values) against the
// same cap; returns false, counting nothing, when growing by `delta` would pass it. Negative
// deltas (memory given back) always succeed.
bool charge_capped_memory(int64_t delta);
// "123.4 MiB".
std::string mebibytes(int64_t bytes);
// "512M", "8G", "1.5G", "1048576": a size with an optional K/M/G/T suffix (powers of 1024);
// throws llmscope::Error naming `what` for anything else.
int64_t parse_memory_size(const std::string& text, const std::string& what);

}  // namespace llmscope
