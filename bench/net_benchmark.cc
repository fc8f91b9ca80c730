// Micro-benchmarks of the data path's building blocks: the inbound buffer
// and the handoff wire format. Run: ./build/bench/net_benchmark
#include <benchmark/benchmark.h>

#include <string>

#include "baton/handoff/wire.h"
#include "baton/net/byte_buffer.h"

namespace baton {
namespace {

// Append a message-sized chunk, consume it (the echo pattern).
void BM_ByteBufferAppendConsume(benchmark::State& state) {
  const std::string chunk(static_cast<size_t>(state.range(0)), 'x');
  ByteBuffer buffer;
  for (auto _ : state) {
    buffer.Append(chunk);
    benchmark::DoNotOptimize(buffer.data());
    buffer.Consume(buffer.size());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ByteBufferAppendConsume)->Arg(64)->Arg(4096)->Arg(65536);

// Partial consumption: a parser that leaves half a request behind each time.
void BM_ByteBufferPartialConsume(benchmark::State& state) {
  const std::string chunk(static_cast<size_t>(state.range(0)), 'x');
  ByteBuffer buffer;
  for (auto _ : state) {
    buffer.Append(chunk);
    buffer.Consume(buffer.size() - chunk.size() / 2);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ByteBufferPartialConsume)->Arg(64)->Arg(4096);

handoff::Snapshot MakeSnapshot(int connections, size_t bytes_each) {
  handoff::Snapshot s;
  for (int i = 0; i < connections; ++i) {
    DetachedConnection c;
    c.fd = i;
    c.inbound.assign(bytes_each, 'i');
    c.outbound.assign(bytes_each / 2, 'o');
    s.connections.push_back(std::move(c));
  }
  return s;
}

// Handoff snapshot encode, per connection.
void BM_WireEncode(benchmark::State& state) {
  handoff::Snapshot s = MakeSnapshot(1000, static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(handoff::EncodeSnapshot(s));
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_WireEncode)->Arg(0)->Arg(100)->Arg(4096);

// Handoff snapshot decode (with every length check), per connection.
void BM_WireDecode(benchmark::State& state) {
  std::string bytes = handoff::EncodeSnapshot(
      MakeSnapshot(1000, static_cast<size_t>(state.range(0))));
  for (auto _ : state) {
    auto decoded = handoff::DecodeSnapshot(bytes);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_WireDecode)->Arg(0)->Arg(100)->Arg(4096);

}  // namespace
}  // namespace baton
