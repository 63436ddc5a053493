// boost-mq when the peer dies holding a queue's lock (as when killed mid-copy): the
// other side fails with a clear error instead of blocking for good on a lock nobody
// releases, and never hands on the record the peer was copying.
#include "transports/boost_mq/boost_mq.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/fd.h"
#include "base/run_dir.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

constexpr std::size_t kMax = 4096;

// A forked peer that connects, waits for a byte on `go`, sleeps `delay`, then takes
// the up queue's lock (the one the benchmark side receives from) and dies holding it.
pid_t peer_that_dies_holding_the_lock(const Transport& t, const Endpoint& ep, int go,
                                      std::chrono::milliseconds delay) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  try {
    // Mapped before connecting: once connected, the names are gone.
    QueueLock lock(ep.addresses[1], kBoostMqDepth, boost_mq_record_size(kMax));
    auto ch = t.connect(ep, {std::chrono::steady_clock::now() + std::chrono::seconds(10), {}});
    char c;
    if (::read(go, &c, 1) != 1) ::_exit(2);
    std::this_thread::sleep_for(delay);
    if (::pthread_mutex_lock(lock.get()) != 0) ::_exit(3);
    ::_exit(0);  // holding it
  } catch (...) {
    ::_exit(4);
  }
}

struct Case {
  RunDir dir;
  const Transport* t = find_transport("boost-mq");
  std::unique_ptr<Channel> ch;
  pid_t peer = -1;
  int go[2] = {-1, -1};

  std::unique_ptr<QueueLock> up_lock;  // the lock the peer dies holding

  explicit Case(std::chrono::milliseconds delay) {
    auto listener = t->listen(dir, kMax, TransportSettings{});
    up_lock = std::make_unique<QueueLock>(listener->endpoint().addresses[1], kBoostMqDepth,
                                          boost_mq_record_size(kMax));
    EXPECT_EQ(::pipe(go), 0);
    peer = peer_that_dies_holding_the_lock(*t, listener->endpoint(), go[0], delay);
    ch = listener->accept({std::chrono::steady_clock::now() + std::chrono::seconds(10), {}});
  }
  void release_peer() { EXPECT_EQ(::write(go[1], "g", 1), 1); }
  int reap() {
    int status = 0;
    ::waitpid(peer, &status, 0);
    return status;
  }
  ~Case() {
    ::close(go[0]);
    ::close(go[1]);
  }
};

// The lock is free again once the link has ended (and was released by the guard: the
// dead holder cannot have).
void expect_lock_free(QueueLock& l) {
  ASSERT_EQ(::pthread_mutex_trylock(l.get()), 0) << "the dead peer's lock is still held";
  ::pthread_mutex_unlock(l.get());
}

void expect_died_holding_the_lock(Channel& ch) {
  std::vector<std::byte> buf(kMax);
  try {
    std::size_t n = ch.recv(buf);
    ADD_FAILURE() << "recv returned " << n << " after the peer died holding the lock";
  } catch (const SysError& e) {
    EXPECT_NE(std::string(e.what()).find("died holding a queue's lock"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(ch.send(std::span(buf).first(64)), SysError);  // the link stays failed
}

TEST(BoostMq, PeerDeadHoldingTheLockFailsTheLink) {
  Case c(std::chrono::milliseconds(0));
  c.release_peer();
  ASSERT_EQ(c.reap(), 0);  // it took the lock and died with it
  expect_died_holding_the_lock(*c.ch);
  expect_lock_free(*c.up_lock);
}

TEST(BoostMq, PeerDyingHoldingTheLockWhileWeWaitFailsTheLink) {
  Case c(std::chrono::milliseconds(100));
  c.release_peer();
  // Inside a timed wait when the peer takes the lock and dies: the wait's re-lock is
  // what would block for ever.
  expect_died_holding_the_lock(*c.ch);
  EXPECT_EQ(c.reap(), 0);
  expect_lock_free(*c.up_lock);
}

TEST(BoostMq, ALockHeldByALiveThreadIsLeftAlone) {
  RunDir dir;
  auto listener = find_transport("boost-mq")->listen(dir, kMax, TransportSettings{});
  QueueLock l(listener->endpoint().addresses[0], kBoostMqDepth, boost_mq_record_size(kMax));
  EXPECT_FALSE(l.held_by_the_dead());  // free
  ASSERT_EQ(::pthread_mutex_lock(l.get()), 0);
  std::thread other([&] { EXPECT_FALSE(l.held_by_the_dead()); });
  other.join();
  EXPECT_EQ(::pthread_mutex_unlock(l.get()), 0);  // still ours
}

}  // namespace
}  // namespace ipcbench
