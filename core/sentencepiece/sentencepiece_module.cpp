// libllmscope_sentencepiece.so: the SentencePiece library behind core's SentencePieceBackend
// interface (see core/src/tokenizers/sentencepiece_backend.hpp for why it is a module of its own).
#include <sentencepiece_processor.h>

#include "tokenizers/sentencepiece_backend.hpp"

namespace {

class Backend final : public llmscope::detail::SentencePieceBackend {
 public:
  bool load(const std::string& bytes, std::string* error) {
    const auto status = sp_.LoadFromSerializedProto(bytes);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool encode(std::string_view text, std::vector<int>* ids, std::string* error) const override {
    const auto status = sp_.Encode(absl::string_view(text.data(), text.size()), ids);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  bool decode(const std::vector<int>& ids, std::string* text, std::string* error) const override {
    const auto status = sp_.Decode(ids, text);
    if (!status.ok()) *error = status.ToString();
    return status.ok();
  }
  int piece_size() const override { return sp_.GetPieceSize(); }
  std::string id_to_piece(int id) const override { return sp_.IdToPiece(id); }
  bool is_control(int id) const override { return sp_.IsControl(id); }
  bool is_unknown(int id) const override { return sp_.IsUnknown(id); }
  bool is_byte(int id) const override { return sp_.IsByte(id); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

extern "C" __attribute__((visibility("default"))) llmscope::detail::SentencePieceBackend*
llmscope_sentencepiece_load(const std::string& model_bytes, std::string* error) {
  try {
    auto backend = std::make_unique<Backend>();
    if (!backend->load(model_bytes, error)) return nullptr;
    return backend.release();
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}
