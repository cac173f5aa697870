// SHA-256 against FIPS 180-4 test vectors, streamed in uneven pieces.
#include <fstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/sha256.hpp"

namespace llmscope {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, StreamingInUnevenPiecesEqualsOneShot) {
  std::string million(1000000, 'a');
  Sha256 hash;
  size_t at = 0;
  for (size_t piece = 1; at < million.size(); piece = piece * 3 + 1) {
    size_t n = std::min(piece, million.size() - at);
    hash.update(million.data() + at, n);
    at += n;
  }
  EXPECT_EQ(hash.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FilesAndMissingFiles) {
  auto path = testing::scratch_dir("sha") / "x.bin";
  std::ofstream(path, std::ios::binary) << "abc";
  EXPECT_EQ(sha256_file(path), sha256_hex("abc"));
  EXPECT_THROW(sha256_file(path.parent_path() / "missing"), Error);
}

}  // namespace
}  // namespace llmscope
