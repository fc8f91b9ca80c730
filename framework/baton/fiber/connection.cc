#include "baton/fiber/connection.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace baton::fiber {
namespace {

Task<absl::StatusOr<size_t>> ReadTask(Connection* c) {
  co_return co_await c->Read();
}
Task<absl::Status> DrainTask(Connection* c, size_t at_most) {
  co_return co_await c->Drain(at_most);
}
Task<absl::Status> FlushTask(Connection* c) { co_return co_await c->Flush(); }

}  // namespace

absl::StatusOr<size_t> Read(Connection& c) { return Await(ReadTask(&c)); }

absl::Status Drain(Connection& c, size_t at_most) {
  return Await(DrainTask(&c, at_most));
}

absl::Status Flush(Connection& c) { return Await(FlushTask(&c)); }

absl::Status ShutdownWrite(Connection& c) { return Await(c.ShutdownWrite()); }

ConnectionHandler ServeInFiber(FiberHandler handler, size_t stack_size) {
  auto shared = std::make_shared<FiberHandler>(std::move(handler));
  return [shared, stack_size](Connection& conn) -> Task<void> {
    FiberOptions options;
    options.name = absl::StrCat("conn fd ", conn.fd());
    options.stack_size = stack_size;
    return Run([shared, &conn] { (*shared)(conn); }, std::move(options));
  };
}

}  // namespace baton::fiber
