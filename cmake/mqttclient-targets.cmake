# Defines the imported targets mqttclient::mqttclient (shared library),
# mqttclient::mqttclient_static (static library) and mqttclient::mqttclient_cpp (the header-only
# C++17 API, include/mqttclient.hpp, over the shared library) for libraries cargo built.
# CMakeLists.txt uses it for the build tree and the installed mqttclientConfig.cmake for an
# install, so both describe the libraries the same way. Needs the Threads::Threads target
# (find_package(Threads)).
#
#   mqttc_add_imported_targets(SHARED <file> [SONAME <name>] STATIC <file> INCLUDE_DIR <dir> [GLOBAL])
#
# SONAME is the shared library's SONAME (Linux); without it, the library is taken to have none.
# GLOBAL makes the targets visible to the whole project (for add_subdirectory users).
function(mqttc_add_imported_targets)
  cmake_parse_arguments(PARSE_ARGV 0 arg "GLOBAL" "SHARED;SONAME;STATIC;INCLUDE_DIR" "")
  set(global "")
  if(arg_GLOBAL)
    set(global GLOBAL)
  endif()

  add_library(mqttclient::mqttclient SHARED IMPORTED ${global})
  set_target_properties(mqttclient::mqttclient PROPERTIES
    IMPORTED_LOCATION "${arg_SHARED}"
    INTERFACE_INCLUDE_DIRECTORIES "${arg_INCLUDE_DIR}")
  if(arg_SONAME)
    set_target_properties(mqttclient::mqttclient PROPERTIES IMPORTED_SONAME "${arg_SONAME}")
  else()
    set_target_properties(mqttclient::mqttclient PROPERTIES IMPORTED_NO_SONAME TRUE)
  endif()

  # The static library needs the system libraries Rust's std links against (pkg-config's
  # Libs.private in mqttclient.pc.in says the same).
  add_library(mqttclient::mqttclient_static STATIC IMPORTED ${global})
  set_target_properties(mqttclient::mqttclient_static PROPERTIES
    IMPORTED_LOCATION "${arg_STATIC}"
    INTERFACE_INCLUDE_DIRECTORIES "${arg_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")

  # Header-only: what it needs is C++17 and the C library (its header sits in the same directory).
  # Threads: the header uses std::mutex, which needs libpthread on older C libraries.
  add_library(mqttclient::mqttclient_cpp INTERFACE IMPORTED ${global})
  set_target_properties(mqttclient::mqttclient_cpp PROPERTIES
    INTERFACE_COMPILE_FEATURES cxx_std_17
    INTERFACE_LINK_LIBRARIES "mqttclient::mqttclient;Threads::Threads")
endfunction()
