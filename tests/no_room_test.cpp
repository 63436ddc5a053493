// A shared-memory link has its memory allocated when it is made (posix_fallocate), so a
// file system without room for it (a small /dev/shm, a container's tmpfs) fails then, with
// a clear error and nothing left behind, instead of killing a process with SIGBUS when it
// first touches a page that has no room, as a file only sized (ftruncate) can.
//
// The error path is played by RLIMIT_FSIZE in a child process: the kernel then refuses
// to grow a file past the limit (EFBIG), where a full tmpfs refuses with ENOSPC.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

#include "base/fd.h"
#include "base/run_dir.h"
#include "tests/test_support.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

using testing_support::Scratch;

constexpr std::size_t kMiB = 1 << 20;

// Runs f() in a child whose files may not grow past `limit` bytes; returns what f()
// threw ("" when it threw nothing), or a note when the child died; *child is its pid.
template <class F>
std::string in_child_with_file_limit(std::size_t limit, const Scratch& s, F f,
                                     pid_t* child = nullptr) {
  int p[2];
  if (::pipe(p) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    ::setenv("TMPDIR", (s.dir / "tmp").c_str(), 1);
    ::setenv("XDG_RUNTIME_DIR", (s.dir / "tmp").c_str(), 1);
    ::signal(SIGXFSZ, SIG_IGN);  // the call fails with EFBIG instead
    rlimit r{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &r);
    std::string what;
    try {
      f();
    } catch (const std::exception& e) {
      what = e.what();
    }
    (void)!::write(p[1], what.data(), what.size());
    ::_exit(0);
  }
  ::close(p[1]);
  if (child) *child = pid;
  std::string what;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) what.append(buf, n);
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "the child died (signal " + std::to_string(WTERMSIG(status)) + ")";
  return what;
}

TEST(SizeFile, AllocatesTheStorageNotOnlyTheLength) {
  UniqueFd fd(::memfd_create("ipcbench-size-file-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  size_file(fd.get(), 3 * kMiB, "test object");
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, static_cast<off_t>(3 * kMiB));
  EXPECT_GE(static_cast<std::size_t>(st.st_blocks) * 512, 3 * kMiB);  // ftruncate: 0 blocks
}

TEST(SizeFile, AFileThatCannotGrowIsAnErrorNamingIt) {
  Scratch s;
  std::string err = in_child_with_file_limit(kMiB, s, [] {
    UniqueFd fd(::memfd_create("ipcbench-size-file-test", MFD_CLOEXEC));
    size_file(fd.get(), 3 * kMiB, "test object");
  });
  EXPECT_NE(err.find("test object: cannot allocate 3 MiB"), std::string::npos) << err;
}

class NoRoom : public testing::TestWithParam<const char*> {};

TEST_P(NoRoom, ALinksMemoryIsAllocatedWhenItIsMade) {
  const Transport* t = find_transport(GetParam());
  ASSERT_NE(t, nullptr);
  RunDir dir;
  auto listener = t->listen(dir, 64, testing_support::settings());
  std::string object = listener->endpoint().addresses.at(0);
  if (object.find('/') == std::string::npos)
    object = "/dev/shm/" + object;  // a POSIX shared-memory object's name (a file's path else)
  struct stat st {};
  ASSERT_EQ(::stat(object.c_str(), &st), 0) << object;
  EXPECT_GT(st.st_size, 0);
  EXPECT_GE(static_cast<off_t>(st.st_blocks) * 512, st.st_size) << object;
}

TEST_P(NoRoom, ALinkWithoutRoomFailsWhenMadeAndLeavesNothing) {
  Scratch s;
  const Transport* t = find_transport(GetParam());
  ASSERT_NE(t, nullptr);
  pid_t child = 0;
  std::string err = in_child_with_file_limit(
      kMiB, s,
      [&] {
        RunDir dir;
        auto listener = t->listen(dir, 64, testing_support::settings());
      },
      &child);
  EXPECT_NE(err.find("cannot allocate"), std::string::npos) << err;
  // The child's objects carry its pid or, if the stamp was made before the fork, ours.
  for (pid_t run : {child, ::getpid()})
    EXPECT_TRUE(testing_support::leftovers(s, run).empty())
        << testing_support::leftovers(s, run).front();
}

INSTANTIATE_TEST_SUITE_P(Forms, NoRoom,
                         testing::Values("shm-spin", "shm-futex", "shm-spin-zerocopy", "mmap-spin",
                                         "mmap-futex", "shm-bcast"),
                         [](const auto& info) { return testing_support::test_suffix(info.param); });

}  // namespace
}  // namespace ipcbench
