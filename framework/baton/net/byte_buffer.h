// ByteBuffer: a contiguous FIFO of bytes.
//
// Bytes are appended at the back and consumed from the front; the unconsumed
// bytes are always contiguous (`view()`), which is what protocol parsers
// want. Consumed space is reclaimed by moving the remainder down once it is
// at least half the storage, so appending is amortised O(1) and memory stays
// at about twice the peak of unconsumed bytes. Pointers into the buffer are
// invalidated by Append and Reserve, never by Consume.
//
//   ByteBuffer b;
//   b.Append("GET / HTTP/1.1\r\n");
//   size_t n = Parse(b.view());
//   b.Consume(n);
#ifndef BATON_NET_BYTE_BUFFER_H_
#define BATON_NET_BYTE_BUFFER_H_

#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace baton {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(std::string_view bytes) { Append(bytes); }
  ByteBuffer(ByteBuffer&& other) noexcept { *this = std::move(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    data_ = std::move(other.data_);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
    return *this;
  }

  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  const char* data() const { return data_.get() + begin_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return capacity_; }

  void Append(std::string_view bytes) {
    if (bytes.empty()) return;
    std::memcpy(Reserve(bytes.size()), bytes.data(), bytes.size());
    end_ += bytes.size();
  }
  // Room for `n` more bytes at the back; fill it, then Commit.
  char* Reserve(size_t n);
  void Commit(size_t n) {
    assert(end_ + n <= capacity_);
    end_ += n;
  }
  size_t tail_room() const { return capacity_ - end_; }

  void Consume(size_t n) {
    assert(n <= size());
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void Clear() { begin_ = end_ = 0; }
  // Frees the storage (an idle connection keeps no buffer).
  void Release() {
    data_.reset();
    capacity_ = begin_ = end_ = 0;
  }
  std::string ToString() const { return std::string(view()); }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

inline char* ByteBuffer::Reserve(size_t n) {
  if (capacity_ - end_ >= n) return data_.get() + end_;
  const size_t live = size();
  if (begin_ > 0 && capacity_ - live >= n && begin_ >= live) {
    std::memmove(data_.get(), data_.get() + begin_, live);
  } else {
    size_t cap = capacity_ < 256 ? 256 : capacity_;
    while (cap - live < n) cap *= 2;
    std::unique_ptr<char[]> grown(new char[cap]);
    if (live > 0) std::memcpy(grown.get(), data_.get() + begin_, live);
    data_ = std::move(grown);
    capacity_ = cap;
  }
  begin_ = 0;
  end_ = live;
  return data_.get() + end_;
}

}  // namespace baton

#endif  // BATON_NET_BYTE_BUFFER_H_
