# embed.cmake -- compiles the status page's files (src/ui/*.html, *.css, *.js) into a C file
# of byte arrays, sl__ui_files[] (declared in src/sl_http.h). Run by the build:
#   cmake -DUI_DIR=src/ui -DOUT=build/generated/sl_ui_files.c -P src/ui/embed.cmake
# Each array ends with a NUL byte that its length does not count, so the text can be
# searched with the C string functions.
if(NOT UI_DIR OR NOT OUT)
    message(FATAL_ERROR "embed.cmake: set UI_DIR and OUT")
endif()
file(GLOB files RELATIVE ${UI_DIR} ${UI_DIR}/*.html ${UI_DIR}/*.css ${UI_DIR}/*.js)
list(SORT files)
set(c "/* Generated from src/ui/ by src/ui/embed.cmake at build time: do not edit. */\n")
string(APPEND c "#include <stddef.h>\n\n#include \"sl_http.h\"\n\n")
set(table "")
set(i 0)
foreach(f ${files})
    file(READ ${UI_DIR}/${f} hex HEX)
    string(LENGTH "${hex}" hexlen)
    math(EXPR len "${hexlen} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
    string(APPEND c "static const unsigned char ui_file_${i}[] = {\n${bytes}0x00};\n\n")
    string(APPEND table "    {\"${f}\", ui_file_${i}, ${len}},\n")
    math(EXPR i "${i} + 1")
endforeach()
string(APPEND c "const sl_ui_file sl__ui_files[] = {\n${table}    {NULL, NULL, 0},\n};\n")
file(WRITE ${OUT}.tmp "${c}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
