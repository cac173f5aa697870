// A shared library that is not an llmscope plugin (no descriptor).
extern "C" int not_a_plugin_answer() { return 42; }
