# Earshot as a MicroPython user C module, for CMake-based ports (esp32, rp2):
#   make -C ports/esp32 BOARD=ESP32_GENERIC_S3 USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
# or include() this file from a top-level USER_C_MODULES cmake file.
# Make-based ports use micropython.mk in this folder instead.
#
# MICROPY_PY_EARSHOT_ADAPT (default 1): 0 builds a detection-only `_earshot`, without the
# Adapter type and the core's adaptation (es_adapt*.c). Set it in the board's
# mpconfigboard.cmake (set(MICROPY_PY_EARSHOT_ADAPT 0)), with -D, or in the environment
# (make -C ports/esp32 ... MICROPY_PY_EARSHOT_ADAPT=0 passes it to CMake that way).

if(NOT DEFINED MICROPY_PY_EARSHOT_ADAPT)
    if(DEFINED ENV{MICROPY_PY_EARSHOT_ADAPT})
        set(MICROPY_PY_EARSHOT_ADAPT $ENV{MICROPY_PY_EARSHOT_ADAPT})
    else()
        set(MICROPY_PY_EARSHOT_ADAPT 1)
    endif()
endif()

add_library(usermod_earshot INTERFACE)

# The core's sources: every .c file in firmware/core, the list firmware/core/core.mk globs;
# the adaptation's are es_adapt*.c (core.mk's EARSHOT_CORE_ADAPT_SRC).
get_filename_component(EARSHOT_CORE_DIR ${CMAKE_CURRENT_LIST_DIR}/../core ABSOLUTE)
file(GLOB EARSHOT_CORE_SRC CONFIGURE_DEPENDS ${EARSHOT_CORE_DIR}/*.c)

# The binding's sources: the lists of earshot.mk.
set(EARSHOT_BINDING_SRC
    ${CMAKE_CURRENT_LIST_DIR}/earshot_mod.c
    ${CMAKE_CURRENT_LIST_DIR}/earshot_detect.c
)
if(MICROPY_PY_EARSHOT_ADAPT)
    set(MICROPY_PY_EARSHOT_ADAPT 1)
    list(APPEND EARSHOT_BINDING_SRC ${CMAKE_CURRENT_LIST_DIR}/earshot_adapt.c)
else()
    set(MICROPY_PY_EARSHOT_ADAPT 0)
    list(FILTER EARSHOT_CORE_SRC EXCLUDE REGEX "/es_adapt[^/]*\\.c$")
endif()

target_sources(usermod_earshot INTERFACE
    ${EARSHOT_BINDING_SRC}
    ${EARSHOT_CORE_SRC}
)

target_include_directories(usermod_earshot INTERFACE
    ${EARSHOT_CORE_DIR}
)

target_compile_definitions(usermod_earshot INTERFACE
    MICROPY_PY_EARSHOT_ADAPT=${MICROPY_PY_EARSHOT_ADAPT}
)

target_link_libraries(usermod INTERFACE usermod_earshot)
