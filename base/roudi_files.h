// The files iceoryx 2.0's daemon, RouDi, makes, and the proof that lets the suite remove
// them after a crash.
//
// RouDi names its objects itself, the same for every RouDi on the machine
// (iceoryx_posh_types.hpp: ROUDI_LOCK_NAME "iox-unique-roudi", IPC_CHANNEL_ROUDI_NAME
// "roudi"; iceoryx_hoofs' FileLock adds ".lock" in /tmp): the socket /tmp/roudi, its lock
// /tmp/roudi.lock, the lock that keeps RouDi unique /tmp/iox-unique-roudi.lock, the
// management segment /dev/shm/iceoryx_mgmt and the data segment /dev/shm/<group>. They carry
// no stamp, so no name can prove they are ours. A RouDi that is stopped in order removes
// them; one killed (SIGKILL, or its runner SIGKILLed: it dies with it) leaves them.
//
// So the runner that starts a RouDi writes a proof beside its own runtime's files once
// RouDi is ready: /tmp/<runner's stamp>.roudi, 0600, holding RouDi's stamp and the device
// and inode of each of those files. A file is removed only when
//   - its name is one of the names above (a proof never names a file to remove: it only
//     says which inode a name had),
//   - it is this user's and has the inode the proof recorded (the same file RouDi made,
//     not one a later RouDi made again under that name),
//   - nobody answers on RouDi's socket and nobody holds the unique lock (no RouDi runs).
// The sweep (harness/sweep.h) applies this to a proof whose runner and RouDi are both gone.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/ipc_name.h"

namespace ipcbench::roudi_files {

// Where RouDi's names live: /tmp and /dev/shm, elsewhere only in tests.
struct Places {
  std::string tmp = "/tmp";
  std::string shm = "/dev/shm";
};

// RouDi's names in those places: socket, socket lock, unique lock, management segment,
// and, when the effective group has a name, the data segment.
std::vector<std::string> names(const Places& at = {});
// The socket's path (names()[0]) and the unique lock's (names()[2]).
std::string socket_path(const Places& at = {});
std::string unique_lock_path(const Places& at = {});

// The proof file of the process with this stamp: <tmp>/<stamp>.roudi.
inline constexpr const char* kProofSuffix = ".roudi";
std::string proof_path(const RunStamp& runner, const Places& at = {});

struct Recorded {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};
struct Proof {
  RunStamp roudi;
  std::vector<Recorded> files;
};

// Writes this process's proof for the RouDi with that stamp: every one of names() that
// exists now. Created 0600 with O_EXCL; returns its path. Throws SysError.
std::string write_proof(const RunStamp& roudi, const Places& at = {});
// The proof in that file, or nullopt when it cannot be read or is not one.
std::optional<Proof> read_proof(const std::string& path);

// Whether a process has RouDi's socket bound (connect() to a datagram socket succeeds only
// then; a socket file a killed RouDi left refuses).
bool answers(const Places& at = {});

// Removes the names the proof recorded, under the rules at the top of this file; returns
// the paths removed (none when a RouDi runs). Never throws.
std::vector<std::string> remove_as_proven(const Proof& proof, const Places& at = {});

}  // namespace ipcbench::roudi_files
