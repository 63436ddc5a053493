// The lock inside a Boost.Interprocess message_queue, reached so that it can be released
// when the process holding it has died (boost-mq) and taken by tests that die with it.
#pragma once

#include <pthread.h>

#include <boost/interprocess/mapped_region.hpp>
#include <string>

namespace ipcbench {

// Each boost-mq queue holds kBoostMqDepth messages of boost_mq_record_size(the run's
// largest message) bytes.
inline constexpr std::size_t kBoostMqDepth = 10;
std::size_t boost_mq_record_size(std::size_t max_message);

class QueueLock {
 public:
  // Maps the queue named `name` (shared memory, as Boost names it) and finds its lock;
  // throws ProtocolError when the segment is not a queue of this depth and message size
  // (a Boost whose layout differs from 1.74's).
  QueueLock(const std::string& name, std::size_t depth, std::size_t msg_size);
  pthread_mutex_t* get() { return mutex_; }
  // Call only once every other process that uses the queue has exited: whether the lock
  // is held by a thread outside this process (so, by a dead one).
  bool held_by_the_dead() const;
  // Whether the lock is held by a thread that has exited (its /proc/<tid> is gone or a
  // zombie's): for a queue that several live processes share (the fan-in's request
  // queue), where a holder outside this process may be alive.
  bool held_by_a_dead_thread() const;
  // Releases a lock held_by_the_dead() as glibc's unlock would, and wakes a waiter.
  void release();

 private:
  boost::interprocess::mapped_region region_;
  pthread_mutex_t* mutex_;
};

}  // namespace ipcbench
