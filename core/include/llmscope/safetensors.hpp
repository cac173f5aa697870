// Safetensors checkpoints: a validating, memory-mapped reader and an atomic writer.
// The reader maps the file once; tensors are views into the mapping where dtype, alignment and
// device allow (so loading a model needs about 1x its size), and the mapping lives as long as
// any tensor made from it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llmscope {

struct SafetensorsEntry {
  std::string name;
  std::string dtype_name;  // as written in the header: "F32", "BF16", "I64", ...
  at::ScalarType dtype;    // the matching ATen type
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the whole header; throws llmscope::Error naming the file and the rule
  // broken (header length, JSON, offsets, overlaps, byte length vs shape x dtype, dtype).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming the file

  // The tensor as stored, on the CPU: a view into the mapping when aligned, else a copy.
  at::Tensor tensor(const std::string& name) const;
  // The tensor converted to `dtype` on `device` (no copy when nothing changes). When it copies,
  // the file pages only this tensor occupies are released from memory: for reading each weight
  // once, as a model does (a view of the same tensor changed in place would lose the change).
  at::Tensor load(const std::string& name, at::ScalarType dtype,
                  at::Device device = at::Device(at::kCPU)) const;

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  const std::byte* data_ = nullptr;  // start of the data section inside the mapping
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One checkpoint stored as one or several safetensors files: a single model.safetensors, or a
// sharded checkpoint whose model.safetensors.index.json maps every tensor to its shard. Models
// read weights through this, so they never care how the checkpoint was split.
class SafetensorsSet {
 public:
  // A set of one file (implicit: anything taking a set takes a single file too).
  SafetensorsSet(SafetensorsFile file);  // NOLINT(google-explicit-constructor)
  // Reads the index ({"weight_map": {tensor: shard file}}) and maps each shard once. Throws
  // llmscope::Error naming the index or shard: bad JSON, a shard outside the index's folder or
  // missing, a tensor the index places in a shard that lacks it, a tensor in two shards.
  static SafetensorsSet open_index(const std::filesystem::path& index_path);

  // The single file, or the index of a sharded checkpoint: what errors about the set name.
  const std::filesystem::path& path() const { return path_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // Every tensor of every file, in file order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming the set
  // The file holding `name` (throws like entry()).
  const SafetensorsFile& file_of(const std::string& name) const;

  at::Tensor tensor(const std::string& name) const { return file_of(name).tensor(name); }
  at::Tensor load(const std::string& name, at::ScalarType dtype,
                  at::Device device = at::Device(at::kCPU)) const {
    return file_of(name).load(name, dtype, device);
  }

 private:
  SafetensorsSet() = default;
  void add(SafetensorsFile file);

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;  // tensor name -> position in files_
};

// Writes tensors (any device, contiguous or not) to `path` atomically: a temporary file in
// the same folder, then rename, so an interrupted write never leaves a file that looks whole.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32" <-> at::kFloat; throws llmscope::Error for names or types safetensors has no code for.
at::ScalarType safetensors_dtype(const std::string& name);
std::string safetensors_dtype_name(at::ScalarType type);

}  // namespace llmscope
