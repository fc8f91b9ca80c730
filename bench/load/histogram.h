// LatencyHistogram: a fixed-size log-linear histogram of nanosecond values.
//
// Every power of two is split into 2^kSubBits linear sub-buckets, so a
// recorded value is reported within 1/2^kSubBits (about 3%) of its true
// value. Recording is a few integer operations on a fixed array: nothing is
// allocated per value. Histograms of several threads are combined with
// Merge().
//
//   LatencyHistogram h;
//   h.Record(12345);
//   uint64_t p99 = h.Percentile(99.0);
#ifndef BATON_BENCH_LOAD_HISTOGRAM_H_
#define BATON_BENCH_LOAD_HISTOGRAM_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace baton::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr int kMaxExponent = 44;  // up to ~4.9 hours in ns
  static constexpr size_t kBuckets = (kMaxExponent + 1) * kSub;

  void Record(uint64_t value) {
    ++counts_[Index(value)];
    ++total_;
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
  }

  uint64_t count() const { return total_; }

  // The upper bound of the bucket holding the p-th percentile (0 < p <= 100).
  uint64_t Percentile(double p) const {
    if (total_ == 0) return 0;
    uint64_t rank =
        static_cast<uint64_t>(p / 100.0 * static_cast<double>(total_));
    if (rank == 0) rank = 1;
    if (rank > total_) rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return UpperBound(i);
    }
    return UpperBound(kBuckets - 1);
  }

 private:
  // Values below kSub map linearly to bucket 0..kSub-1 (exponent 0); above,
  // exponent e >= 1 covers [kSub << (e-1), kSub << e) in kSub steps.
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    int msb = 63 - std::countl_zero(v);  // >= kSubBits
    int exponent = msb - kSubBits + 1;
    if (exponent > kMaxExponent) return kBuckets - 1;
    uint64_t sub = (v >> (msb - kSubBits)) - kSub;  // 0..kSub-1
    return static_cast<size_t>(exponent) * kSub + static_cast<size_t>(sub);
  }

  static uint64_t UpperBound(size_t index) {
    uint64_t exponent = index / kSub;
    uint64_t sub = index % kSub;
    if (exponent == 0) return sub;
    int shift = static_cast<int>(exponent) - 1;
    return ((kSub + sub + 1) << shift) - 1;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
};

}  // namespace baton::bench

#endif  // BATON_BENCH_LOAD_HISTOGRAM_H_
