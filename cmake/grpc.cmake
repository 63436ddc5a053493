# gRPC transports: finds gRPC and protobuf, generates the service code from
# transports/grpc/ipcbench.proto at build time, and adds it to the optional libraries.
find_package(Protobuf)
find_package(gRPC CONFIG)
find_program(IPCBENCH_GRPC_CPP_PLUGIN grpc_cpp_plugin)
if(NOT Protobuf_FOUND OR NOT gRPC_FOUND OR NOT IPCBENCH_GRPC_CPP_PLUGIN
   OR NOT Protobuf_PROTOC_EXECUTABLE)
  message(FATAL_ERROR "IPCBENCH_WITH_GRPC: gRPC or protobuf not found; install libgrpc++-dev "
                      "libprotobuf-dev protobuf-compiler protobuf-compiler-grpc "
                      "(./scripts/deps.sh does) or configure with -DIPCBENCH_WITH_GRPC=OFF")
endif()

set(_proto ${CMAKE_SOURCE_DIR}/transports/grpc/ipcbench.proto)
set(_gen ${CMAKE_BINARY_DIR}/generated/transports/grpc)
set(_srcs ${_gen}/ipcbench.pb.cc ${_gen}/ipcbench.grpc.pb.cc)
add_custom_command(
  OUTPUT ${_srcs} ${_gen}/ipcbench.pb.h ${_gen}/ipcbench.grpc.pb.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen}
  COMMAND ${Protobuf_PROTOC_EXECUTABLE} --proto_path=${CMAKE_SOURCE_DIR}/transports/grpc
          --cpp_out=${_gen} --grpc_out=${_gen}
          --plugin=protoc-gen-grpc=${IPCBENCH_GRPC_CPP_PLUGIN} ${_proto}
  DEPENDS ${_proto}
  COMMENT "Generating gRPC code from ipcbench.proto")
# Generated code is not ours to warn about; it gets neither -Werror nor sanitizer noise.
add_library(ipcbench_grpc_proto STATIC ${_srcs})
target_compile_options(ipcbench_grpc_proto PRIVATE -w)
target_include_directories(ipcbench_grpc_proto SYSTEM PUBLIC ${CMAKE_BINARY_DIR}/generated)
target_link_libraries(ipcbench_grpc_proto PUBLIC gRPC::grpc++ protobuf::libprotobuf)
list(APPEND IPCBENCH_OPTIONAL_LIBS ipcbench_grpc_proto)
list(APPEND IPCBENCH_OPTIONAL_DEFS IPCBENCH_HAVE_GRPC=1)
