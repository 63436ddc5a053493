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

}  // namespace ipcbench
