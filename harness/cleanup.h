// Process-wide record of what must be undone on every exit path.
//
// The run directory, the IPC paths inside it and the pids of live peers are registered
// here. On SIGINT, SIGTERM or SIGHUP the handler kills the peers, unlinks the paths
// (files first, then directories) and re-raises the signal with its default action. Everything here
// is async-signal-safe: fixed-size tables, no allocation, only kill/unlink/rmdir in the handler.
#pragma once

#include <sys/types.h>

namespace ipcbench::cleanup {

// Installs the handlers once; later calls do nothing. SIGPIPE is set to ignored, so a
// write to a closed pipe or socket fails with EPIPE instead of killing the process.
void install_signal_handlers();

// Registers a path (a file, socket, FIFO or an empty-once-cleaned directory). Returns a
// slot for forget_path, or -1 when the table is full or the path too long (the owner's
// destructor still removes it on a normal exit).
int add_path(const char* path);
// Registers a POSIX message queue name ("/ipcbench-…"), removed with mq_unlink.
int add_mqueue(const char* name);
void forget_path(int slot);

// After this call the first SIGINT or SIGTERM only kills the registered peers and is
// remembered (interrupted() returns its number): the runner then skips the remaining
// cells and still writes every finished one. A second signal exits at once, cleaning up.
void enable_graceful_interrupt();
int interrupted();

void add_pid(pid_t pid);
void forget_pid(pid_t pid);

}  // namespace ipcbench::cleanup
