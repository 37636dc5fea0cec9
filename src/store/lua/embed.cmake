# Turns the Redis store's Lua files into one C file of byte arrays, so the
# library never reads a script at run time:
#   cmake -DOUT=file.c -DLUA_FILES="a.lua|b.lua" -P embed.cmake
# Each file NAME.lua becomes `const char er__rd_lua_NAME[]`, NUL-terminated.
string(REPLACE "|" ";" LUA_FILES "${LUA_FILES}")
set(text "/* Generated from the Lua files in src/store/lua by embed.cmake: do not edit. */\n")
foreach(f IN LISTS LUA_FILES)
  get_filename_component(name "${f}" NAME_WE)
  file(READ "${f}" hex HEX)
  # ASCII only: a byte above 0x7f would not fit a char initializer everywhere
  string(REGEX MATCH "^(..)*[89a-f]." high "${hex}")
  if(high)
    message(FATAL_ERROR "${f}: not ASCII (keep the Lua files to ASCII)")
  endif()
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
  string(APPEND text "const char er__rd_lua_${name}[] = {\n${bytes}0};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${text}")
# Replaced only when changed, so an unchanged script rebuilds nothing.
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
