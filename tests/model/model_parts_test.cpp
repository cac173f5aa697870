// The shared model parts on their own (models/model_parts.hpp): rotary position embedding
// against an independent formulation (rotation of the pairs (i, i + dims/2)), rope scaling,
// RMSNorm, the site tables architectures list their steps in, the matrix products spread over
// ATen's threads, and the AVX-512 GELU.
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <gmock/gmock.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/avx2_math.hpp"
#include "base/avx512_math.hpp"
#include "golden.hpp"
#include "models/gelu_tanh.hpp"
#include "models/masked_softmax.hpp"
#include "models/matmul.hpp"
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

// The products split over threads (columns, or matrices of a batch) give ATen's own results, for
// both weight layouts, with and without a bias, for a non-contiguous operand and below the size
// where splitting pays; and the BLAS gets its thread count back.
TEST(ThreadedMatmul, GivesATensOwnProducts) {
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  auto blas_threads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const int blas_before = blas_threads ? blas_threads() : 0;
  at::manual_seed(5);
  auto a = at::randn({96, 80}), b = at::randn({80, 300}), bias = at::randn({300});
  auto out_in = at::randn({300, 80});  // nn.Linear's [out, in]
  EXPECT_TRUE(at::allclose(detail::threaded_addmm(bias, a, b), at::addmm(bias, a, b), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(detail::threaded_addmm(at::Tensor(), a, out_in.t()),
                           at::mm(a, out_in.t()), 1e-5, 1e-5));
  auto small = at::randn({3, 4});
  EXPECT_TRUE(
      at::equal(detail::threaded_addmm(at::Tensor(), small, small.t()), at::mm(small, small.t())));
  // Batched, as attention uses them: [batch, heads, pos, d] by a permuted [batch, heads, d, pos].
  // Large enough (2^18 multiply-adds) to go matrix by matrix, as strided views.
  auto q = at::randn({2, 3, 64, 32}), k = at::randn({2, 64, 3, 32}).permute({0, 2, 3, 1});
  EXPECT_TRUE(at::allclose(detail::threaded_matmul(q, k), at::matmul(q, k), 1e-5, 1e-5));
  auto x3 = at::randn({2, 48, 80});  // [batch, pos, d] by a weight
  EXPECT_TRUE(at::allclose(detail::threaded_matmul(x3, b), at::matmul(x3, b), 1e-5, 1e-5));
  EXPECT_EQ(detail::threaded_matmul(x3, b).sizes(), (at::IntArrayRef{2, 48, 300}));
  // Written into a caller's strided view: z as [batch, pos, head, d] from [batch, head, pos, d].
  auto v = at::randn({2, 3, 64, 32});
  auto z = at::empty({2, 64, 3, 32});
  const auto pattern = at::softmax(at::randn({2, 3, 64, 64}), -1);
  EXPECT_EQ(detail::threaded_matmul(pattern, v, z.transpose(1, 2)).data_ptr(), z.data_ptr());
  EXPECT_TRUE(at::allclose(z, at::matmul(pattern, v).transpose(1, 2), 1e-5, 1e-5));
  // An out of another shape (z itself, not its [batch, head, pos, d] view) is refused by name.
  EXPECT_THAT([&] { detail::threaded_matmul(pattern, v, z); },
              ::testing::ThrowsMessage<c10::Error>(::testing::HasSubstr("threaded_matmul: out")));
  if (blas_threads) EXPECT_EQ(blas_threads(), blas_before);
  at::set_num_threads(saved);
}

TEST(ThreadedMatmul, AnItemsRowsAreTheSameBitsInAnyBatch) {
  // Items of 11 rows (a prompt's tokens), with a bias and without, at 1 and 2 threads: an item
  // alone and the same item at every place of a batch of 5 other ones give the same bits, as
  // do [batch, pos, d] products by a weight (the head). The probe's verdict is checked against
  // what the BLAS does: where it says rows are independent, they are so without the split.
  const int saved = at::get_num_threads();
  at::manual_seed(7);
  const auto w = at::randn({768, 700}), bias = at::randn({700});
  const auto prompt = at::randn({11, 768});
  for (const int threads : {1, 2}) {
    at::set_num_threads(threads);
    const auto alone = detail::threaded_addmm(bias, prompt, w, 1);
    const auto alone_head = detail::threaded_matmul(prompt.unsqueeze(0), w);
    for (int64_t place = 0; place < 5; ++place) {
      auto batch = at::randn({5, 11, 768});
      batch[place].copy_(prompt);
      const auto rows = batch.reshape({55, 768});
      EXPECT_TRUE(
          at::equal(detail::threaded_addmm(bias, rows, w, 5).narrow(0, place * 11, 11), alone))
          << "item " << place << " at " << threads << " threads";
      EXPECT_TRUE(at::equal(detail::threaded_matmul(batch, w)[place], alone_head[0]))
          << "head, item " << place << " at " << threads << " threads";
    }
  }
  if (detail::blas_rows_independent(at::kFloat)) {
    const auto rows = at::randn({40, 768});
    EXPECT_TRUE(at::equal(at::mm(rows, w).narrow(0, 3, 11), at::mm(rows.narrow(0, 3, 11), w)));
  }
  {
    // Apart or not, the same numbers to rounding; out of a forward pass the caller chooses.
    const detail::ItemsApart together(false);
    const auto rows = at::randn({55, 768});
    EXPECT_TRUE(at::allclose(detail::threaded_addmm(bias, rows, w, 5), at::addmm(bias, rows, w),
                             1e-4, 1e-4));
  }
  at::set_num_threads(saved);
}

TEST(ThreadedMatmul, LeavesGradientsToATen) {
  // Gradient ascent on embeddings (actmax) runs the threaded products with inputs that need
  // gradients; ATen's out= calls refuse those, so such products must stay ATen's own.
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  at::manual_seed(6);
  auto x = at::randn({96, 80}).set_requires_grad(true);
  auto w = at::randn({80, 300}), bias = at::randn({300});
  auto y = detail::threaded_addmm(bias, x, w);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(at::allclose(x.grad(), w.sum(1).expand({96, 80}), 1e-4, 1e-4));
  auto q = at::randn({2, 3, 40, 16}).set_requires_grad(true);
  auto k = at::randn({2, 3, 16, 40});
  detail::threaded_matmul(q, k).sum().backward();
  EXPECT_TRUE(at::allclose(q.grad(), k.sum(-1).unsqueeze(-2).expand({2, 3, 40, 16}), 1e-4, 1e-4));
  at::set_num_threads(saved);
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
