# Finds every third-party dependency once, as imported targets the folders link against.
find_package(Torch REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(spdlog REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# Tokenizers: Unicode normalization forms (NFC...) and SentencePiece models, each by its library.
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-uc)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# Debian's TorchConfig puts its flags on a plain list; wrap them in one target.
if(NOT TARGET llmscope_torch)
  add_library(llmscope_torch INTERFACE)
  set_target_properties(llmscope_torch PROPERTIES EXPORT_NAME torch)
  target_link_libraries(llmscope_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(llmscope_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  # ATen's at::parallel_for is a header template: its `#pragma omp parallel` is compiled in our
  # own translation units, and without -fopenmp every "parallel" loop of ours runs on one thread.
  # Debian's libtorch uses GCC's libgomp, which GCC's -fopenmp shares; clang's would bring a
  # second runtime into the process, so clang builds (sanitizers, fuzzing) stay serial.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    find_package(OpenMP REQUIRED COMPONENTS CXX)
    target_link_libraries(llmscope_torch INTERFACE OpenMP::OpenMP_CXX)
    set(LLMSCOPE_WITH_OPENMP ON)
  else()
    message(STATUS "llmscope: ${CMAKE_CXX_COMPILER_ID} build, at::parallel_for in our code runs serially")
    set(LLMSCOPE_WITH_OPENMP OFF)
  endif()
  if(TORCH_CXX_FLAGS)
    separate_arguments(_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
    target_compile_options(llmscope_torch INTERFACE ${_torch_flags})
  endif()
endif()
