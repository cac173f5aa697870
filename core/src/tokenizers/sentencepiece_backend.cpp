#include "tokenizers/sentencepiece_backend.hpp"

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "llmscope/error.hpp"

namespace llmscope::detail {

namespace {

namespace fs = std::filesystem;

// The module beside this library (the build tree's lib/ or the installed libdir), opened once.
SentencePieceLoadFn module_entry() {
  static const SentencePieceLoadFn entry = [] {
    const fs::path here = boost::dll::this_line_location().parent_path();
    const fs::path module = here / kSentencePieceModule;
#ifdef LLMSCOPE_SANITIZED
    // The sanitizer runtimes refuse RTLD_DEEPBIND (they must see every allocation), and without
    // it the module's protobuf clashes with libtorch's: no SentencePiece in these builds.
    throw Error("cannot open " + module.string() +
                ": SentencePiece models are not available in a sanitizer build (the module needs "
                "RTLD_DEEPBIND, which AddressSanitizer refuses)");
#endif
    static boost::dll::shared_library library;
    try {
      library.load(module.string(), boost::dll::load_mode::rtld_local |
                                        boost::dll::load_mode::rtld_deepbind |
                                        boost::dll::load_mode::rtld_now);
    } catch (const std::exception& e) {
      throw Error(
          "cannot open " + module.string() +
          " (llmscope's SentencePiece module, installed beside libllmscope_core): " + e.what());
    }
    return library.get<SentencePieceBackend*(const std::string&, std::string*)>(
        kSentencePieceLoadSymbol);
  }();
  return entry;
}

}  // namespace

std::unique_ptr<SentencePieceBackend> load_sentencepiece(const std::string& model_bytes,
                                                         const fs::path& path) {
  std::string error;
  std::unique_ptr<SentencePieceBackend> backend(module_entry()(model_bytes, &error));
  if (!backend) {
    throw_file_error(path,
                     "not a SentencePiece model (expected a serialized ModelProto, as "
                     "tokenizer.model is): " +
                         error);
  }
  return backend;
}

std::string without_dummy_prefix(std::string model_bytes) {
  // ModelProto field 3 (normalizer_spec), length 2: NormalizerSpec field 3 (add_dummy_prefix),
  // varint 0.
  static constexpr char kNoDummyPrefix[] = {0x1A, 0x02, 0x18, 0x00};
  model_bytes.append(kNoDummyPrefix, sizeof kNoDummyPrefix);
  return model_bytes;
}

}  // namespace llmscope::detail
