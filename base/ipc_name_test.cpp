#include "base/ipc_name.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "base/cleanup.h"

namespace ipcbench {
namespace {

namespace fs = std::filesystem;
using ipc_name::Kind;
using ipc_name::OwnedNames;

// Makes the objects a transport would, under the owner's names.
void create_shm(const std::string& name) {
  int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << name;
  ::close(fd);
}
void create_mqueue(const std::string& name) {
  mq_attr attr{};
  attr.mq_maxmsg = 1;
  attr.mq_msgsize = 16;
  mqd_t q = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
  ASSERT_NE(q, static_cast<mqd_t>(-1)) << name;
  ::mq_close(q);
}
std::string shm_file(const std::string& name) { return "/dev/shm/" + name; }
// By mq_open, not /dev/mqueue: that file system need not be mounted.
bool mqueue_exists(const std::string& name) {
  mqd_t q = ::mq_open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (q == static_cast<mqd_t>(-1)) return errno != ENOENT;
  ::mq_close(q);
  return true;
}

TEST(OwnedNames, TakesTheSweptNamesAndRemovesThemOnDestruction) {
  std::string shm, down, up;
  {
    OwnedNames s(Kind::kShm, {""});
    OwnedNames q(Kind::kMqueue, {"-down", "-up"});
    shm = s[0];
    down = q[0];
    up = q[1];
    // The names the sweep reads (base/ipc_name.h), one per suffix, on one base.
    EXPECT_EQ(RunStamp::parse(shm), RunStamp::self());
    EXPECT_EQ(RunStamp::parse(down), RunStamp::self());
    EXPECT_EQ(down.substr(0, down.size() - 5), up.substr(0, up.size() - 3));
    create_shm(shm);
    create_mqueue(down);
    create_mqueue(up);
    EXPECT_TRUE(fs::exists(shm_file(shm)));
    EXPECT_TRUE(mqueue_exists((down)));
  }
  EXPECT_FALSE(fs::exists(shm_file(shm)));
  EXPECT_FALSE(mqueue_exists((down)));
  EXPECT_FALSE(mqueue_exists((up)));
}

TEST(OwnedNames, RemoveIsEarlyAndOnce) {
  OwnedNames b(Kind::kBoostMq, {"-down", "-up"});
  create_shm(b[0]);
  b.remove();
  EXPECT_FALSE(fs::exists(shm_file(b[0])));
  create_shm(b[0]);  // someone else's now: a second remove (the destructor) leaves it
  b.remove();
  EXPECT_TRUE(fs::exists(shm_file(b[0])));
  ::shm_unlink(("/" + b[0]).c_str());
}

TEST(OwnedNames, TheSignalHandlerRemovesWhatIsStillNamed) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cleanup::install_signal_handlers();
    OwnedNames s(Kind::kShm, {""});
    OwnedNames q(Kind::kMqueue, {"-down"});
    int fd = ::shm_open(("/" + s[0]).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    mq_attr attr{};
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = 16;
    mqd_t m = ::mq_open(q[0].c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    std::string both = s[0] + "\n" + q[0] + "\n";
    if (fd < 0 || m == static_cast<mqd_t>(-1) ||
        ::write(p[1], both.data(), both.size()) != static_cast<ssize_t>(both.size()))
      ::_exit(2);
    ::raise(SIGTERM);  // the owners' destructors never run
    ::_exit(3);
  }
  ::close(p[1]);
  std::string got(512, '\0');
  ssize_t n = ::read(p[0], got.data(), got.size());
  ::close(p[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
  ASSERT_GT(n, 0);
  got.resize(static_cast<std::size_t>(n));
  std::string shm = got.substr(0, got.find('\n'));
  std::string mq = got.substr(got.find('\n') + 1);
  mq.pop_back();
  EXPECT_FALSE(fs::exists(shm_file(shm))) << shm;
  EXPECT_FALSE(mqueue_exists((mq))) << mq;
}

}  // namespace
}  // namespace ipcbench
