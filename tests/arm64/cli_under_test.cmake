# CRIA_CLI_UNDER_TEST: what host-side test scripts (Python) run as the cria
# binary. Natively the binary itself. In a cross build, a wrapper script that
# runs it under CMAKE_CROSSCOMPILING_EMULATOR: ctest prefixes the emulator
# only when a test's COMMAND is the target, not when a script is handed the
# target's path. Wrappers live in BUILD/emulated/, one per program the scripts
# start: cria, and the C API example c-api-stream, which test_cli.py finds
# beside cria. Each is rewritten whenever its program is relinked, so scripts
# that compare file times with it (prepare.py keeps outputs newer than the
# binary) see every new binary.
if(TARGET cria AND CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
  set(CRIA_CLI_UNDER_TEST ${CMAKE_BINARY_DIR}/emulated/cria)

  # Deferred to the end of the top-level CMakeLists.txt: examples/ (which
  # defines c-api-stream) is added after tests/.
  function(cria_emulated_wrappers)
    set(emu "")
    foreach(a IN LISTS CMAKE_CROSSCOMPILING_EMULATOR)
      string(APPEND emu "'${a}' ")
    endforeach()
    set(outs "")
    foreach(t cria cria_stream_example)
      if(NOT TARGET ${t})
        continue()
      endif()
      get_target_property(name ${t} OUTPUT_NAME)
      if(NOT name)
        set(name ${t})
      endif()
      set(script ${CMAKE_BINARY_DIR}/tests/arm64/${name}.sh)
      set(out ${CMAKE_BINARY_DIR}/emulated/${name})
      file(GENERATE OUTPUT ${script}
           CONTENT "#!/bin/sh\n# ${name} (arm64) under the emulator: tests/arm64/cli_under_test.cmake\nexec ${emu}'$<TARGET_FILE:${t}>' \"$@\"\n"
           FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
      add_custom_command(OUTPUT ${out}
                         COMMAND ${CMAKE_COMMAND} -E copy ${script} ${out}
                         COMMAND ${CMAKE_COMMAND} -E touch ${out}
                         DEPENDS ${t} ${script}
                         COMMENT "emulated/${name}: ${name} under qemu" VERBATIM)
      list(APPEND outs ${out})
    endforeach()
    add_custom_target(cria_emulated ALL DEPENDS ${outs})
  endfunction()
  cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL cria_emulated_wrappers)
elseif(TARGET cria)
  set(CRIA_CLI_UNDER_TEST $<TARGET_FILE:cria>)
endif()
