// BufferRing: a provided-buffer ring registered with one io_uring.
//
// Multishot receives pick a buffer from the ring for each completion; the
// consumer copies the bytes out and hands the buffer back with Recycle() at
// once, so the ring only holds bytes for the instant between a CQE and its
// dispatch. An empty ring makes the kernel end multishot receives with
// -ENOBUFS, which the net layer treats as back-pressure and re-arms.
//
// Set up by hand (mmap + io_uring_register_buf_ring) because liburing 2.3 has
// no io_uring_setup_buf_ring. Reactor-thread only.
//
//   auto ring = BufferRing::Create(&uring, /*group_id=*/0, 512, 16384);
//   absl::string_view bytes = (*ring)->View(bid, cqe_res);
//   Append(bytes); (*ring)->Recycle(bid);
#ifndef BATON_RUNTIME_BUFFER_RING_H_
#define BATON_RUNTIME_BUFFER_RING_H_

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

namespace baton {

class BufferRing {
 public:
  // `count` must be a power of two (at most 32768).
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(io_uring* ring,
                                                            uint16_t group_id,
                                                            unsigned count,
                                                            unsigned size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  unsigned buffer_size() const { return size_; }
  unsigned count() const { return count_; }

  std::string_view View(uint16_t bid, size_t len) const {
    return {buffers_.get() + static_cast<size_t>(bid) * size_, len};
  }
  // Gives buffer `bid` back to the kernel.
  void Recycle(uint16_t bid);

 private:
  BufferRing(io_uring* ring, uint16_t group_id, unsigned count, unsigned size);

  io_uring* uring_;
  uint16_t group_id_;
  unsigned count_;
  unsigned size_;
  io_uring_buf_ring* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  std::unique_ptr<char[]> buffers_;
};

}  // namespace baton

#endif  // BATON_RUNTIME_BUFFER_RING_H_
