// A heap buffer whose first byte sits on a 64-byte boundary.
//
// Message buffers are cache-line aligned so that copies into and out of shared-memory
// rings (whose payloads are 64-byte aligned) never take glibc's slow path for a
// destination offset by 16 bytes from its source.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace ipcbench {

class AlignedBuffer {
 public:
  static constexpr std::size_t kAlign = 64;
  explicit AlignedBuffer(std::size_t size)
      : size_(size),
        data_(static_cast<std::byte*>(::operator new(size ? size : 1, std::align_val_t(kAlign)))) {
    std::memset(data_.get(), 0, size_);
  }
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  operator std::span<std::byte>() { return {data_.get(), size_}; }
  operator std::span<const std::byte>() const { return {data_.get(), size_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const { ::operator delete(p, std::align_val_t(kAlign)); }
  };
  std::size_t size_;
  std::unique_ptr<std::byte, Free> data_;
};

}  // namespace ipcbench
