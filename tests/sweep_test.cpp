// The sweep removes a crashed run's objects only with proof that this suite made them and
// that their maker is gone; everything else survives it.
#include "harness/sweep.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "base/ipc_name.h"
#include "base/roudi_files.h"
#include "tests/test_support.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using testing_support::Scratch;

// A run's places inside a scratch directory: bases for run directories and a stand-in for
// /dev/shm (queues are real: they cannot be put elsewhere).
struct Places {
  Scratch s;
  fs::path base = s.dir / "tmp";
  fs::path shm = s.dir / "shm";
  Places() { fs::create_directories(shm); }
  std::vector<std::string> sweep() const {
    return sweep_stale_objects({base.string()}, shm.string());
  }
  // What a sweep removed here (where /dev/mqueue is mounted, a sweep may also remove
  // other dead runs' queues, which are none of these tests' business).
  std::vector<std::string> sweep_here() const {
    std::vector<std::string> here;
    for (const std::string& r : sweep())
      if (r.starts_with(s.dir.string())) here.push_back(r);
    return here;
  }
};

void touch(const fs::path& p) { std::ofstream(p).put('x'); }

// A directory named and marked with the given stamp, as make_private_dir would have made
// it for that process.
fs::path marked_dir(const fs::path& base, const RunStamp& st) {
  fs::path d = base / (st.text() + "-abc123");
  fs::create_directories(d);
  std::ofstream(d / ipc_name::kMarker) << st.text() << "\n";
  touch(d / "uds-0.sock");
  return d;
}

// What a child process made before it exited: its run directory, a shm object and a
// queue, named as the suite names them.
struct DeadRun {
  fs::path dir, shm_object;
  std::string queue;
};

// Runs `body` in a child process that then exits, and returns what body returned (the
// child's pid being gone by then, whatever it stamped belongs to a dead process).
template <typename Body>
std::string in_a_child_that_dies(Body body) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    std::string all;
    try {
      all = body();
    } catch (...) {
      ::_exit(5);  // never back into the test runner, in a forked copy of it
    }
    if (::write(fds[1], all.data(), all.size()) != static_cast<ssize_t>(all.size())) ::_exit(4);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  ::close(fds[0]);
  EXPECT_EQ(testing_support::wait_exit(child), 0);
  return got;
}

DeadRun make_and_die(const Places& p) {
  const std::string got = in_a_child_that_dies([&p] {
    std::string d = ipc_name::make_private_dir(p.base.string());
    std::string shm = (p.shm / ipc_name::next(ipc_name::Kind::kShm)).string();
    std::string q = ipc_name::next(ipc_name::Kind::kMqueue) + "-up";
    touch(shm);
    mqd_t m = ::mq_open(q.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, nullptr);
    if (m == static_cast<mqd_t>(-1)) ::_exit(3);
    ::mq_close(m);
    return d + "\n" + shm + "\n" + q + "\n";
  });
  DeadRun r;
  std::size_t a = got.find('\n'), b = got.find('\n', a + 1);
  r.dir = got.substr(0, a);
  r.shm_object = got.substr(a + 1, b - a - 1);
  r.queue = got.substr(b + 1, got.size() - b - 2);
  return r;
}

bool queue_exists(const std::string& q) {
  mqd_t m = ::mq_open(q.c_str(), O_RDONLY);
  if (m == static_cast<mqd_t>(-1)) return false;
  ::mq_close(m);
  return true;
}

TEST(Sweep, ADeadRunsDirectoryShmObjectAndQueueGo) {
  Places p;
  DeadRun r = make_and_die(p);
  ASSERT_TRUE(fs::exists(r.dir / ipc_name::kMarker));
  ASSERT_TRUE(queue_exists(r.queue));
  auto removed = p.sweep();
  EXPECT_FALSE(fs::exists(r.dir));
  EXPECT_FALSE(fs::exists(r.shm_object));
  EXPECT_FALSE(queue_exists(r.queue)) << "queue " << r.queue << " not swept";
  for (const std::string& what : {r.dir.string(), r.shm_object.string(), r.queue})
    EXPECT_NE(std::find(removed.begin(), removed.end(), what), removed.end()) << what;
}

TEST(Sweep, AUsersLookAlikesSurvive) {
  Places p;
  std::optional<RunStamp> dead = RunStamp::parse(make_and_die(p).dir.filename().string());
  ASSERT_TRUE(dead);
  p.sweep();  // the dead run's own objects go first
  // A user's results directory, an old-style name with a dead pid, a directory with a
  // dead run's stamp but no marker, one whose marker names another stamp, a link to a
  // marked directory, and a shm file that is a link.
  fs::path user = p.base / "ipcbench-2024-12-04-results";
  fs::create_directories(user);
  touch(user / "notes.txt");
  fs::path old = p.base / ("ipcbench-" + std::to_string(dead->pid) + "-abcdef");
  fs::create_directories(old);
  fs::path unmarked = p.base / (dead->text() + "-unmark");
  fs::create_directories(unmarked);
  fs::path wrong = marked_dir(p.base, *dead);
  RunStamp other = *dead;
  other.start += 1;
  std::ofstream(wrong / ipc_name::kMarker) << other.text() << "\n";
  fs::path target = marked_dir(p.s.dir, *dead);
  fs::path link = p.base / (dead->text() + "-link00");
  fs::create_directory_symlink(target, link);
  fs::path shm_link = p.shm / (dead->text() + "-shm-9");
  fs::create_symlink(user / "notes.txt", shm_link);

  EXPECT_TRUE(p.sweep_here().empty());
  for (const fs::path& kept : {user / "notes.txt", old, unmarked, wrong, target / "uds-0.sock"})
    EXPECT_TRUE(fs::exists(kept)) << kept << " was removed";
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_TRUE(fs::is_symlink(shm_link));
}

TEST(Sweep, AReusedPidDoesNotProtectADeadRun) {
  Places p;
  // Our own pid with another start time: the process that made it is gone, and ours,
  // alive under the same number, must not keep its objects.
  RunStamp reused = RunStamp::self();
  reused.start -= 1;
  fs::path d = marked_dir(p.base, reused);
  fs::path shm = p.shm / ipc_name::nth(reused, ipc_name::Kind::kShm, 0);
  touch(shm);
  EXPECT_EQ(fate_of(reused), Fate::kGone);
  p.sweep();
  EXPECT_FALSE(fs::exists(d));
  EXPECT_FALSE(fs::exists(shm));
}

TEST(Sweep, ALiveRunsObjectsStayAndUnprovableOnesToo) {
  Places p;
  int go[2], made[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(made), 0);
  pid_t child = ::fork();
  if (child == 0) {  // a live run: makes its objects, then waits to be told to exit
    std::string d = ipc_name::make_private_dir(p.base.string());
    touch(p.shm / ipc_name::next(ipc_name::Kind::kShm));
    char c = 'x';
    if (::write(made[1], &c, 1) != 1) ::_exit(3);
    while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(made[0], &c, 1), 1);
  auto live = RunStamp::of(child);
  ASSERT_TRUE(live);
  EXPECT_EQ(fate_of(*live), Fate::kAlive);
  // The same facts in another PID namespace or another boot prove nothing.
  RunStamp other_ns = *live, other_boot = *live;  // two other scopes
  other_ns.scope += 1;
  other_ns.pid = 999999;
  other_boot.scope ^= 0x80000000;
  other_boot.pid = 999999;
  fs::path ns_dir = marked_dir(p.base, other_ns), boot_dir = marked_dir(p.base, other_boot);
  EXPECT_EQ(fate_of(other_ns), Fate::kUnknown);
  EXPECT_EQ(fate_of(other_boot), Fate::kUnknown);

  EXPECT_TRUE(p.sweep_here().empty());
  std::size_t live_objects = 0;
  for (const auto& e : fs::directory_iterator(p.base))
    live_objects += e.path() != ns_dir && e.path() != boot_dir;
  for (const auto& e : fs::directory_iterator(p.shm)) live_objects += e.is_regular_file();
  EXPECT_EQ(live_objects, 2u) << "the live run's directory and shm object";
  EXPECT_TRUE(fs::exists(ns_dir));
  EXPECT_TRUE(fs::exists(boot_dir));

  ASSERT_EQ(::write(go[1], "x", 1), 1);
  EXPECT_EQ(testing_support::wait_exit(child), 0);
  EXPECT_EQ(fate_of(*live), Fate::kGone);
  EXPECT_EQ(p.sweep_here().size(), 2u) << "once it has exited, its objects go";
  for (int fd : {go[0], go[1], made[0], made[1]}) ::close(fd);
}

TEST(IpcName, StampsRoundTripAndRefuseLookAlikes) {
  RunStamp me = RunStamp::self();
  EXPECT_GT(me.start, 0u);
  EXPECT_GT(me.scope, 0u);
  EXPECT_EQ(RunStamp::parse(me.text()), me);
  EXPECT_EQ(RunStamp::parse(ipc_name::nth(me, ipc_name::Kind::kMqueue, 7) + "-up"), me);
  EXPECT_TRUE(RunStamp::parse("ipcbench-1.2.3-shm-0"));
  RunStamp widest{4194304, 100ull * 86400 * 366 * 10, 0xffffffffu};  // pid_max, 10 years at 100 Hz
  EXPECT_LE(widest.text().size(), 30u) << widest.text();
  EXPECT_EQ(RunStamp::parse(widest.text()), widest);
  for (const char* bad : {"ipcbench-2024-12-04-results", "ipcbench-123-abcdef", "ipcbench-",
                          "ipcbench-1.2", "ipcbench-1.2.3X", "ipcbench-0.2.3", "xipcbench-1.2.3",
                          "ipcbench-1.2.3.4", "ipcbench-A.2.3"})
    EXPECT_FALSE(RunStamp::parse(bad)) << bad;
}

}  // namespace
}  // namespace ipcbench

namespace ipcbench {
namespace {

// A Unix socket file at path, as iceoryx makes one for a runtime.
void socket_file(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path;
  ::close(fd);
}

// iceoryx's files for a dead process's runtime (its stamp, and its stamp and ".lock") go;
// a live process's stay, and so does every other name in that place.
TEST(Sweep, ADeadRunsIceoryxRuntimeFilesGoAndNothingElse) {
  Places p;
  const fs::path iox = p.s.dir / "iox";
  fs::create_directories(iox);
  std::optional<RunStamp> dead = RunStamp::parse(make_and_die(p).dir.filename().string());
  ASSERT_TRUE(dead);
  const std::string d = dead->text(), live = RunStamp::self().text();
  socket_file(iox / d);
  touch(iox / (d + ".lock"));
  socket_file(iox / live);
  touch(iox / (live + ".lock"));
  touch(iox / (d + ".other"));             // not a name iceoryx gives a runtime
  touch(iox / d.substr(0, d.size() - 1));  // a look-alike that is not a stamp alone
  touch(iox / (d + "-sock"));              // a regular file where the socket would be: no
  std::vector<std::string> removed =
      sweep_stale_objects({p.base.string()}, p.shm.string(), iox.string());
  EXPECT_NE(std::find(removed.begin(), removed.end(), (iox / d).string()), removed.end());
  EXPECT_NE(std::find(removed.begin(), removed.end(), (iox / (d + ".lock")).string()),
            removed.end());
  EXPECT_FALSE(fs::exists(iox / d));
  EXPECT_FALSE(fs::exists(iox / (d + ".lock")));
  for (const std::string& stays :
       {live, live + ".lock", d + ".other", d.substr(0, d.size() - 1), d + "-sock"})
    EXPECT_TRUE(fs::exists(fs::symlink_status(iox / stays))) << stays;
}

}  // namespace
}  // namespace ipcbench

namespace ipcbench {
namespace {

// RouDi's names in a scratch directory's stand-ins for /tmp and /dev/shm, made as a RouDi
// makes them (the socket unbound, as a killed RouDi leaves it).
struct RoudiPlaces {
  Places p;
  roudi_files::Places at{.tmp = (p.s.dir / "iox").string(), .shm = p.shm.string()};
  RoudiPlaces() {
    fs::create_directories(at.tmp);
    for (const std::string& n : roudi_files::names(at))
      if (n == roudi_files::socket_path(at))
        socket_file(n);
      else
        touch(n);
  }
  std::vector<std::string> sweep() const {
    return sweep_stale_objects({p.base.string()}, p.shm.string(), at.tmp);
  }
  // The proof a runner that has since exited wrote for the RouDi with that stamp, and
  // the lines it added after it. Returns its path.
  std::string proof_of_dead_runner(const RunStamp& roudi, const std::string& more = "") const {
    return in_a_child_that_dies([&] {
      std::string path = roudi_files::write_proof(roudi, at);
      if (!more.empty()) std::ofstream(path, std::ios::app) << more;
      return path;
    });
  }
  RunStamp dead_stamp() const {
    auto s = RunStamp::parse(make_and_die(p).dir.filename().string());
    EXPECT_TRUE(s);
    return s.value_or(RunStamp{});
  }
  bool all_there() const {
    for (const std::string& n : roudi_files::names(at))
      if (!fs::exists(fs::symlink_status(n))) return false;
    return true;
  }
};

std::string file_line(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return "file " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
         path.string() + "\n";
}

// A dead run's RouDi, gone too, left its names: they go, as the proof recorded them, and
// the proof with them. A name made again since (another inode) stays, and so does any
// file a proof lists that is not one of RouDi's names.
TEST(Sweep, ADeadRunsRoudiFilesGoByItsProofAndNothingElse) {
  RoudiPlaces r;
  const fs::path victim = fs::path(r.at.tmp) / "victim";
  touch(victim);
  const std::string proof = r.proof_of_dead_runner(r.dead_stamp(), file_line(victim));
  ASSERT_TRUE(fs::exists(proof));
  // RouDi's management segment made again under its name, by someone else since.
  const std::string mgmt = r.at.shm + "/iceoryx_mgmt";
  touch(mgmt + ".new");
  fs::rename(mgmt + ".new", mgmt);
  const std::vector<std::string> removed = r.sweep();
  for (const std::string& n : roudi_files::names(r.at)) {
    const bool gone = std::find(removed.begin(), removed.end(), n) != removed.end();
    EXPECT_EQ(gone, n != mgmt) << n;
    EXPECT_EQ(fs::exists(fs::symlink_status(n)), n == mgmt) << n;
  }
  EXPECT_FALSE(fs::exists(proof));
  EXPECT_TRUE(fs::exists(victim));
}

// Nothing of RouDi's goes while the RouDi the proof names lives, while a process answers
// on RouDi's socket, or while one holds RouDi's unique lock.
TEST(Sweep, RoudisFilesStayWhileARoudiCouldUseThem) {
  {
    SCOPED_TRACE("the proof's RouDi lives");
    RoudiPlaces r;
    const std::string proof = r.proof_of_dead_runner(RunStamp::self());
    r.sweep();
    EXPECT_TRUE(r.all_there());
    EXPECT_TRUE(fs::exists(proof)) << "kept for a sweep after that RouDi is gone";
  }
  {
    SCOPED_TRACE("a process answers on the socket");
    RoudiPlaces r;
    const std::string sock = roudi_files::socket_path(r.at);
    fs::remove(sock);
    int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const std::string proof = r.proof_of_dead_runner(r.dead_stamp());
    r.sweep();
    ::close(fd);
    EXPECT_TRUE(r.all_there());
    EXPECT_FALSE(fs::exists(proof)) << "another RouDi has the names: the proof is void";
  }
  {
    SCOPED_TRACE("a process holds the unique lock");
    RoudiPlaces r;
    const std::string proof = r.proof_of_dead_runner(r.dead_stamp());
    int fd = ::open(roudi_files::unique_lock_path(r.at).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    pid_t holder = ::fork();  // the lock held by another process, as a RouDi holds it
    if (holder == 0) {
      ::pause();
      ::_exit(0);
    }
    ::close(fd);
    r.sweep();
    ::kill(holder, SIGKILL);
    testing_support::wait_exit(holder);
    EXPECT_TRUE(r.all_there());
  }
}

// A proof that is not one (garbled) proves nothing: it goes, RouDi's names stay.
TEST(Sweep, AGarbledRoudiProofRemovesNothingButItself) {
  RoudiPlaces r;
  const std::string proof = r.proof_of_dead_runner(r.dead_stamp());
  std::ofstream(proof, std::ios::app) << "file x y /etc/passwd\n";
  r.sweep();
  EXPECT_TRUE(r.all_there());
  EXPECT_FALSE(fs::exists(proof));
}

}  // namespace
}  // namespace ipcbench
