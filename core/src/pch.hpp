// Precompiled header for llmscope_core and llmscope_host: the heavy, stable headers only.
#pragma once
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
