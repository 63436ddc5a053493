#include "transports/registry.h"

namespace ipcbench {

// Each transport unit defines one factory; adding a transport = its declaration and one
// push_back here. CMake finds transports/<name>/*.cpp by glob (CMakeLists.txt).
std::unique_ptr<Transport> make_pipe_transport();
std::unique_ptr<Transport> make_fifo_transport();
std::unique_ptr<Transport> make_uds_transport();
std::unique_ptr<Transport> make_uds_seqpacket_transport();
std::unique_ptr<Transport> make_tcp_transport();
std::unique_ptr<Transport> make_mmap_spin_transport();
std::unique_ptr<Transport> make_mmap_futex_transport();
std::unique_ptr<Transport> make_shm_spin_transport();
std::unique_ptr<Transport> make_shm_futex_transport();
std::unique_ptr<Transport> make_shm_spin_zerocopy_transport();
std::unique_ptr<Transport> make_shm_bcast_transport();
std::unique_ptr<Transport> make_posix_mq_transport();
std::unique_ptr<Transport> make_boost_mq_transport();
std::unique_ptr<Transport> make_http_uds_transport();
std::unique_ptr<Transport> make_http_tcp_transport();
std::unique_ptr<Transport> make_jsonrpc_pipe_transport();
std::unique_ptr<Transport> make_jsonrpc_uds_transport();
std::unique_ptr<Transport> make_jsonrpc_tcp_transport();
#ifdef IPCBENCH_HAVE_ZMQ
std::unique_ptr<Transport> make_zmq_ipc_transport();
std::unique_ptr<Transport> make_zmq_tcp_transport();
#endif
#ifdef IPCBENCH_HAVE_AMQP
std::unique_ptr<Transport> make_amqp_transport();
std::unique_ptr<Transport> make_amqp_durable_transport();
#endif
#ifdef IPCBENCH_HAVE_DBUS
std::unique_ptr<Transport> make_dbus_transport();
std::unique_ptr<Transport> make_dbus_p2p_transport();
#endif
#ifdef IPCBENCH_HAVE_ICEORYX
std::unique_ptr<Transport> make_iceoryx_waitset_transport();
std::unique_ptr<Transport> make_iceoryx_spin_transport();
#endif
#ifdef IPCBENCH_HAVE_GRPC
std::unique_ptr<Transport> make_grpc_tcp_transport();
std::unique_ptr<Transport> make_grpc_uds_transport();
std::unique_ptr<Transport> make_grpc_stream_tcp_transport();
std::unique_ptr<Transport> make_grpc_stream_uds_transport();
#endif

namespace {

std::vector<std::unique_ptr<Transport>> build_registry() {
  std::vector<std::unique_ptr<Transport>> r;
  r.push_back(make_pipe_transport());
  r.push_back(make_fifo_transport());
  r.push_back(make_uds_transport());
  r.push_back(make_uds_seqpacket_transport());
  r.push_back(make_tcp_transport());
  r.push_back(make_mmap_spin_transport());
  r.push_back(make_mmap_futex_transport());
  r.push_back(make_shm_spin_transport());
  r.push_back(make_shm_futex_transport());
  r.push_back(make_shm_spin_zerocopy_transport());
  r.push_back(make_shm_bcast_transport());
  r.push_back(make_posix_mq_transport());
  r.push_back(make_boost_mq_transport());
  r.push_back(make_http_uds_transport());
  r.push_back(make_http_tcp_transport());
  r.push_back(make_jsonrpc_pipe_transport());
  r.push_back(make_jsonrpc_uds_transport());
  r.push_back(make_jsonrpc_tcp_transport());
#ifdef IPCBENCH_HAVE_ZMQ
  r.push_back(make_zmq_ipc_transport());
  r.push_back(make_zmq_tcp_transport());
#endif
#ifdef IPCBENCH_HAVE_AMQP
  r.push_back(make_amqp_transport());
  r.push_back(make_amqp_durable_transport());
#endif
#ifdef IPCBENCH_HAVE_DBUS
  r.push_back(make_dbus_transport());
  r.push_back(make_dbus_p2p_transport());
#endif
#ifdef IPCBENCH_HAVE_ICEORYX
  r.push_back(make_iceoryx_waitset_transport());
  r.push_back(make_iceoryx_spin_transport());
#endif
#ifdef IPCBENCH_HAVE_GRPC
  r.push_back(make_grpc_tcp_transport());
  r.push_back(make_grpc_uds_transport());
  r.push_back(make_grpc_stream_tcp_transport());
  r.push_back(make_grpc_stream_uds_transport());
#endif
  return r;
}

}  // namespace

const std::vector<const Transport*>& all_transports() {
  static const std::vector<std::unique_ptr<Transport>> owned = build_registry();
  static const std::vector<const Transport*> view = [] {
    std::vector<const Transport*> v;
    for (const auto& t : owned) v.push_back(t.get());
    return v;
  }();
  return view;
}

const Transport* find_transport(std::string_view name) {
  for (const Transport* t : all_transports())
    if (t->info().name == name) return t;
  return nullptr;
}

std::vector<const Transport*> transports_named(std::string_view name) {
  if (const Transport* t = find_transport(name)) return {t};
  std::vector<const Transport*> out;
  if (name.empty()) return out;
  for (const Transport* t : all_transports()) {
    const std::string& n = t->info().name;
    if (n.size() > name.size() + 1 && n.starts_with(name) && n[name.size()] == '-')
      out.push_back(t);
  }
  return out;
}

}  // namespace ipcbench
