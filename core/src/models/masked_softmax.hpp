// Attention's scale, mask and softmax in one pass over each row of scores (AVX2 with FMA), for
// float32 CPU scores that no hook reads before the softmax.
#pragma once

#include <ATen/ATen.h>

namespace llmscope::detail {

// In place on `scores` [..., keys] (float32, CPU, contiguous): each entry divided by `divisor1`
// and then `divisor2` where `allowed` (bool, broadcastable to scores) holds, the lowest float
// elsewhere, then the softmax over keys, as
//   at::softmax(scores.div_(divisor1).div_(divisor2).masked_fill_(!allowed, lowest), -1)
// computes it: masked keys get exactly 0, a row with no allowed key is uniform (every entry
// lowest), and the rest agree to a few float32 ulps (e^x is avx2_math.hpp's). One pass over
// memory where ATen makes four (two divisions, the mask's negation and fill, the softmax).
// Returns false, touching nothing, where it does not apply (another dtype or device, scores that
// record gradients or are not contiguous, a mask whose keys are not adjacent bools, a CPU without
// AVX2 and FMA): use ATen's ops then.
bool masked_softmax_(at::Tensor& scores, const at::Tensor& allowed, float divisor1, float divisor2);

}  // namespace llmscope::detail
