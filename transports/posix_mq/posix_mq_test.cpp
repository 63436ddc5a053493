// posix-mq when the user's queue memory (RLIMIT_MSGQUEUE, one budget for all of a user's
// queues) has no room: creating the queues fails with an error that names the budget and
// says it is shared, not the bare "Too many open files" the kernel's EMFILE reads as.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cerrno>
#include <string>

#include "base/error.h"
#include "base/run_dir.h"
#include "transports/many.h"
#include "transports/registry.h"

namespace ipcbench {
namespace {

// Lowers this process's soft RLIMIT_MSGQUEUE for its lifetime.
class QueueBudget {
 public:
  explicit QueueBudget(rlim_t bytes) {
    EXPECT_EQ(::getrlimit(RLIMIT_MSGQUEUE, &saved_), 0);
    rlimit low = saved_;
    low.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_MSGQUEUE, &low), 0);
  }
  ~QueueBudget() { ::setrlimit(RLIMIT_MSGQUEUE, &saved_); }
  QueueBudget(const QueueBudget&) = delete;
  QueueBudget& operator=(const QueueBudget&) = delete;

 private:
  rlimit saved_{};
};

template <class F>
void expect_budget_error(F make, const char* what) {
  try {
    make();
    ADD_FAILURE() << what << ": made its queues within a 2000-byte budget";
  } catch (const SysError& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), EMFILE) << msg;
    EXPECT_NE(msg.find("RLIMIT_MSGQUEUE is 2000 bytes for all of this user's queues"),
              std::string::npos)
        << msg;
  }
}

TEST(PosixMq, NoRoomInTheUsersQueueMemoryIsNamed) {
  const Transport* t = find_transport("posix-mq");
  ASSERT_NE(t, nullptr);
  RunDir dir;
  QueueBudget budget(2000);  // not one queue of depth 10 x 1024 bytes fits
  expect_budget_error([&] { t->listen(dir, 64, TransportSettings{}); }, "listen");
  expect_budget_error([&] { t->listen_fan_in(dir, 64, TransportSettings{}, 4, "shared-queue"); },
                      "listen_fan_in");
}

}  // namespace
}  // namespace ipcbench
