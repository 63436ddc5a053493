// One conformance suite, run against every registered transport with a real peer
// process (build/ipcbench --peer --role=echo) on the other end.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "base/cleanup.h"
#include "base/error.h"
#include "base/ipc_name.h"
#include "base/process.h"
#include "base/run_dir.h"
#include "bench/peer.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

constexpr std::size_t kMaxTestBytes = 4u << 20;

struct Link {
  Link() = default;
  Link(Link&&) = default;
  // The link ends first, then the peer has time to see it and exit: a peer killed while it
  // tears its side down is a fault of its own (iceoryx's RouDi can deadlock on it), which
  // the tests that kill peers provoke on purpose, not every test by accident.
  ~Link() {
    ch.reset();
    peer.finish(std::chrono::seconds(5));
  }
  std::unique_ptr<RunDir> dir = std::make_unique<RunDir>();
  ChildProcess peer;
  Endpoint ep;
  std::unique_ptr<Channel> ch;
};

Link open_link(const Transport& t, std::size_t max_size) {
  Link l;
  auto listener = t.listen(*l.dir, max_size, testing_support::settings());
  l.ep = listener->endpoint();
  PeerArgs args{t.info().name,  listener->endpoint().addresses, max_size, false, "echo",
                IPCBENCH_BINARY};
  std::vector<std::string> argv = peer_command(args);
  l.peer = ChildProcess::spawn({argv, listener->endpoint().inherit_fds, -1});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  l.ch = listener->accept({deadline, [&l] { return l.peer.alive(); }});
  return l;
}

using testing_support::pattern;

class Conformance : public ::testing::TestWithParam<const Transport*> {
 protected:
  static void SetUpTestSuite() { cleanup::install_signal_handlers(); }
  void SetUp() override {
    std::string why = testing_support::untestable_reason(GetParam()->info().needs);
    if (!why.empty()) GTEST_SKIP() << why;
  }
};

TEST_P(Conformance, EverySizeArrivesIntact) {
  const Transport& t = *GetParam();
  Link l = open_link(t, kMaxTestBytes);
  std::vector<std::byte> buf(kMaxTestBytes);
  const std::size_t sizes[] = {1,     63,    64,    4095,           4096,
                               65535, 65536, 65537, (1u << 20) + 1, kMaxTestBytes};
  unsigned seed = 0;
  for (std::size_t size : sizes) {
    auto msg = pattern(size, ++seed);
    l.ch->send(msg);
    std::size_t n = l.ch->recv(buf);
    ASSERT_EQ(n, size) << t.info().name;
    ASSERT_EQ(0, std::memcmp(buf.data(), msg.data(), size)) << t.info().name << " size " << size;
  }
  l.ch.reset();  // the echo peer sees EOF and exits 0
  EXPECT_EQ(l.peer.finish(std::chrono::seconds(5)), "exit 0");
}

// What the rate workload relies on where a transport offers pipelining: requests
// pipelined ahead of their echoes (the echo peer answers one at a time), every echo
// intact and in order. "two threads": one thread sends while another receives (under
// TSan, the check that the two directions share no unguarded state); "one thread": the
// thread waits for replies with wait_readable between sends, pipeline_room() at most in
// flight, and a wait with nothing coming ends at its deadline.
TEST_P(Conformance, PipelinedRequestsArriveIntactAndInOrder) {
  const Transport& t = *GetParam();
  if (t.info().pipelining.empty()) GTEST_SKIP() << t.info().name << " offers no pipelining";
  Link l = open_link(t, kMaxTestBytes);
  const std::size_t sizes[] = {64, 4096, 100'000, 1};
  constexpr int kMessages = 400;
  auto check = [&](int i, std::size_t n, const std::vector<std::byte>& buf) -> std::string {
    const std::size_t size = sizes[i % 4];
    if (n == size &&
        std::memcmp(buf.data(), pattern(size, static_cast<unsigned>(i)).data(), n) == 0)
      return "";
    return "echo " + std::to_string(i) + " differs (" + std::to_string(n) + " bytes, expected " +
           std::to_string(size) + ")";
  };
  if (t.info().pipelining == "one thread") {
    const std::size_t room = l.ch->pipeline_room();
    ASSERT_GT(room, 0u) << t.info().name;
    auto now = std::chrono::steady_clock::now;
    EXPECT_FALSE(l.ch->wait_readable(now() + std::chrono::milliseconds(20))) << t.info().name;
    std::vector<std::byte> buf(kMaxTestBytes);
    int sent = 0, got = 0;
    while (got < kMessages) {
      if (sent < kMessages &&
          static_cast<std::size_t>(sent - got) < std::min<std::size_t>(room, 16)) {
        l.ch->send(pattern(sizes[sent % 4], static_cast<unsigned>(sent)));
        ++sent;
        continue;
      }
      ASSERT_TRUE(l.ch->wait_readable(now() + std::chrono::seconds(10))) << t.info().name;
      ASSERT_EQ(check(got, l.ch->recv(buf), buf), "") << t.info().name;
      ++got;
    }
  } else {
    ASSERT_EQ(t.info().pipelining, "two threads");
    // In place where the channel lends its memory, as the rate workload's Outbox and
    // Inbox do (shm-spin-zerocopy, gRPC's view).
    auto put = [&](std::span<const std::byte> msg) {
      std::span<std::byte> loan = l.ch->loan(msg.size());
      if (loan.empty()) return l.ch->send(msg);
      std::memcpy(loan.data(), msg.data(), msg.size());
      l.ch->commit();
    };
    auto take = [&](std::vector<std::byte>& buf) -> std::size_t {
      std::span<const std::byte> v;
      if (!l.ch->view(&v)) return l.ch->recv(buf);
      std::memcpy(buf.data(), v.data(), std::min(v.size(), buf.size()));
      l.ch->release();
      return v.size();
    };
    l.ch->set_duplex(true);
    std::string failure;
    std::thread rx([&] {
      std::vector<std::byte> buf(kMaxTestBytes);
      try {
        for (int i = 0; i < kMessages && failure.empty(); ++i) failure = check(i, take(buf), buf);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      // The sender may be blocked on a link nobody drains any more.
      if (!failure.empty()) ::kill(l.peer.pid(), SIGKILL);
    });
    std::string send_failure;
    try {
      for (int i = 0; i < kMessages; ++i) put(pattern(sizes[i % 4], static_cast<unsigned>(i)));
    } catch (const std::exception& e) {
      send_failure = e.what();
      ::kill(l.peer.pid(), SIGKILL);  // so that the receiving thread's wait ends
    }
    rx.join();
    l.ch->set_duplex(false);
    ASSERT_EQ(failure, "") << t.info().name;
    ASSERT_EQ(send_failure, "") << t.info().name;
  }
  l.ch.reset();
  EXPECT_EQ(l.peer.finish(std::chrono::seconds(5)), "exit 0");
}

// Where an endpoint address names an IPC object: a path, a POSIX shm object (in
// /dev/shm), or a POSIX message queue ("/ipcbench-…", opened with mq_open).
struct IpcObject {
  enum Kind { kNone, kPath, kMqueue } kind;
  std::string name;
};
IpcObject object_of(const std::string& a) {
  if (a.rfind("ipcbench-", 0) == 0) return {IpcObject::kPath, "/dev/shm/" + a};
  if (a.rfind("/ipcbench-", 0) == 0) return {IpcObject::kMqueue, a};
  if (a.find('/') != std::string::npos) return {IpcObject::kPath, a};
  return {IpcObject::kNone, a};  // descriptor numbers, host, port
}

// 0 when it exists (mode in *mode), else errno.
int stat_object(const IpcObject& o, unsigned* mode) {
  struct stat st {};
  if (o.kind == IpcObject::kPath) {
    if (::stat(o.name.c_str(), &st) != 0) return errno;
  } else {
    mqd_t q = ::mq_open(o.name.c_str(), O_RDONLY);
    if (q == static_cast<mqd_t>(-1)) return errno;
    ::fstat(q, &st);
    ::mq_close(q);
  }
  *mode = st.st_mode & 0777;
  return 0;
}

// Paths, shm objects and queues are 0600 from the moment they exist, and each is seen:
// those the listener creates as soon as it listens, those the peer creates (a gRPC
// server's socket) once the link is up (by then shm and queue names may be unlinked).
// Returns, per address, whether it named an object that exists now.
std::vector<bool> check_private_objects(const std::vector<std::string>& addresses) {
  std::vector<bool> seen;
  for (const std::string& a : addresses) {
    IpcObject o = object_of(a);
    unsigned mode = 0;
    int err = o.kind == IpcObject::kNone ? ENOENT : stat_object(o, &mode);
    seen.push_back(err == 0);
    if (err == ENOENT) continue;
    EXPECT_EQ(err, 0) << o.name;
    EXPECT_EQ(mode, 0600u) << o.name;
  }
  return seen;
}

TEST_P(Conformance, IpcObjectsAreCreatedPrivate) {
  std::vector<bool> at_listen;
  {
    RunDir dir;
    at_listen = check_private_objects(
        GetParam()->listen(dir, 64, testing_support::settings())->endpoint().addresses);
  }
  Link l = open_link(*GetParam(), 64);
  std::vector<bool> linked = check_private_objects(l.ep.addresses);
  ASSERT_EQ(at_listen.size(), linked.size());
  for (std::size_t i = 0; i < linked.size(); ++i) {
    if (object_of(l.ep.addresses[i]).kind == IpcObject::kNone) continue;
    EXPECT_TRUE(at_listen[i] || linked[i]) << l.ep.addresses[i] << " never seen";
  }
}

std::vector<std::string> our_shm_objects() {
  std::vector<std::string> found;
  if (DIR* d = ::opendir("/dev/shm")) {
    while (dirent* e = ::readdir(d))
      if (auto st = RunStamp::parse(e->d_name); st && st->pid == ::getpid())
        found.push_back(e->d_name);
    ::closedir(d);
  }
  return found;
}

// Nothing of a link is left: its run directory, shared-memory objects, queue names.
void expect_nothing_left(const std::string& dir, const std::vector<std::string>& addresses) {
  struct stat st {};
  EXPECT_NE(::stat(dir.c_str(), &st), 0) << dir << " left behind";
  EXPECT_TRUE(our_shm_objects().empty()) << our_shm_objects().front() << " left behind";
  for (const std::string& a : addresses) {
    IpcObject o = object_of(a);
    unsigned mode = 0;
    if (o.kind == IpcObject::kNone) continue;
    EXPECT_EQ(stat_object(o, &mode), ENOENT) << o.name << " left behind";
  }
}

TEST_P(Conformance, RunDirectoryIsPrivateAndRemoved) {
  std::string path;
  std::vector<std::string> addresses;
  {
    Link l = open_link(*GetParam(), 64);
    path = l.dir->path();
    addresses = l.ep.addresses;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
  expect_nothing_left(path, addresses);
}

// The signal handler's table is small and a long run fills it: a transport removes what
// it created without relying on its registration, both after a link and when its peer
// never came.
TEST_P(Conformance, NothingLeftBehindWhenTheCleanupTableIsFull) {
  std::vector<int> filler;
  for (int s; (s = cleanup::add_path("/nonexistent/ipcbench-filler")) >= 0;) filler.push_back(s);
  std::string linked_dir, unused_dir;
  std::vector<std::string> linked, unused;
  {
    Link l = open_link(*GetParam(), 64);
    linked_dir = l.dir->path();
    linked = l.ep.addresses;
  }
  {
    RunDir dir;
    unused_dir = dir.path();
    unused = GetParam()->listen(dir, 64, testing_support::settings())->endpoint().addresses;
  }
  for (int s : filler) cleanup::forget_path(s);
  ASSERT_FALSE(filler.empty());
  expect_nothing_left(linked_dir, linked);
  expect_nothing_left(unused_dir, unused);
}

TEST_P(Conformance, PeerDeathWhileWaitingIsSeenAsClose) {
  Link l = open_link(*GetParam(), 64);
  // Killed while it waits, once it is past its part of the set-up (see
  // TransportInfo::peer_kill); the recv below waits meanwhile.
  bool settled = false;
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    settled = testing_support::wait_until_settled(l.peer.pid());
    ::kill(l.peer.pid(), SIGKILL);
  });
  std::vector<std::byte> buf(64);
  std::size_t n = 1;
  EXPECT_NO_THROW(n = l.ch->recv(buf));
  EXPECT_EQ(n, 0u);
  killer.join();
  EXPECT_TRUE(settled);
}

TEST_P(Conformance, SendingToADeadPeerIsAnErrorNotACrash) {
  Link l = open_link(*GetParam(), 64);
  // The peer is killed where it waits for a message, after one round trip and once it is
  // past its send of the reply, not while it may still be inside a send (see
  // TransportInfo::peer_kill).
  {
    auto msg = pattern(64, 3);
    std::vector<std::byte> back(64);
    l.ch->send(msg);
    ASSERT_EQ(l.ch->recv(back), 64u);
  }
  EXPECT_TRUE(testing_support::wait_until_settled(l.peer.pid()));
  l.peer.kill_now();
  auto big = pattern(kMaxTestBytes, 9);
  // The first send may still fit in kernel buffers; a few 4 MiB sends cannot.
  EXPECT_THROW(
      {
        for (int i = 0; i < 8; ++i) l.ch->send(big);
      },
      SysError);
}

TEST_P(Conformance, DescribesItself) {
  const TransportInfo& i = GetParam()->info();
  EXPECT_FALSE(i.name.empty());
  EXPECT_FALSE(i.paradigm.empty());
  EXPECT_FALSE(i.reach.empty());
  EXPECT_GE(i.max_message, std::size_t{1} << 20);  // the default matrix goes up to 1 MiB
}

// Network transports listen on loopback unless told otherwise (--bind).
TEST(NetworkTransports, ListenOnLoopbackByDefault) {
  for (const Transport* t : all_transports()) {
    if (t->info().reach.rfind("network", 0) != 0 || !t->info().needs.empty()) continue;
    RunDir dir;
    auto listener = t->listen(dir, 64, testing_support::settings());
    EXPECT_EQ(listener->endpoint().addresses.at(0), "127.0.0.1") << t->info().name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransports, Conformance, ::testing::ValuesIn(all_transports()),
                         [](const auto& info) {
                           return testing_support::test_suffix(info.param->info().name);
                         });

}  // namespace
}  // namespace ipcbench
