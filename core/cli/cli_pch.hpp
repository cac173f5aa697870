// Precompiled header for the CLI.
#pragma once
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>
