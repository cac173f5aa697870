// The `figure` module's userdata, for other bindings that accept figures (the report module):
// llmscope.Figure holds a figures::Figure by value.
#pragma once

#include <lua.hpp>

#include "llmscope/figures.hpp"

namespace llmscope::lua {

inline constexpr const char* kFigureType = "llmscope.Figure";

// The figure at `index`, or nullptr when the value is not a figure. Never raises.
const figures::Figure* test_figure(lua_State* L, int index);

}  // namespace llmscope::lua
