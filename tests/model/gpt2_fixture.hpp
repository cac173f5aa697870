// Shared set-up for the GPT-2 model tests: the gpt2-tiny golden model, its Hugging Face
// reference tensors and meta.json.
#pragma once

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::testing {

class Gpt2Golden : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = load_model(golden_path("gpt2-tiny")).release();
    expected_ =
        new SafetensorsFile(SafetensorsFile::open(golden_path("gpt2-tiny/expected.safetensors")));
    std::ifstream in(golden_path("gpt2-tiny/meta.json"));
    meta_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete expected_;
    delete meta_;
  }
  void TearDown() override { model_->clear_hooks(); }

  Model& model() { return *model_; }
  at::Tensor expected(const std::string& name) { return expected_->tensor(name); }
  const nlohmann::json& meta() { return *meta_; }
  at::Tensor ids() { return expected("input_ids"); }
  at::Tensor mask() { return expected("attention_mask"); }
  at::Tensor first_row() { return ids().narrow(0, 0, 1); }
  // [batch, pos] mask broadcast over the trailing dims of a [batch, pos, ...] tensor.
  at::Tensor valid_positions(int64_t trailing_dims) {
    auto m = mask().ne(0);
    for (int64_t i = 0; i < trailing_dims; ++i) m = m.unsqueeze(-1);
    return m;
  }

 private:
  static inline Model* model_ = nullptr;
  static inline SafetensorsFile* expected_ = nullptr;
  static inline nlohmann::json* meta_ = nullptr;
};

}  // namespace llmscope::testing
