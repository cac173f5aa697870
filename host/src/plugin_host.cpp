#include "llmscope/plugin_host.hpp"

#define BOOST_DLL_USE_STD_FS
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <cstdlib>
#include <sstream>

#include "llmscope/text_match.hpp"

namespace llmscope::plugin {

struct LoadedPlugin::Library {
  boost::dll::shared_library library;
};

LoadedPlugin::~LoadedPlugin() {
  module_.reset();   // plugin code runs its destructors while the library is still mapped
  library_.reset();  // then the library goes
}

Value LoadedPlugin::call(const Function& fn, const List& args) const {
  try {
    return fn.call(args);
  } catch (const ArgumentError&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error("plugin '" + info_.name + "' function '" + fn.name +
                "': " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Error("plugin '" + info_.name + "' function '" + fn.name + "': " + e.what());
  } catch (...) {
    throw Error("plugin '" + info_.name + "' function '" + fn.name +
                "' threw a non-standard exception");
  }
}

namespace {

std::vector<std::filesystem::path> split_path_list(const char* text) {
  std::vector<std::filesystem::path> out;
  if (!text) return out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ':')) {
    if (!item.empty()) out.emplace_back(item);
  }
  return out;
}

// The descriptor's checks, in the order of the questions a user would ask.
std::string refusal(const Descriptor& d) {
  std::ostringstream why;
  if (d.abi_major != kAbiMajor) {
    why << "plugin ABI " << d.abi_major << "." << d.abi_minor
        << " is incompatible with this host's ABI " << kAbiMajor << "." << kAbiMinor
        << " (major versions differ; rebuild the plugin against this SDK)";
  } else if (d.abi_minor > kAbiMinor) {
    why << "plugin needs ABI " << d.abi_major << "." << d.abi_minor << " but this host provides "
        << kAbiMajor << "." << kAbiMinor << " (update llmscope)";
  } else if (d.torch_major != TORCH_VERSION_MAJOR || d.torch_minor != TORCH_VERSION_MINOR) {
    why << "plugin was built against libtorch " << d.torch_major << "." << d.torch_minor
        << ", this host uses " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR;
  } else if (d.cxx11_abi != _GLIBCXX_USE_CXX11_ABI) {
    why << "plugin was built with _GLIBCXX_USE_CXX11_ABI=" << d.cxx11_abi << ", this host with "
        << _GLIBCXX_USE_CXX11_ABI;
  } else if (!d.name || !*d.name) {
    why << "plugin descriptor has no name";
  }
  return why.str();
}

}  // namespace

PluginHost::PluginHost(std::vector<std::filesystem::path> extra) : search_path_(std::move(extra)) {
  for (auto& p : split_path_list(std::getenv("LLMSCOPE_PLUGIN_PATH"))) search_path_.push_back(p);
#ifdef LLMSCOPE_BUILD_PLUGIN_DIR
  search_path_.emplace_back(LLMSCOPE_BUILD_PLUGIN_DIR);
#endif
  std::error_code ec;
  auto exe = boost::dll::program_location(ec);
  if (!ec) search_path_.push_back(exe.parent_path().parent_path() / "lib" / "llmscope" / "plugins");
}

std::string PluginHost::plugin_name_of(const std::filesystem::path& file) {
  if (file.extension() != ".so") return "";
  std::string stem = file.stem().string();
  for (const std::string prefix : {"libllmscope_plugin_", "llmscope_plugin_"}) {
    if (stem.rfind(prefix, 0) == 0 && stem.size() > prefix.size())
      return stem.substr(prefix.size());
  }
  return "";
}

std::shared_ptr<const LoadedPlugin> PluginHost::load_file(const std::filesystem::path& path) {
  auto library = std::make_shared<LoadedPlugin::Library>();
  try {
    library->library.load(path,
                          boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  } catch (const std::exception& e) {
    throw_file_error(path, std::string("cannot load as a shared library: ") + e.what());
  }
  auto& lib = library->library;
  if (!lib.has("llmscope_plugin_descriptor")) {
    throw_file_error(path,
                     "not an llmscope plugin (no llmscope_plugin_descriptor symbol; "
                     "plugins declare themselves with LLMSCOPE_PLUGIN)");
  }
  const auto& descriptor = lib.get<const Descriptor>("llmscope_plugin_descriptor");
  if (auto why = refusal(descriptor); !why.empty()) throw_file_error(path, why);
  if (!lib.has("llmscope_plugin_factory")) {
    throw_file_error(
        path,
        "missing entry symbol llmscope_plugin_factory (declare the plugin with LLMSCOPE_PLUGIN)");
  }

  auto plugin = std::shared_ptr<LoadedPlugin>(new LoadedPlugin());
  plugin->info_ = PluginInfo{descriptor.name,
                             descriptor.version ? descriptor.version : "",
                             descriptor.description ? descriptor.description : "",
                             descriptor.abi_major,
                             descriptor.abi_minor,
                             path};
  using Factory = std::shared_ptr<Module>();
  auto& factory = lib.get_alias<Factory>("llmscope_plugin_factory");
  plugin->library_ = library;
  try {
    plugin->module_ = factory();
  } catch (const std::exception& e) {
    throw_file_error(path, "plugin '" + plugin->info_.name + "' failed to initialise: " + e.what());
  } catch (...) {
    throw_file_error(
        path, "plugin '" + plugin->info_.name + "' failed to initialise (non-standard exception)");
  }
  if (!plugin->module_) throw_file_error(path, "plugin factory returned nothing");
  // Native hooks the plugin installs hold this, keeping the library mapped while they exist.
  std::weak_ptr<LoadedPlugin::Library> weak = library;
  plugin->module_->set_keep_alive([weak] { return std::static_pointer_cast<void>(weak.lock()); });
  spdlog::debug("loaded plugin {} {} from {}", plugin->info_.name, plugin->info_.version,
                path.string());
  return plugin;
}

std::shared_ptr<const LoadedPlugin> PluginHost::load(const std::string& name) {
  if (auto it = loaded_.find(name); it != loaded_.end()) return it->second;
  std::vector<std::string> tried;
  for (const auto& dir : search_path_) {
    for (const auto& file :
         {"libllmscope_plugin_" + name + ".so", "llmscope_plugin_" + name + ".so"}) {
      auto path = dir / file;
      if (!std::filesystem::exists(path)) continue;
      auto plugin = load_file(path);
      if (plugin->info().name != name) {
        throw_file_error(path, "declares itself as plugin '" + plugin->info().name +
                                   "', expected '" + name + "'");
      }
      loaded_[name] = plugin;
      return plugin;
    }
    tried.push_back(dir.string());
  }
  std::vector<std::string> known;
  for (const auto& listing : discover()) {
    if (listing.plugin) known.push_back(listing.plugin->info().name);
  }
  std::string hint = known.empty() ? "no plugins found" : "available: " + join(known);
  throw Error("plugin '" + name + "' not found (" + hint + "; searched " + join(tried) +
              "; add folders with --plugin-path or LLMSCOPE_PLUGIN_PATH)");
}

void PluginHost::unload(const std::string& name) { loaded_.erase(name); }

std::vector<PluginListing> PluginHost::discover() {
  std::vector<PluginListing> out;
  std::map<std::string, bool> seen;  // the first file of a name on the path wins
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (!plugin_name_of(entry.path()).empty()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::string name = plugin_name_of(file);
      if (seen[name]) continue;
      seen[name] = true;
      PluginListing listing{file, nullptr, ""};
      try {
        auto it = loaded_.find(name);
        listing.plugin = it != loaded_.end() ? it->second : load_file(file);
      } catch (const std::exception& e) {
        listing.problem = e.what();
      }
      out.push_back(std::move(listing));
    }
  }
  return out;
}

}  // namespace llmscope::plugin
