// The Unicode data BERT's normaliser needs beyond PCRE2's general categories: canonical
// decompositions with the nonspacing marks removed (accent stripping) and single-code-point
// lower-case mappings. Defined in unicode_tables.cpp, which scripts/gen-unicode-tables writes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llmscope::detail {

// A code point whose accent-stripped NFD is one code point. Sorted by `from`.
struct CodeMap {
  uint32_t from;
  uint32_t to;
};

// A code point whose accent-stripped NFD is 0, 2 or 3 code points. Sorted by `from`.
struct CodeExpansion {
  uint32_t from;
  uint8_t count;
  uint32_t to[3];
};

// Lower case of first, first + stride, ... up to last is the code point plus delta. Sorted.
struct LowerRange {
  uint32_t first;
  uint32_t last;
  uint32_t stride;
  int32_t delta;
};

extern const CodeMap kStripOne[];
extern const size_t kStripOneSize;
extern const CodeExpansion kStripMany[];
extern const size_t kStripManySize;
extern const LowerRange kLower[];
extern const size_t kLowerSize;

}  // namespace llmscope::detail
