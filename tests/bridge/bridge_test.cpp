// Bridge internals seen from C++: every entry point leaves the Lua stack balanced, tensors are
// freed when Lua collects them, C++ exceptions arrive as Lua errors with a position, and
// Ctrl-C interrupts a running script.
#include <gmock/gmock.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "binding.hpp"
#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/lua/host.hpp"

namespace llmscope::lua {
namespace {

using ::testing::HasSubstr;

class Bridge : public ::testing::Test {
 protected:
  Bridge() : host_(options()) {}
  static HostOptions options() {
    HostOptions o;
    o.model_dir = testing::golden_path("gpt2-tiny").string();
    o.quiet = true;
    return o;
  }
  lua_State* L() { return host_.state(); }
  // Calls global function `path` ("tensor.zeros") with the arguments pushed by `push_args`;
  // returns the status and leaves the results (or error) for the caller to inspect.
  int call(const char* code) {
    int status = luaL_loadstring(L(), code);
    if (status != LUA_OK) return status;
    return lua_pcall(L(), 0, LUA_MULTRET, 0);
  }
  LuaHost host_;
};

TEST_F(Bridge, EntryPointsLeaveTheStackBalanced) {
  const char* snippets[] = {
      "local t = tensor.zeros({2, 3}) return t:sum(), t:shape()",
      "local m = model.load() local logits, out = m:forward(tensor.new({{1, 2, 3}}), "
      "{hidden_states = true})",
      "local m = model.load() m:run_with_cache(tensor.new({1, 2}), {names = "
      "'blocks.*.mlp.hook_pre'})",
      "return tensor.zeros(nil)",            // argument error
      "return model.load('/nonexistent')",   // llmscope::Error
      "return tensor.zeros({2}):view({3})",  // c10::Error
      "local m = model.load() m:run_with_hooks(tensor.new({1}), {['blocks.0.hook_resid_post'] = "
      "function() error('x') end})",
  };
  for (const char* code : snippets) {
    SCOPED_TRACE(code);
    ASSERT_EQ(lua_gettop(L()), 0);
    call(code);
    lua_settop(L(), 0);
    // Running it again inside one pcall must leave exactly the results behind.
    int before = lua_gettop(L());
    int status = call(code);
    if (status != LUA_OK) EXPECT_EQ(lua_gettop(L()), before + 1) << "error object only";
    lua_settop(L(), 0);
  }
}

TEST_F(Bridge, TensorsAreFreedWhenLuaCollectsThem) {
  at::Tensor t = at::ones({4});
  push_tensor(L(), t);
  lua_setglobal(L(), "kept");
  EXPECT_EQ(t.use_count(), 2);
  ASSERT_EQ(call("kept = nil collectgarbage() collectgarbage()"), LUA_OK);
  EXPECT_EQ(t.use_count(), 1);
}

TEST_F(Bridge, ModelsAndHooksAreReleasedOnCollection) {
  ASSERT_EQ(call("local m = model.load() m:hook('blocks.0.mlp.hook_pre', function() end) m = nil "
                 "collectgarbage() collectgarbage() return collectgarbage('count')"),
            LUA_OK);
  lua_settop(L(), 0);
}

TEST_F(Bridge, ExceptionsBecomeLuaErrorsWithAPositionAndNoBacktrace) {
  ASSERT_NE(call("local t = tensor.zeros({2})\nreturn t:view({3})"), LUA_OK);
  std::string message = lua_tostring(L(), -1);
  EXPECT_THAT(message, HasSubstr("[string \"local t = tensor.zeros({2})...\"]:2:"));
  EXPECT_THAT(message, HasSubstr("shape '[3]' is invalid"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("Exception raised from")));
  lua_settop(L(), 0);
}

TEST_F(Bridge, ArgumentErrorsCountSelfLikeLua) {
  ASSERT_NE(call("local m = model.load() m:hook(nil, print)"), LUA_OK);
  EXPECT_THAT(lua_tostring(L(), -1),
              HasSubstr("bad argument #1 to 'hook' (hook point expected, got nil)"));
  lua_settop(L(), 0);
  ASSERT_NE(call("local m = model.load() m.hook(m, nil, print)"), LUA_OK);
  EXPECT_THAT(lua_tostring(L(), -1),
              HasSubstr("bad argument #2 to 'hook' (hook point expected, got nil)"));
  lua_settop(L(), 0);
  ASSERT_NE(call("local m = model.load() m.hook(42)"), LUA_OK);
  EXPECT_THAT(lua_tostring(L(), -1),
              HasSubstr("bad argument #1 to 'hook' (model expected, got number)"));
  lua_settop(L(), 0);
}

TEST_F(Bridge, ExpiredActivationsRefuseUse) {
  auto lease = std::make_shared<ActivationLease>();
  push_activation(L(), at::ones({2}), lease, "blocks.0.hook_resid_post");
  lua_setglobal(L(), "act");
  ASSERT_EQ(call("return act:sum():item()"), LUA_OK);
  EXPECT_EQ(lua_tonumber(L(), -1), 2.0);
  lua_settop(L(), 0);
  lease->expire();
  ASSERT_NE(call("return act:sum()"), LUA_OK);
  EXPECT_THAT(lua_tostring(L(), -1), HasSubstr("expired activation 'blocks.0.hook_resid_post'"));
  lua_settop(L(), 0);
}

TEST_F(Bridge, CtrlCInterruptsARunningScript) {
  std::thread interrupter([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(getpid(), SIGINT);
  });
  try {
    host_.run_string("local x = 0 while true do x = x + 1 end", "=spin");
    interrupter.join();
    FAIL() << "the loop was not interrupted";
  } catch (const Error& e) {
    interrupter.join();
    EXPECT_THAT(e.what(), HasSubstr("interrupted"));
  }
  // The host stays usable afterwards.
  EXPECT_NO_THROW(host_.run_string("local y = 1 + 1"));
}

TEST_F(Bridge, ScriptsFailingMidwayReportFileAndLine) {
  auto dir = testing::scratch_dir("midway");
  auto script = dir / "midway.lua";
  std::ofstream(script) << "local t = tensor.zeros({2})\nprint('before')\n\nlocal bad = "
                           "t:narrow(0, 5, 1)\nprint('after')\n";
  ::testing::internal::CaptureStderr();
  int code = host_.run_file(script, {});
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 1);
  EXPECT_THAT(err, HasSubstr("midway.lua:4:"));
  EXPECT_THAT(err, HasSubstr("stack traceback"));
}

}  // namespace
}  // namespace llmscope::lua
