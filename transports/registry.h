// The one place where transports are registered.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "transports/transport.h"

namespace ipcbench {

// Every transport this build has, in the order the matrix runs them.
const std::vector<const Transport*>& all_transports();
// nullptr when no transport has that name.
const Transport* find_transport(std::string_view name);
// What a name given on the command line means: the transport of that name, or else every
// transport whose name is that name, a '-' and a variant ("iceoryx": iceoryx-waitset and
// iceoryx-spin; "grpc-stream": grpc-stream-tcp and grpc-stream-uds), in registry order;
// empty when neither.
std::vector<const Transport*> transports_named(std::string_view name);

}  // namespace ipcbench
