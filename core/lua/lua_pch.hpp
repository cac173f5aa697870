// Precompiled header for the Lua bridge.
#pragma once
#include <ATen/ATen.h>
#include <lua.hpp>

#include <memory>
#include <string>
#include <vector>
