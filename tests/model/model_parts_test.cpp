// The shared model parts on their own (models/model_parts.hpp): rotary position embedding
// against an independent formulation (rotation of the pairs (i, i + dims/2)), rope scaling,
// RMSNorm, the site tables architectures list their steps in, the AVX-512 and AVX2 GELU and the
// fused attention softmax.
#include <gmock/gmock.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"
#include "golden.hpp"
#include "models/gelu_tanh.hpp"
#include "models/masked_softmax.hpp"
#include "models/model_parts.hpp"

namespace llmscope::testing {
namespace {

TEST(Rotary, InverseFrequenciesAreBaseToTheMinusTwoIOverDims) {
  auto inv = detail::rotary_inverse_frequencies(8, 10000);
  ASSERT_EQ(inv.sizes(), (at::IntArrayRef{4}));
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(inv[i].item<double>(), std::pow(10000.0, -2.0 * i / 8), 1e-7) << i;
  }
}

TEST(Rotary, RotatesPairsIAndIPlusHalfByPositionTimesFrequency) {
  const int64_t batch = 2, pos = 5, heads = 3, d_head = 10, dims = 6, half = dims / 2;
  at::manual_seed(3);
  auto x = at::randn({batch, pos, heads, d_head}, at::kDouble);
  auto position_ids = at::arange(pos, at::kLong).unsqueeze(0).repeat({batch, 1});
  position_ids[1] = position_ids[1] + 7;  // a shifted row
  auto inv = detail::rotary_inverse_frequencies(dims, 500);
  auto rotary = detail::rotary_at(position_ids, inv, at::kDouble);
  auto out = detail::apply_rotary(x, rotary);

  auto expected = x.clone();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t p = 0; p < pos; ++p) {
      const double position = static_cast<double>(position_ids[b][p].item<int64_t>());
      for (int64_t i = 0; i < half; ++i) {
        // inv_freq is float32 (as Hugging Face's); the angle uses exactly that value.
        const double angle = position * static_cast<double>(inv[i].item<float>());
        auto a = x.index({b, p, at::indexing::Slice(), i});
        auto c = x.index({b, p, at::indexing::Slice(), i + half});
        expected.index_put_({b, p, at::indexing::Slice(), i},
                            a * std::cos(angle) - c * std::sin(angle));
        expected.index_put_({b, p, at::indexing::Slice(), i + half},
                            c * std::cos(angle) + a * std::sin(angle));
      }
    }
  }
  // float32 angles (as Hugging Face computes them), so compare at float32 precision.
  EXPECT_TRUE(tensors_close(out, expected, 1e-5, 1e-5));
  // Dimensions past `dims` pass through untouched.
  EXPECT_TRUE(
      tensors_close(out.narrow(-1, dims, d_head - dims), x.narrow(-1, dims, d_head - dims), 0, 0));
}

TEST(RopeScaling, Llama3KeepsHighFrequenciesInterpolatesTheBandAndDividesTheRest) {
  // The llama-tiny fixture's settings (its README gives the expected outcome).
  auto config = nlohmann::json::parse(R"({"rope_theta": 10000, "rope_scaling": {
      "rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
      "original_max_position_embeddings": 32}})");
  auto rope = detail::read_rope_config(config, "config.json", {"rope_theta"}, 1, {}, 1.0);
  EXPECT_EQ(rope.type, "llama3");
  auto base = detail::rotary_inverse_frequencies(16, 10000);
  auto scaled = detail::rope_inverse_frequencies(rope, 16);
  auto ratio = scaled / base;
  EXPECT_FLOAT_EQ(ratio[0].item<float>(), 1.0f);
  EXPECT_NEAR(ratio[1].item<float>(), 0.303, 0.002);
  for (int64_t i = 2; i < 8; ++i) EXPECT_FLOAT_EQ(ratio[i].item<float>(), 0.125f) << i;

  config["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  rope = detail::read_rope_config(config, "config.json", {"rope_theta"}, 1, {}, 1.0);
  EXPECT_TRUE(tensors_close(detail::rope_inverse_frequencies(rope, 16), base / 4, 0, 0));
}

TEST(Norm, RmsNormScalesByTheRootMeanSquareInFloat32) {
  at::manual_seed(5);
  detail::Norm norm;
  norm.rms = true;
  norm.eps = 1e-6;
  norm.weight = at::rand({8}) + 0.5;
  auto x = at::randn({2, 3, 8});
  auto x64 = x.to(at::kDouble);
  auto expected = norm.weight.to(at::kDouble) * x64 / at::sqrt(x64.pow(2).mean({-1}, true) + 1e-6);
  EXPECT_TRUE(tensors_close(norm(x), expected.to(at::kFloat), 1e-6, 1e-6));
  // bfloat16 input: normalised in float32, then rounded once.
  auto half = norm(x.to(at::kBFloat16));
  EXPECT_EQ(half.scalar_type(), at::kFloat);  // float32 weight times bf16: promoted, as in HF
}

TEST(GeluTanh, VectorPassIsATensWithinFloat32Rounding) {
  if (!cpu_has_avx512() && !cpu_has_avx2_fma())
    GTEST_SKIP() << "neither AVX-512 nor AVX2 with FMA on this CPU: at::gelu runs instead";
  // Against the float64 formula, relative to the exact value above 1e-6 (ATen's 1 + tanh loses
  // digits where x is below about -3; x / (1 + e^-2y) does not), and within rounding of ATen's.
  const auto x = at::cat({at::linspace(-30, 30, 200001), at::randn({1037}) * 4});
  const auto x64 = x.to(at::kDouble);
  const auto exact = 0.5 * x64 * (1 + at::tanh(0.7978845608028654 * (x64 + 0.044715 * x64.pow(3))));
  const auto ours = detail::gelu_tanh_fast(x);
  ASSERT_TRUE(ours.defined());
  const auto error = (ours.to(at::kDouble) - exact).abs() / exact.abs().clamp_min(1e-6);
  EXPECT_LT(error.max().item<double>(), 2e-6);
  EXPECT_TRUE(at::allclose(ours, at::gelu(x, "tanh"), 1e-6, 1e-6));
  // A transposed view, a length that is no multiple of sixteen, and the special values.
  const auto m = at::randn({37, 19}).t();
  EXPECT_TRUE(at::allclose(detail::gelu_tanh_fast(m), at::gelu(m, "tanh"), 1e-5, 1e-6));
  const auto special = detail::gelu_tanh_fast(
      at::tensor({0.0f, 1e-20f, INFINITY, NAN, 100.0f, -100.0f}, at::kFloat));
  EXPECT_EQ(special[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(special[1].item<float>(), 5e-21f);
  EXPECT_EQ(special[2].item<float>(), INFINITY);
  EXPECT_TRUE(std::isnan(special[3].item<float>()));
  EXPECT_EQ(special[4].item<float>(), 100.0f);
  EXPECT_LE(std::abs(special[5].item<float>()), 1e-30f);
  // Where it does not apply, ATen's own gelu runs.
  EXPECT_FALSE(detail::gelu_tanh_fast(x64).defined());
  EXPECT_FALSE(detail::gelu_tanh_fast(x.clone().set_requires_grad(true)).defined());
  EXPECT_TRUE(at::equal(detail::activation("gelu_new", x), ours));
}

TEST(MaskedSoftmax, OnePassGivesAtensScaleMaskAndSoftmax) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2 with FMA on this CPU: ATen's ops run instead";
  const auto aten = [](at::Tensor scores, const at::Tensor& allowed, double d1, double d2) {
    scores.div_(d1).div_(d2).masked_fill_(allowed.logical_not(),
                                          std::numeric_limits<float>::lowest());
    return at::softmax(scores, -1);
  };
  // Causal and padded rows of 3 x 13 keys and 37 keys (tails of every length), a query with no
  // allowed key, scores up to +-60 (masked entries must still be exactly 0).
  for (const int64_t keys : {13, 37, 128}) {
    const auto scores = at::randn({3, 4, keys, keys}) * 20;
    const auto position = at::arange(keys);
    auto allowed = position.view({1, keys}).le(position.view({keys, 1})).view({1, 1, keys, keys});
    auto keep = at::ones({3, 1, 1, keys}, at::kBool);
    keep[1].narrow(-1, 0, keys / 2).fill_(false);  // left padding: early queries see nothing
    allowed = allowed.logical_and(keep);
    at::Tensor ours = scores.clone();
    ASSERT_TRUE(detail::masked_softmax_(ours, allowed, 8.0f, 3.0f));
    const auto expected = aten(scores.clone(), allowed, 8.0, 3.0);
    EXPECT_TRUE(at::allclose(ours, expected, 1e-5, 1e-7))
        << keys << " keys: " << (ours - expected).abs().max().item<float>();
    // Masked keys of queries that see any key are exactly 0.
    const auto blocked = allowed.logical_not().logical_and(allowed.any(-1, true)).expand_as(ours);
    EXPECT_EQ(ours.masked_select(blocked).abs().max().item<float>(), 0.0f);
    EXPECT_TRUE(at::equal(ours[1][2][0], at::full({keys}, 1.0f / keys)))
        << "a query with no allowed key: uniform, as ATen's softmax of equal entries";
    EXPECT_TRUE(at::allclose(ours.sum(-1), at::ones({3, 4, keys}), 1e-6, 1e-6));
  }
  // Where it does not apply, nothing is touched.
  const auto allowed = at::ones({1, 1, 4, 4}, at::kBool);
  at::Tensor doubles = at::randn({1, 2, 4, 4}, at::kDouble);
  const auto before = doubles.clone();
  EXPECT_FALSE(detail::masked_softmax_(doubles, allowed, 1.0f, 1.0f));
  EXPECT_TRUE(at::equal(doubles, before));
  at::Tensor strided = at::randn({1, 2, 4, 8}).narrow(-1, 0, 4);
  EXPECT_FALSE(detail::masked_softmax_(strided, allowed, 1.0f, 1.0f));
  at::Tensor tracked = at::randn({1, 2, 4, 4}).set_requires_grad(true);
  EXPECT_FALSE(detail::masked_softmax_(tracked, allowed, 1.0f, 1.0f));
  at::Tensor floats = at::randn({1, 2, 4, 4});
  const auto floats_before = floats.clone();
  const auto transposed = at::ones({1, 1, 4, 4}, at::kBool).transpose(-1, -2);  // keys strided
  EXPECT_FALSE(detail::masked_softmax_(floats, transposed, 1.0f, 1.0f));
  EXPECT_FALSE(detail::masked_softmax_(floats, allowed.to(at::kFloat), 1.0f, 1.0f));
  EXPECT_TRUE(at::equal(floats, floats_before));
}

TEST(SiteTable, RowsTakeTheStepsAliasAndShapeUnlessTheyGiveTheirOwn) {
  using detail::Step;
  const detail::SiteTable sites(
      {{Step::kEmbed, "embed"}},
      {{Step::kResidPre, "layers.{L}:input"},
       {Step::kQ},
       {Step::kScores, nullptr, "[scores] (own shape)"},
       {Step::kProj, "layers.{L}.out", nullptr, "blocks.{L}.hook_mlp_out"}},
      {{Step::kFinalNorm, "norm"}});
  const HookPointTable table = sites.hook_points(2);
  ASSERT_EQ(table.size(), 1u + 2 * 4 + 1);
  const HookPoint& pre = table.at(table.resolve("layers.1:input"));
  EXPECT_EQ(pre.aliases, std::vector<std::string>{"blocks.1.hook_resid_pre"});
  EXPECT_EQ(pre.shape, "[batch, pos, d_model]");
  const HookPoint& q = table.at(table.resolve("blocks.0.attn.hook_q"));
  EXPECT_EQ(q.name, "blocks.0.attn.hook_q");  // no module: the alias is its name
  EXPECT_EQ(q.shape, "[batch, pos, head, d_head]");
  EXPECT_EQ(table.at(table.resolve("blocks.1.attn.hook_attn_scores")).shape,
            "[scores] (own shape)");
  EXPECT_EQ(table.resolve("blocks.1.hook_mlp_out"), table.resolve("layers.1.out"));
  EXPECT_EQ(table.resolve("ln_final.hook_normalized"), table.resolve("norm"));
  // Local indexes in table order; steps the architecture lacks have no site.
  EXPECT_EQ(sites.before(Step::kEmbed), 0);
  EXPECT_EQ(sites.block(Step::kScores), 2);
  EXPECT_EQ(sites.block(Step::kK), detail::kNoSite);
  EXPECT_EQ(sites.block(Step::kEmbed), detail::kNoSite);  // only where it was listed
  EXPECT_EQ(sites.after(Step::kFinalNorm), 0);
}

TEST(SiteTable, AStepListedTwiceInOnePartIsAProgrammingError) {
  using detail::Step;
  EXPECT_THROW(detail::SiteTable({}, {{Step::kQ}, {Step::kQ}}, {}), std::logic_error);
}

}  // namespace
}  // namespace llmscope::testing
