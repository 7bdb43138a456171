# Passed to CMake as a toolchain file (.cargo/config.toml sets CMAKE_TOOLCHAIN_FILE for cargo's
# build scripts). The only CMake build among our dependencies is sentencepiece-sys's build of
# SentencePiece, which links only the static library; without this it also compiles every
# source a second time for the shared libraries it never uses.
set(SPM_ENABLE_SHARED OFF CACHE BOOL "sphana-llm links SentencePiece statically" FORCE)
set(SPM_ENABLE_TCMALLOC OFF CACHE BOOL "the host process chooses its allocator" FORCE)
