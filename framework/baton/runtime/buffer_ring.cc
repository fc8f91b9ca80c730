#include "baton/runtime/buffer_ring.h"

#include <sys/mman.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace baton {

BufferRing::BufferRing(io_uring* ring, uint16_t group_id, unsigned count,
                       unsigned size)
    : uring_(ring), group_id_(group_id), count_(count), size_(size) {}

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(
    io_uring* ring, uint16_t group_id, unsigned count, unsigned size) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0 || size == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "buffer ring needs a power-of-two count <= 32768 and a non-zero "
        "size, got count=%u size=%u",
        count, size));
  }
  std::unique_ptr<BufferRing> br(new BufferRing(ring, group_id, count, size));
  br->ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem = mmap(nullptr, br->ring_bytes_, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "mmap of %u-entry buffer ring failed: %s", count, strerror(errno)));
  }
  br->ring_ = static_cast<io_uring_buf_ring*>(mem);

  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br->ring_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  if (int ret = io_uring_register_buf_ring(ring, &reg, 0); ret < 0) {
    munmap(br->ring_, br->ring_bytes_);
    br->ring_ = nullptr;
    return absl::UnavailableError(absl::StrFormat(
        "io_uring_register_buf_ring: %s (kernel older than 5.19?)",
        strerror(-ret)));
  }
  br->buffers_.reset(new char[static_cast<size_t>(count) * size]);
  io_uring_buf_ring_init(br->ring_);
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br->ring_, br->buffers_.get() + size_t{i} * size,
                          size, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br->ring_, static_cast<int>(count));
  return br;
}

BufferRing::~BufferRing() {
  if (ring_ == nullptr) return;
  io_uring_unregister_buf_ring(uring_, group_id_);
  munmap(ring_, ring_bytes_);
}

void BufferRing::Recycle(uint16_t bid) {
  io_uring_buf_ring_add(ring_, buffers_.get() + size_t{bid} * size_, size_, bid,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace baton
