// The run directory goes away on a signal however many paths a long run handed out.
#include "base/run_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/cleanup.h"
#include "harness/context.h"

namespace ipcbench {
namespace {

TEST(RunDir, SigtermRemovesEveryPathOfALongRun) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // a run that made more paths than the clean-up table has slots
    ::close(fds[0]);
    cleanup::install_signal_handlers();
    RunDir dir;
    for (int i = 0; i < 600; ++i) {
      std::string p = dir.make_path(i % 2 ? "fifo" : "file");
      int rc = i % 2 ? ::mkfifo(p.c_str(), 0600) : ::open(p.c_str(), O_CREAT | O_WRONLY, 0600);
      if (rc < 0) ::_exit(3);
      if (i % 2 == 0) ::close(rc);
    }
    const std::string& path = dir.path();
    if (::write(fds[1], path.data(), path.size()) != static_cast<ssize_t>(path.size())) ::_exit(4);
    ::raise(SIGTERM);
    ::_exit(5);  // not reached: the handler re-raises with the default action
  }
  ::close(fds[1]);
  std::string path;
  char buf[256];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) path.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  ASSERT_FALSE(path.empty());
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << path << " left behind";
}

TEST(RunDir, DestructorRemovesWhatTheTransportsLeft) {
  std::string path;
  {
    RunDir dir;
    path = dir.path();
    for (int i = 0; i < 300; ++i) {
      int fd = ::open(dir.make_path("file").c_str(), O_CREAT | O_WRONLY, 0600);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
    // A file the run made under a name of its own (a library's socket file, say).
    int fd = ::open((path + "/other").c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0) << path << " left behind";
}

// The context says where run directories are made and on what file system: on tmpfs a
// mapped file (mmap-*) is plain memory, on a disk file system the kernel writes it back.
TEST(RunDir, ContextNamesTheBaseAndItsFileSystem) {
  EXPECT_EQ(file_system_of("/proc/self"), "proc");
  EXPECT_EQ(file_system_of("/proc"), "proc");
  EXPECT_NE(file_system_of("/"), "unavailable");
  EXPECT_EQ(file_system_of("/no/such/path"), "unavailable");
  std::string base, fs;
  for (const auto& [k, v] : machine_context()) {
    if (k == "run_dir_base") base = v;
    if (k == "run_dir_fs") fs = v;
  }
  EXPECT_EQ(base, run_dir_base());
  EXPECT_EQ(fs, file_system_of(base));
  EXPECT_NE(fs, "unavailable");
}

}  // namespace
}  // namespace ipcbench
