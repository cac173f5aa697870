// The SentencePiece library behind an interface (internal). Debian's libsentencepiece carries
// its own copy of protobuf-lite with exported symbols, which clash with the libprotobuf that
// libtorch loads (the process crashes in static initialisation when both are linked). So the
// library is linked only into a small module, libllmscope_sentencepiece.so (core/sentencepiece),
// which is opened with its own symbol scope (RTLD_LOCAL | RTLD_DEEPBIND) the first time a
// tokenizer.model is read; core talks to it through this interface.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmscope::detail {

// One loaded model. Calls never throw across the module boundary: failures come back as false
// with *error set.
class SentencePieceBackend {
 public:
  virtual ~SentencePieceBackend() = default;
  virtual bool encode(std::string_view text, std::vector<int>* ids, std::string* error) const = 0;
  virtual bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const = 0;
  virtual int piece_size() const = 0;
  virtual std::string id_to_piece(int id) const = 0;
  virtual bool is_control(int id) const = 0;
  virtual bool is_unknown(int id) const = 0;
  virtual bool is_byte(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// The module's one entry point: a model from the bytes of a tokenizer.model, or nullptr with
// *error set.
using SentencePieceLoadFn = SentencePieceBackend* (*)(const std::string& model_bytes,
                                                      std::string* error);
inline constexpr const char* kSentencePieceLoadSymbol = "llmscope_sentencepiece_load";
inline constexpr const char* kSentencePieceModule = "libllmscope_sentencepiece.so";

// Opens the module (once per process, beside libllmscope_core) and loads `model_bytes`; throws
// llmscope::Error naming `path` when the model is not one, or the module when it is missing.
std::unique_ptr<SentencePieceBackend> load_sentencepiece(const std::string& model_bytes,
                                                         const std::filesystem::path& path);

// `model_bytes` (a serialized ModelProto) with normalizer_spec.add_dummy_prefix set to false, as
// transformers' LlamaTokenizer(legacy=False) loads it. Protobuf merges a message field that
// appears twice and keeps the last value of a scalar, so appending
// `normalizer_spec { add_dummy_prefix: false }` is its MergeFrom without the generated classes.
std::string without_dummy_prefix(std::string model_bytes);

}  // namespace llmscope::detail
