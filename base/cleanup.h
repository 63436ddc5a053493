// Process-wide record of what must be undone on every exit path.
//
// The run directory, the IPC names outside it (shared-memory objects, message queues)
// and the pids of live peers are registered here. On SIGINT, SIGTERM or SIGHUP the
// handler kills the peers, unlinks the names, empties and removes the directories and
// re-raises the signal with its default action. Everything here is async-signal-safe:
// fixed-size tables, no allocation, only kill/unlink/getdents/rmdir in the handler.
//
// The tables are small and a full table is not an error, so an owner never makes its own
// clean-up depend on a registration: it removes what it created whatever add_* returned.
#pragma once

#include <sys/types.h>

namespace ipcbench::cleanup {

// Installs the handlers once; later calls do nothing. SIGPIPE is set to ignored, so a
// write to a closed pipe or socket fails with EPIPE instead of killing the process.
void install_signal_handlers();

// Registers a path (a file, socket, FIFO or shared-memory object). Returns a slot for
// forget_path, or -1 when the table is full or the path too long.
int add_path(const char* path);
// Registers a POSIX message queue name ("/ipcbench-…"), removed with mq_unlink.
int add_mqueue(const char* name);
// Registers a directory: the handler removes everything in it, then it.
int add_dir(const char* path);
void forget_path(int slot);  // any slot of the three above; -1 is ignored

// Removes everything in a directory (subdirectories too, 8 levels deep at most; symbolic
// links removed, never followed), then the directory. With `last`, the entry of that name
// goes after all others (the sweep keeps a directory's marker, its proof, until nothing
// else is left). Returns whether the directory is gone. Safe in a signal handler; also
// what an owner calls on a normal exit, and what the sweep of dead runs uses.
bool remove_dir(const char* path, const char* last = nullptr);

// After this call the first SIGINT or SIGTERM only kills the registered peers and is
// remembered (interrupted() returns its number): the runner then skips the remaining
// cells and still writes every finished one. A second signal exits at once, cleaning up.
void enable_graceful_interrupt();
int interrupted();

// A peer's pid: killed at a graceful interrupt's first signal, and on any other exit by
// signal. A daemon's (a transport's RouDi): left to its owner at a graceful interrupt,
// which stops it in order as the run ends; killed on any other exit by signal.
void add_pid(pid_t pid, bool daemon = false);
void forget_pid(pid_t pid);

}  // namespace ipcbench::cleanup
