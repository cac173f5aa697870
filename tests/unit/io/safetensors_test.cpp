// Safetensors reader and writer: the goldens, round trips, mapping lifetime, one test per
// validation rule (each file built by hand, byte by byte), and the atomic writer.
#include "llmscope/safetensors.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>

#include "golden.hpp"
#include "llmscope/error.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using ::llmscope::testing::golden_path;
using ::llmscope::testing::scratch_dir;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file as the format lays it out: u64 little-endian header length, header, data.
void write_safetensors_raw(const fs::path& path, const std::string& header, const std::string& data,
                           uint64_t header_length_override = 0) {
  uint64_t length = header_length_override != 0 ? header_length_override : header.size();
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  write_bytes(path, bytes + header + data);
}

std::vector<std::string> folder_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir)) names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = scratch_dir("safetensors"); }

  // Writes `header` + `data` to a fresh file and expects open() to fail with a message that
  // names the file and contains `phrase`.
  ::testing::AssertionResult open_fails_with(const std::string& header, const std::string& data,
                                             const std::string& phrase,
                                             uint64_t header_length_override = 0) {
    auto path = dir_ / "bad.safetensors";
    write_safetensors_raw(path, header, data, header_length_override);
    return file_fails_with(path, phrase);
  }

  static ::testing::AssertionResult file_fails_with(const fs::path& path,
                                                    const std::string& phrase) {
    try {
      SafetensorsFile::open(path);
    } catch (const Error& e) {
      std::string message = e.what();
      if (message.find(path.string()) == std::string::npos ||
          message.find(phrase) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message \"" << message << "\" lacks the path or \"" << phrase << "\"";
      }
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "open() accepted " << path;
  }

  fs::path dir_;
};

// ---- goldens --------------------------------------------------------------------------------

TEST_F(SafetensorsTest, OpensGoldenModel) {
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/model.safetensors"));
  ASSERT_TRUE(file.contains("transformer.h.0.attn.c_attn.weight"));
  const auto& entry = file.entry("transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(entry.dtype_name, "F32");
  EXPECT_EQ(entry.dtype, at::kFloat);
  EXPECT_EQ(entry.shape, (std::vector<int64_t>{64, 192}));
  EXPECT_EQ(file.metadata().at("format"), "pt");

  auto bias = file.tensor("transformer.h.0.attn.c_attn.bias");
  EXPECT_EQ(bias.sizes(), at::IntArrayRef({192}));
  EXPECT_EQ(bias.scalar_type(), at::kFloat);
  EXPECT_TRUE(bias.device().is_cpu());
  EXPECT_TRUE(bias.isfinite().all().item<bool>());

  // Entries come in data order.
  for (size_t i = 1; i < file.entries().size(); ++i) {
    EXPECT_LE(file.entries()[i - 1].end, file.entries()[i].begin);
  }
}

TEST_F(SafetensorsTest, OpensGoldenExpectationsWithIntegerTensors) {
  auto file = SafetensorsFile::open(golden_path("gpt2-tiny/expected.safetensors"));
  const auto& entry = file.entry("input_ids");
  EXPECT_EQ(entry.dtype_name, "I64");
  EXPECT_EQ(entry.shape, (std::vector<int64_t>{2, 16}));
  auto ids = file.tensor("input_ids");
  EXPECT_EQ(ids.scalar_type(), at::kLong);
  EXPECT_GE(ids.min().item<int64_t>(), 0);
  EXPECT_LT(ids.max().item<int64_t>(), 1000);  // gpt2-tiny's vocabulary
  EXPECT_EQ(file.tensor("logits").sizes(), at::IntArrayRef({2, 16, 1000}));
}

// Our writer lays files out exactly as Python's safetensors does, so re-saving a checkpoint
// Python wrote gives the same bytes.
TEST_F(SafetensorsTest, ResavingGoldenModelIsByteIdentical) {
  auto original_path = golden_path("gpt2-tiny/model.safetensors");
  auto file = SafetensorsFile::open(original_path);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& entry : file.entries())
    tensors.emplace_back(entry.name, file.tensor(entry.name));
  auto copy_path = dir_ / "model.safetensors";
  save_safetensors(copy_path, tensors, file.metadata());
  EXPECT_TRUE(read_bytes(copy_path) == read_bytes(original_path));
}

// ---- round trips ----------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripsEverySupportedDtypeAndMetadata) {
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 4})},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 3}).to(at::kBFloat16)},
      {"f64", at::randn({2, 2}, at::kDouble)},
      {"i64", at::arange(-3, 9, at::kLong).reshape({3, 4})},
      {"i32", at::arange(7, at::kInt)},
      {"i16", at::arange(-5, 5, at::kShort)},
      {"i8", at::arange(-8, 8, at::kChar)},
      {"u8", at::arange(250, 256, at::kLong).to(at::kByte)},
      {"bool", at::tensor({1, 0, 1}, at::kLong).to(at::kBool)},
      {"scalar", at::scalar_tensor(2.5)},
      {"empty", at::zeros({0, 3})},
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "héllo \"quoted\""}};
  auto path = dir_ / "all.safetensors";
  save_safetensors(path, tensors, metadata);

  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_EQ(file.entries().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    auto actual = file.tensor(name);
    EXPECT_EQ(actual.scalar_type(), expected.scalar_type());
    EXPECT_EQ(actual.sizes(), expected.sizes());
    EXPECT_TRUE(at::equal(actual, expected));
  }
  EXPECT_EQ(file.entry("bf16").dtype_name, "BF16");
  EXPECT_EQ(file.entry("bool").dtype_name, "BOOL");
}

TEST_F(SafetensorsTest, SavesNonContiguousTensorsByValue) {
  auto base = at::randn({4, 6});
  auto transposed = base.t();                              // [6, 4], strides (1, 6)
  auto strided = base.slice(/*dim=*/1, 0, 6, /*step=*/2);  // [4, 3]
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_FALSE(strided.is_contiguous());
  auto path = dir_ / "strided.safetensors";
  save_safetensors(path, {{"t", transposed}, {"s", strided}});

  auto file = SafetensorsFile::open(path);
  EXPECT_TRUE(at::equal(file.tensor("t"), transposed));
  EXPECT_TRUE(at::equal(file.tensor("s"), strided));
  EXPECT_TRUE(file.tensor("t").is_contiguous());
}

TEST_F(SafetensorsTest, HeaderIsPaddedAndOrderedLikePythonSafetensors) {
  auto path = dir_ / "layout.safetensors";
  save_safetensors(path,
                   {{"b", at::zeros({3}, at::kFloat)},
                    {"a", at::zeros({1}, at::kByte)},
                    {"ids", at::zeros({2}, at::kLong)},
                    {"c", at::zeros({2}, at::kFloat)}},
                   {{"format", "pt"}});
  std::string bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ((8 + length) % 8, 0u);
  std::string header = bytes.substr(8, length);
  // __metadata__ first; then widest dtype first, names sorted within a dtype.
  std::string expected = R"({"__metadata__":{"format":"pt"},)"
                         R"("ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                         R"("b":{"dtype":"F32","shape":[3],"data_offsets":[16,28]},)"
                         R"("c":{"dtype":"F32","shape":[2],"data_offsets":[28,36]},)"
                         R"("a":{"dtype":"U8","shape":[1],"data_offsets":[36,37]}})";
  EXPECT_EQ(header.substr(0, expected.size()), expected);
  EXPECT_EQ(header.find_first_not_of(' ', expected.size()), std::string::npos);
  EXPECT_EQ(bytes.size(), 8 + length + 37);

  auto file = SafetensorsFile::open(path);
  std::vector<std::string> order;
  for (const auto& entry : file.entries()) order.push_back(entry.name);
  EXPECT_EQ(order, (std::vector<std::string>{"ids", "b", "c", "a"}));
}

// ---- views into the mapping -----------------------------------------------------------------

TEST_F(SafetensorsTest, TensorsAreViewsIntoTheMappingAndOutliveTheFile) {
  auto path = golden_path("gpt2-tiny/model.safetensors");
  at::Tensor first;
  at::Tensor second;
  int64_t expected_distance = 0;
  {
    auto file = SafetensorsFile::open(path);
    const auto& a = file.entries()[0];
    const auto& b = file.entries()[1];
    first = file.tensor(a.name);
    second = file.tensor(b.name);
    expected_distance = static_cast<int64_t>(b.begin - a.begin);
    // Two views of one mapping sit as far apart in memory as in the file.
    const auto* pa = static_cast<const char*>(first.data_ptr());
    const auto* pb = static_cast<const char*>(second.data_ptr());
    EXPECT_EQ(pb - pa, expected_distance);
    // Asking again aliases the same bytes rather than copying.
    EXPECT_EQ(file.tensor(a.name).data_ptr(), first.data_ptr());
  }
  // The file object is gone; the mapping lives on in the tensors.
  auto reopened = SafetensorsFile::open(path);
  EXPECT_TRUE(at::equal(first, reopened.tensor(reopened.entries()[0].name).clone()));
  EXPECT_TRUE(at::equal(second, reopened.tensor(reopened.entries()[1].name).clone()));
}

TEST_F(SafetensorsTest, InPlaceWritesToAViewNeverReachTheFile) {
  auto path = dir_ / "cow.safetensors";
  save_safetensors(path, {{"x", at::ones({4})}});
  std::string before = read_bytes(path);
  {
    auto file = SafetensorsFile::open(path);
    auto view = file.tensor("x");
    view.add_(41);  // copy-on-write page: changes this process's copy only
    EXPECT_EQ(view[0].item<float>(), 42.0f);
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path).tensor("x"), at::ones({4})));
}

TEST_F(SafetensorsTest, MisalignedTensorsAreCopied) {
  // An F32 tensor at data offset 1, after one byte of U8: legal, but not 4-byte aligned.
  std::string header = R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  float values[2] = {1.5f, -2.0f};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(values), sizeof values);
  auto path = dir_ / "misaligned.safetensors";
  write_safetensors_raw(path, header, data);

  auto file = SafetensorsFile::open(path);
  auto pad = file.tensor("pad");
  auto x = file.tensor("x");
  EXPECT_EQ(pad[0].item<uint8_t>(), 7);
  EXPECT_NE(x.data_ptr(), static_cast<char*>(pad.data_ptr()) + 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data_ptr()) % alignof(float), 0u);
  EXPECT_TRUE(at::equal(x, at::tensor({1.5f, -2.0f})));
}

TEST_F(SafetensorsTest, LoadConvertsAndSkipsNoOpConversions) {
  auto path = dir_ / "load.safetensors";
  auto weights = at::randn({3, 5});
  save_safetensors(path, {{"w", weights}, {"ids", at::arange(4, at::kLong)}});
  auto file = SafetensorsFile::open(path);

  auto same = file.load("w", at::kFloat);
  EXPECT_EQ(same.data_ptr(), file.tensor("w").data_ptr());

  auto doubled = file.load("w", at::kDouble);
  EXPECT_EQ(doubled.scalar_type(), at::kDouble);
  EXPECT_TENSOR_CLOSE(doubled, weights.to(at::kDouble), 0.0, 0.0);

  auto half = file.load("w", at::kHalf, at::Device(at::kCPU));
  EXPECT_EQ(half.scalar_type(), at::kHalf);
  EXPECT_TENSOR_CLOSE(half, weights, 1e-2, 1e-2);

  auto ids = file.load("ids", at::kFloat);
  EXPECT_TRUE(at::equal(ids, at::arange(4, at::kFloat)));
}

// A converting load gives the pages only its tensor occupies back to the kernel (so converting a
// checkpoint never holds it twice); what is read afterwards, and a neighbour changed in place on
// a shared page, are unaffected.
TEST_F(SafetensorsTest, ConvertingLoadsReleaseOnlyTheirOwnPages) {
  auto path = dir_ / "release.safetensors";
  const auto a = at::randn({100}), big = at::randn({3, 10000}), c = at::randn({50});
  save_safetensors(path, {{"a", a}, {"big", big}, {"c", c}});
  auto file = SafetensorsFile::open(path);
  auto view_a = file.tensor("a");
  view_a.add_(1);  // a copy-on-write page that big's first bytes may share

  auto converted = file.load("big", at::kDouble);
  EXPECT_TENSOR_CLOSE(converted, big.to(at::kDouble), 0.0, 0.0);
  EXPECT_TRUE(at::equal(file.tensor("big"), big));  // released pages fault in from the file
  EXPECT_TRUE(at::equal(view_a, a + 1));
  EXPECT_TRUE(at::equal(file.tensor("c"), c));
  EXPECT_TENSOR_CLOSE(file.load("big", at::kDouble), big.to(at::kDouble), 0.0, 0.0);
}

TEST_F(SafetensorsTest, UnknownTensorNameNamesFileAndSuggestsCloseNames) {
  auto path = golden_path("gpt2-tiny/model.safetensors");
  auto file = SafetensorsFile::open(path);
  EXPECT_FALSE(file.contains("transformer.h.0.ln1.weight"));
  try {
    file.tensor("transformer.h.0.ln1.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("'transformer.h.0.ln1.weight'"), std::string::npos) << message;
    EXPECT_NE(message.find("transformer.h.0.ln_1.weight"), std::string::npos) << message;
  }
}

// ---- dtype names ----------------------------------------------------------------------------

TEST(SafetensorsDtype, NamesMapBothWays) {
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(safetensors_dtype_name(safetensors_dtype(name)), name);
  }
  EXPECT_EQ(safetensors_dtype("BF16"), at::kBFloat16);
  EXPECT_EQ(safetensors_dtype_name(at::kBool), "BOOL");
}

TEST(SafetensorsDtype, RejectsUnknownAndUnsupportedTypes) {
  try {
    safetensors_dtype("F8_E4M3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("BF16"), std::string::npos) << e.what();
  }
  try {
    safetensors_dtype("float32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown dtype 'float32'"), std::string::npos);
  }
  EXPECT_THROW(safetensors_dtype_name(at::kComplexFloat), Error);
}

// ---- validation: one test per rule ----------------------------------------------------------

const std::string kGoodEntry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
const std::string kEightBytes(8, '\0');

TEST_F(SafetensorsTest, RejectsMissingFile) {
  EXPECT_TRUE(file_fails_with(dir_ / "absent.safetensors", "cannot open"));
}

TEST_F(SafetensorsTest, RejectsEmptyFile) {
  auto path = dir_ / "empty.safetensors";
  write_bytes(path, "");
  EXPECT_TRUE(file_fails_with(path, "file is 0 bytes, too short"));
}

TEST_F(SafetensorsTest, RejectsFileShorterThanLengthPrefix) {
  auto path = dir_ / "short.safetensors";
  write_bytes(path, std::string("\x10\0\0", 3));
  EXPECT_TRUE(file_fails_with(path, "file is 3 bytes, too short"));
}

TEST_F(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  EXPECT_TRUE(open_fails_with("{}", "", "header length 1000 runs past the end of the file", 1000));
  // A length near 2^64 must not wrap around in the bounds check.
  EXPECT_TRUE(open_fails_with("{}", "", "runs past the end of the file", UINT64_MAX));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotJson) {
  EXPECT_TRUE(open_fails_with(R"({"x": {"dtype": "F32",)", "", "header is not valid JSON"));
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotAnObject) {
  EXPECT_TRUE(open_fails_with("[1, 2]", "", "header is array, expected a JSON object"));
}

TEST_F(SafetensorsTest, RejectsMetadataThatIsNotAnObjectOfStrings) {
  EXPECT_TRUE(open_fails_with(R"({"__metadata__":{"epoch":3}})", "",
                              "__metadata__ must be an object of strings"));
  EXPECT_TRUE(
      open_fails_with(R"({"__metadata__":"pt"})", "", "__metadata__ must be an object of strings"));
}

TEST_F(SafetensorsTest, RejectsEntryThatIsNotAnObject) {
  EXPECT_TRUE(open_fails_with(R"({"x":[0,8]})", kEightBytes,
                              "tensor 'x': header entry is array, expected an object"));
}

TEST_F(SafetensorsTest, RejectsEntryMissingDtype) {
  EXPECT_TRUE(open_fails_with(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", kEightBytes,
                              "tensor 'x': header entry is missing 'dtype'"));
}

TEST_F(SafetensorsTest, RejectsEntryMissingShape) {
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","data_offsets":[0,8]}})", kEightBytes,
                              "tensor 'x': header entry is missing 'shape'"));
}

TEST_F(SafetensorsTest, RejectsEntryMissingDataOffsets) {
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[2]}})", kEightBytes,
                              "tensor 'x': header entry is missing 'data_offsets'"));
}

TEST_F(SafetensorsTest, RejectsShapeThatIsNotNonNegativeIntegers) {
  const std::string phrase = "is not an array of non-negative integers";
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                              kEightBytes, "tensor 'x': shape [-2] " + phrase));
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})",
                              kEightBytes, phrase));
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})",
                              kEightBytes, phrase));
}

TEST_F(SafetensorsTest, RejectsBadDataOffsets) {
  const std::string phrase = "must be two non-negative integers [begin, end] with begin <= end";
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
                              kEightBytes, "tensor 'x': data_offsets [8,0] " + phrase));
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
                              kEightBytes, phrase));
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})",
                              kEightBytes, phrase));
}

TEST_F(SafetensorsTest, RejectsOffsetsBeyondDataSection) {
  EXPECT_TRUE(open_fails_with(
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'),
      "tensor 'x': data_offsets end 8 is beyond the data section (4 bytes)"));
}

TEST_F(SafetensorsTest, RejectsByteLengthThatDisagreesWithShape) {
  EXPECT_TRUE(
      open_fails_with(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", kEightBytes,
                      "tensor 'x': data_offsets span 8 bytes but shape [3] of F32 needs 12"));
  // A shape whose byte count overflows 64 bits cannot sneak past the check.
  EXPECT_TRUE(open_fails_with(
      R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", "",
      "needs more than 2^64"));
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_TRUE(open_fails_with(header, std::string(12, '\0'),
                              "tensors 'a' (bytes 0..8) and 'b' (bytes 4..12) overlap"));
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  EXPECT_TRUE(open_fails_with(R"({"x":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})",
                              kEightBytes,
                              "tensor 'x': unknown dtype 'F33' (supported: F64, F32, F16, BF16"));
}

TEST_F(SafetensorsTest, RejectsKnownButUnsupportedDtypes) {
  for (const char* name : {"F8_E4M3", "F8_E5M2", "U16", "U32", "U64"}) {
    SCOPED_TRACE(name);
    std::string header =
        std::string(R"({"x":{"dtype":")") + name + R"(","shape":[1],"data_offsets":[0,0]}})";
    EXPECT_TRUE(open_fails_with(
        header, "",
        "dtype '" + std::string(name) + "' is not supported by llmscope (supported: F64"));
  }
}

TEST_F(SafetensorsTest, AcceptsEmptyTensorsAndEmptyHeader) {
  EXPECT_EQ(SafetensorsFile::open([&] {
              auto path = dir_ / "nothing.safetensors";
              write_safetensors_raw(path, "{}      ", "");
              return path;
            }())
                .entries()
                .size(),
            0u);
  // Zero-byte tensors at the same offset as real ones overlap nothing.
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}})";
  auto path = dir_ / "zero.safetensors";
  write_safetensors_raw(path, header, kEightBytes);
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.tensor("e").sizes(), at::IntArrayRef({0, 5}));
}

// ---- the atomic writer ----------------------------------------------------------------------

TEST_F(SafetensorsTest, WriterLeavesNoTemporaryFileAndCreatesParentFolders) {
  auto path = dir_ / "nested" / "deeper" / "out.safetensors";
  save_safetensors(path, {{"x", at::ones({2})}});
  EXPECT_EQ(folder_listing(path.parent_path()), (std::vector<std::string>{"out.safetensors"}));
  EXPECT_TRUE(at::equal(SafetensorsFile::open(path).tensor("x"), at::ones({2})));
}

TEST_F(SafetensorsTest, FailedWriteKeepsTheExistingFile) {
  auto path = dir_ / "model.safetensors";
  save_safetensors(path, {{"good", at::arange(3, at::kFloat)}});
  std::string before = read_bytes(path);

  try {
    save_safetensors(path, {{"ok", at::ones({2})}, {"z", at::ones({2}, at::kComplexFloat)}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("cannot save tensor 'z' of type ComplexFloat"), std::string::npos)
        << message;
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"model.safetensors"}));
}

TEST_F(SafetensorsTest, FailureAfterTheTemporaryFileExistsRemovesIt) {
  // The target is a folder, so the final rename fails after all bytes were written.
  auto path = dir_ / "taken.safetensors";
  fs::create_directories(path / "inside");
  try {
    save_safetensors(path, {{"x", at::ones({2})}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find("rename"), std::string::npos) << message;
  }
  EXPECT_EQ(folder_listing(dir_), (std::vector<std::string>{"taken.safetensors"}));
}

TEST_F(SafetensorsTest, WriterRejectsDuplicateAndReservedNames) {
  auto path = dir_ / "dup.safetensors";
  EXPECT_THROW(save_safetensors(path, {{"x", at::ones({1})}, {"x", at::ones({1})}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", at::ones({1})}}), Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(folder_listing(dir_).empty());
}

}  // namespace
}  // namespace llmscope
