# baton_warnings(<target>...)
#
# Enables strict warnings for first-party targets only. Third-party headers
# (from /usr/include or imported targets) are treated as system headers and
# are not affected.
#
# GCC 12 at -O3 (Release) reports -Wrestrict false positives inside
# libstdc++'s std::string operator+ (GCC bug 105329, fixed in GCC 13), so
# that one warning is off there.
function(baton_warnings)
  set(flags -Wall -Wextra -Werror)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND
     CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    list(APPEND flags -Wno-restrict)
  endif()
  foreach(target IN LISTS ARGN)
    target_compile_options(${target} PRIVATE ${flags})
  endforeach()
endfunction()
