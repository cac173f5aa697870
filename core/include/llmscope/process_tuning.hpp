// Process-wide settings for speed, made once by a program's main() before its first tensor
// operation (the llmscope executable and the test programs call it, so tests run what users run).
#pragma once

namespace llmscope {

// - ATen's AVX-512 kernels where the CPU has AVX-512: Debian's libtorch has them built but picks
//   AVX2 unless ATEN_CPU_CAPABILITY says otherwise (a value the user set is kept).
// - Freed blocks up to 256 MiB stay in the heap for reuse: glibc otherwise maps every block over
//   32 MiB afresh and unmaps it on free, so each forward pass's logits (100 MiB for GPT-2 at
//   4 x 128 tokens) are page-faulted and zeroed anew (about 3% of the pass). The peak is
//   unchanged; memory freed at the peak is kept for the next pass instead of returned.
// - ATen's intra-op threads: one per available core (available_cores()) unless OMP_NUM_THREADS
//   or MKL_NUM_THREADS says otherwise. libtorch's own count comes from its CPU topology library,
//   which takes some virtual machines' two cores for one (an AMD EPYC VM here), leaving every
//   pass on one thread.
void tune_process();

// The cores this process may use: the CPUs of its affinity mask (taskset, Slurm's cpusets) with
// SMT siblings counted once (sysfs topology), at most a cgroup v2 CPU quota (a container's CPU
// limit) rounded up; 0 when the mask cannot be read.
int available_cores();

}  // namespace llmscope
