# Earshot as a MicroPython user C module, for CMake-based ports (esp32, rp2):
#   make -C ports/esp32 BOARD=ESP32_GENERIC_S3 USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
# or include() this file from a top-level USER_C_MODULES cmake file.
# Make-based ports use micropython.mk in this folder instead.

add_library(usermod_earshot INTERFACE)

# The core's sources: every .c file in firmware/core, the same list firmware/core/core.mk globs.
get_filename_component(EARSHOT_CORE_DIR ${CMAKE_CURRENT_LIST_DIR}/../core ABSOLUTE)
file(GLOB EARSHOT_CORE_SRC CONFIGURE_DEPENDS ${EARSHOT_CORE_DIR}/*.c)

target_sources(usermod_earshot INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/earshot_mod.c
    ${EARSHOT_CORE_SRC}
)

target_include_directories(usermod_earshot INTERFACE
    ${EARSHOT_CORE_DIR}
)

target_link_libraries(usermod INTERFACE usermod_earshot)
