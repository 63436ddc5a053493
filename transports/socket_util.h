// Socket helpers shared by the socket transports.
#pragma once

#include <sys/socket.h>

#include <string>

#include "harness/fd.h"

namespace ipcbench {

// Waits (bounded by `wait`) for a connection on a listening socket and accepts it.
UniqueFd accept_one(int listen_fd, const SetupWait& wait, const char* what);

// Throws ProtocolError unless the connected Unix socket's peer runs as our own uid.
void require_same_uid(int fd);

}  // namespace ipcbench
