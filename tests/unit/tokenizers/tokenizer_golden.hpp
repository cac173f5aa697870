// Every tokenizer's golden file checked the same way: each case's ids from encode() and its
// text from decoding the expected ids, reporting the first mismatch of each and how many.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "golden.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope::testing {

// `file` (under tests/golden) holds {"cases": [{"text", "ids", "decoded"}, ...]}, `count` of them.
inline void expect_golden_cases(const Tokenizer& tok, const std::string& file, size_t count,
                                const EncodeOptions& options, bool decode_skipping_special) {
  std::ifstream in(golden_path(file));
  ASSERT_TRUE(in) << "missing " << file;
  const nlohmann::json golden = nlohmann::json::parse(in);
  const nlohmann::json& cases = golden.at("cases");
  ASSERT_EQ(cases.size(), count);
  int encode_mismatches = 0;
  int decode_mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i].at("text");
    const auto expected = cases[i].at("ids").get<std::vector<int64_t>>();
    const auto got = tok.encode(text, options);
    if (got != expected && encode_mismatches++ == 0) {
      ADD_FAILURE() << "first encode mismatch: case " << i << " " << nlohmann::json(text).dump()
                    << "\n  expected " << nlohmann::json(expected).dump() << "\n  got      "
                    << nlohmann::json(got).dump();
    }
    const std::string decoded =
        decode_skipping_special ? tok.decode_skipping_special(expected) : tok.decode(expected);
    if (decoded != cases[i].at("decoded").get<std::string>() && decode_mismatches++ == 0) {
      ADD_FAILURE() << "first decode mismatch: case " << i << " " << nlohmann::json(text).dump()
                    << "\n  expected " << cases[i]["decoded"].dump() << "\n  got      "
                    << nlohmann::json(decoded).dump();
    }
  }
  EXPECT_EQ(encode_mismatches, 0) << "of " << cases.size() << " cases";
  EXPECT_EQ(decode_mismatches, 0) << "of " << cases.size() << " cases";
}

}  // namespace llmscope::testing
