// Safetensors reader (validating, memory-mapped) and atomic writer.
// Format: u64 little-endian header length N, N bytes of JSON header, then the data section;
// every offset in the header is relative to the start of the data section.
#include "llmscope/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

// Tensor bytes are handed to ATen as they lie in the file, and safetensors is little-endian.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llmscope's safetensors reader assumes a little-endian host"
#endif

namespace llmscope {

namespace fs = std::filesystem;

// The whole file, mapped once. MAP_PRIVATE + PROT_WRITE makes the pages copy-on-write: an
// accidental in-place op on a view changes this process's copy only, never the file, and
// cannot fault on a read-only page.
struct SafetensorsFile::Mapping {
  void* address = MAP_FAILED;
  size_t size = 0;

  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address != MAP_FAILED) munmap(address, size);
  }
  const std::byte* bytes() const { return static_cast<const std::byte*>(address); }
};

namespace {

// "no tensor named 'x' (closest: ...)", naming the file or index `path`.
[[noreturn]] void throw_no_tensor(const std::filesystem::path& path, const std::string& name,
                                  const std::vector<SafetensorsEntry>& entries) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const auto& e : entries) names.push_back(e.name);
  std::string message = "no tensor named '" + name + "'";
  auto close = closest_names(name, names, 3);
  if (!close.empty()) message += " (closest: " + join(close) + ")";
  throw_file_error(path, message);
}

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
};

// Supported codes, widest first (the order used in messages).
constexpr DtypeInfo kSupported[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

// Codes the format defines that ATen 1.13 has no type for; named so the error can say
// "not supported" rather than "unknown" (a real checkpoint, just not one we can read).
constexpr const char* kKnownUnsupported[] = {
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "U16", "U32", "U64", "C64", "C128",
};

std::string supported_list() {
  std::vector<std::string> names;
  for (const auto& d : kSupported) names.emplace_back(d.name);
  return join(names);
}

std::optional<at::ScalarType> find_dtype(const std::string& name) {
  for (const auto& d : kSupported) {
    if (name == d.name) return d.type;
  }
  return std::nullopt;
}

std::optional<std::string> find_dtype_name(at::ScalarType type) {
  for (const auto& d : kSupported) {
    if (type == d.type) return std::string(d.name);
  }
  return std::nullopt;
}

// Why `name` cannot be read, for messages: unknown codes and known-but-unsupported ones differ.
std::string dtype_problem(const std::string& name) {
  for (const char* known : kKnownUnsupported) {
    if (name == known) {
      return "dtype '" + name + "' is not supported by llmscope (supported: " + supported_list() +
             ")";
    }
  }
  return "unknown dtype '" + name + "' (supported: " + supported_list() + ")";
}

// Position in the format's own dtype enum (BOOL < U8 < I8 < I16 < F16 < BF16 < I32 < F32 < F64
// < I64). The Python writer sorts by this, descending, then by name; doing the same keeps our
// files byte-identical to theirs and puts wider types first, so every tensor stays aligned.
int writer_rank(at::ScalarType type) {
  constexpr at::ScalarType kEnumOrder[] = {at::kBool,   at::kByte,     at::kChar, at::kShort,
                                           at::kHalf,   at::kBFloat16, at::kInt,  at::kFloat,
                                           at::kDouble, at::kLong};
  const auto* it = std::find(std::begin(kEnumOrder), std::end(kEnumOrder), type);
  return static_cast<int>(it - std::begin(kEnumOrder));
}

std::string errno_text() { return std::strerror(errno); }

// Parses one header entry; `data_size` bounds the offsets.
SafetensorsEntry parse_entry(const fs::path& path, const std::string& name,
                             const nlohmann::json& value, uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) {
    throw_file_error(path, where + ": header entry is " + value.type_name() +
                               ", expected an object with dtype, shape and data_offsets");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) {
      throw_file_error(path, where + ": header entry is missing '" + key +
                                 "' (expected dtype, shape and data_offsets)");
    }
  }

  SafetensorsEntry entry;
  entry.name = name;

  const auto& dtype = value.at("dtype");
  if (!dtype.is_string()) {
    throw_file_error(
        path, where + ": dtype is " + dtype.type_name() + ", expected a string such as \"F32\"");
  }
  entry.dtype_name = dtype.get<std::string>();
  auto type = find_dtype(entry.dtype_name);
  if (!type) throw_file_error(path, where + ": " + dtype_problem(entry.dtype_name));
  entry.dtype = *type;

  // is_number_unsigned() is true only for integers parsed without a sign: it rejects negatives
  // and floats like 2.0 in one test.
  const auto& shape = value.at("shape");
  bool shape_ok = shape.is_array();
  if (shape_ok) {
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() ||
          dim.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        shape_ok = false;
        break;
      }
      entry.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    }
  }
  if (!shape_ok) {
    throw_file_error(
        path, where + ": shape " + shape.dump() + " is not an array of non-negative integers");
  }

  const auto& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned() || offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>()) {
    throw_file_error(path, where + ": data_offsets " + offsets.dump() +
                               " must be two non-negative integers [begin, end] with begin <= end");
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.end > data_size) {
    throw_file_error(path, where + ": data_offsets end " + std::to_string(entry.end) +
                               " is beyond the data section (" + std::to_string(data_size) +
                               " bytes); the file may be truncated");
  }

  // Checked multiplication: a hostile shape must not wrap around to a matching byte count.
  uint64_t expected = at::elementSize(entry.dtype);
  bool overflow = false;
  for (int64_t dim : entry.shape) {
    overflow = overflow || __builtin_mul_overflow(expected, static_cast<uint64_t>(dim), &expected);
  }
  const uint64_t length = entry.end - entry.begin;
  if (overflow || length != expected) {
    throw_file_error(path,
                     where + ": data_offsets span " + std::to_string(length) + " bytes but shape " +
                         shape_string(entry.shape) + " of " + entry.dtype_name + " needs " +
                         (overflow ? std::string("more than 2^64") : std::to_string(expected)));
  }
  return entry;
}

// write(2) until done: it may write less than asked, and is capped near 2 GiB per call.
void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("write failed: " + errno_text());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  SafetensorsFile file;
  file.path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_file_error(path, "cannot open safetensors file: " + errno_text());
  struct stat info {};
  if (fstat(fd, &info) != 0) {
    std::string why = errno_text();
    ::close(fd);
    throw_file_error(path, "cannot stat safetensors file: " + why);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw_file_error(path, "not a regular file, expected a .safetensors checkpoint");
  }
  const auto file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw_file_error(path,
                     "file is " + std::to_string(file_size) +
                         " bytes, too short for the 8-byte header length of a safetensors file");
  }

  auto mapping = std::make_shared<Mapping>();
  mapping->address = mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const std::string mmap_error = mapping->address == MAP_FAILED ? errno_text() : "";
  ::close(fd);  // the mapping keeps the file's pages; the descriptor is no longer needed
  if (mapping->address == MAP_FAILED) throw_file_error(path, "cannot map file: " + mmap_error);
  mapping->size = file_size;
  const std::byte* bytes = mapping->bytes();

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_size > file_size - 8) {
    throw_file_error(path, "header length " + std::to_string(header_size) +
                               " runs past the end of the file (" + std::to_string(file_size - 8) +
                               " bytes follow the length); not a safetensors file, or truncated");
  }
  const uint64_t data_size = file_size - 8 - header_size;

  nlohmann::json header;
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_size);
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) {
    throw_file_error(path, std::string("header is ") + header.type_name() +
                               ", expected a JSON object of tensor entries");
  }

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      bool ok = value.is_object();
      if (ok) {
        for (const auto& [meta_key, meta_value] : value.items()) {
          if (!meta_value.is_string()) {
            ok = false;
            break;
          }
          file.metadata_[meta_key] = meta_value.get<std::string>();
        }
      }
      if (!ok) {
        throw_file_error(path, "__metadata__ must be an object of strings, got " + value.dump());
      }
      continue;
    }
    file.entries_.push_back(parse_entry(path, key, value, data_size));
  }

  // Entries are kept in data order (by begin offset, then name): the order the bytes lie in the
  // file, which for files written by safetensors is also the header's order.
  std::sort(file.entries_.begin(), file.entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
  });
  // In that order an overlap shows as a begin before the furthest end seen so far. Empty
  // tensors hold no bytes, so they overlap nothing.
  const SafetensorsEntry* furthest = nullptr;
  for (const auto& entry : file.entries_) {
    if (entry.begin == entry.end) continue;
    if (furthest != nullptr && entry.begin < furthest->end) {
      throw_file_error(
          path, "tensors '" + furthest->name + "' (bytes " + std::to_string(furthest->begin) +
                    ".." + std::to_string(furthest->end) + ") and '" + entry.name + "' (bytes " +
                    std::to_string(entry.begin) + ".." + std::to_string(entry.end) + ") overlap");
    }
    if (furthest == nullptr || entry.end > furthest->end) furthest = &entry;
  }

  for (size_t i = 0; i < file.entries_.size(); ++i) file.index_[file.entries_[i].name] = i;
  file.data_ = bytes + 8 + header_size;
  file.mapping_ = std::move(mapping);
  return file;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return entries_[it->second];

  throw_no_tensor(path_, name, entries_);
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const auto& e = entry(name);
  // const_cast: from_blob wants void*; the pages are private copy-on-write, so writes are safe.
  void* data = const_cast<std::byte*>(data_ + e.begin);
  auto options = at::TensorOptions().dtype(e.dtype).device(at::kCPU);
  if (reinterpret_cast<uintptr_t>(data) % at::elementSize(e.dtype) == 0) {
    // The deleter owns a reference to the mapping, so it stays mapped while any view lives.
    std::shared_ptr<Mapping> keep = mapping_;
    return at::from_blob(
        data, e.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  // Misaligned (a hand-written or foreign file): ATen kernels may assume alignment, so copy.
  at::Tensor copy = at::empty(e.shape, options);
  if (e.end > e.begin) std::memcpy(copy.data_ptr(), data, e.end - e.begin);  // empty: null ptr
  return copy;
}

at::Tensor SafetensorsFile::load(const std::string& name, at::ScalarType dtype,
                                 at::Device device) const {
  // Tensor::to returns the tensor itself when device and dtype already match.
  const at::Tensor stored = tensor(name);
  at::Tensor out = stored.to(device, dtype);
  if (out.is_same(stored)) return out;
  // A converted copy: give the pages that hold only this tensor's bytes back to the kernel, so
  // converting a checkpoint (bf16 -> float32, float32 -> bf16) never holds it twice. The pages
  // are private and unwritten (a weight is read once), so a later read re-faults them from the
  // file; pages shared with a neighbouring tensor are left alone.
  const auto& e = entry(name);
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data_ + e.begin);
  const auto end = reinterpret_cast<uintptr_t>(data_ + e.end);
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  return out;
}

// ---- sharded checkpoints ------------------------------------------------------------------

SafetensorsSet::SafetensorsSet(SafetensorsFile file) : path_(file.path()) { add(std::move(file)); }

void SafetensorsSet::add(SafetensorsFile file) {
  const size_t position = files_.size();
  for (const auto& e : file.entries()) {
    auto [it, inserted] = index_.emplace(e.name, position);
    if (!inserted) {
      throw_file_error(file.path(), "tensor '" + e.name + "' is also in " +
                                        files_[it->second].path().filename().string() +
                                        " (each tensor must be in exactly one shard)");
    }
    entries_.push_back(e);
  }
  files_.push_back(std::move(file));
}

SafetensorsSet SafetensorsSet::open_index(const fs::path& index_path) {
  std::ifstream in(index_path);
  if (!in) throw_file_error(index_path, "cannot open (expected a sharded checkpoint's index)");
  nlohmann::json index;
  try {
    in >> index;
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(index_path, std::string("not valid JSON: ") + e.what());
  }
  const char* expected = "expected {\"weight_map\": {tensor name: shard file name, ...}}";
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw_file_error(index_path, expected);
  }
  const auto& weight_map = index["weight_map"];
  if (weight_map.empty()) throw_file_error(index_path, "weight_map is empty (no tensors)");

  std::map<std::string, std::vector<std::string>> shards;  // shard file -> tensors placed in it
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (!shard.is_string())
      throw_file_error(index_path, "weight_map['" + tensor + "'] is not a string; " + expected);
    const auto name = shard.get<std::string>();
    const fs::path relative(name);
    bool inside = !name.empty() && relative.is_relative();
    for (const auto& part : relative) inside = inside && part != "..";
    if (!inside) {
      throw_file_error(index_path,
                       "weight_map places '" + tensor + "' in '" + name +
                           "', which is not a file name inside the checkpoint's folder");
    }
    shards[name].push_back(tensor);
  }

  SafetensorsSet set;
  set.path_ = index_path;
  const fs::path folder = index_path.parent_path();
  for (const auto& [name, tensors] : shards) {
    const fs::path shard_path = folder / name;
    if (!fs::exists(shard_path)) {
      throw_file_error(shard_path,
                       "not found (a shard listed in " + index_path.filename().string() + ")");
    }
    set.add(SafetensorsFile::open(shard_path));
    const auto& added = set.files_.back();
    for (const auto& tensor : tensors) {
      if (!added.contains(tensor)) {
        throw_file_error(shard_path, "has no tensor '" + tensor + "' (" +
                                         index_path.filename().string() +
                                         " places it in this shard)");
      }
    }
  }
  return set;
}

const SafetensorsEntry& SafetensorsSet::entry(const std::string& name) const {
  return file_of(name).entry(name);
}

const SafetensorsFile& SafetensorsSet::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it != index_.end()) return files_[it->second];
  if (files_.size() == 1) files_.front().entry(name);  // throws with the file's own message
  throw_no_tensor(path_, name, entries_);
}

// ---- writing ------------------------------------------------------------------------------

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    std::string dtype_name;
    at::Tensor data;  // CPU, contiguous
  };
  // Everything that can be rejected is checked before a byte is written.
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw_file_error(path, "'__metadata__' cannot name a tensor");
    if (!seen.insert(name).second) throw_file_error(path, "tensor '" + name + "' is given twice");
    if (!tensor.defined()) throw_file_error(path, "tensor '" + name + "' is undefined");
    auto dtype_name = find_dtype_name(tensor.scalar_type());
    if (!dtype_name) {
      throw_file_error(path, "cannot save tensor '" + name + "' of type " +
                                 std::string(c10::toString(tensor.scalar_type())) +
                                 ": safetensors supports " + supported_list());
    }
    at::Tensor cpu = tensor.detach().to(at::kCPU).resolve_neg().contiguous();
    items.push_back({name, *dtype_name, cpu});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const int ra = writer_rank(a.data.scalar_type());
    const int rb = writer_rank(b.data.scalar_type());
    return ra != rb ? ra > rb : a.name < b.name;
  });

  // ordered_json keeps insertion order: __metadata__ first, then tensors in data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& item : items) {
    const uint64_t size = item.data.nbytes();
    header[item.name] = {{"dtype", item.dtype_name},
                         {"shape", item.data.sizes().vec()},
                         {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(path, std::string("cannot encode header (names must be UTF-8): ") + e.what());
  }
  // Spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header_text.size() >> (8 * i));

  const fs::path parent = path.parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) throw_file_error(path, "cannot create folder " + parent.string() + ": " + ec.message());

  const fs::path temp = temp_path_beside(path);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw_file_error(path, "cannot create " + temp.string() + ": " + errno_text());
  try {
    write_all(fd, length, sizeof length);
    write_all(fd, header_text.data(), header_text.size());
    for (const auto& item : items) write_all(fd, item.data.data_ptr(), item.data.nbytes());
    int rc = ::close(fd);
    fd = -1;
    if (rc != 0) throw std::runtime_error("close failed: " + errno_text());
  } catch (const std::exception& e) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    throw_file_error(path, std::string("cannot write safetensors file: ") + e.what());
  }
  commit_atomic(temp, path);
}

at::ScalarType safetensors_dtype(const std::string& name) {
  auto type = find_dtype(name);
  if (!type) throw Error(dtype_problem(name));
  return *type;
}

std::string safetensors_dtype_name(at::ScalarType type) {
  auto name = find_dtype_name(type);
  if (!name) {
    throw Error("ATen type " + std::string(c10::toString(type)) +
                " has no safetensors code (supported: " + supported_list() + ")");
  }
  return *name;
}

}  // namespace llmscope
