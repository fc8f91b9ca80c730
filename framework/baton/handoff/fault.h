// Fault injection for handoff tests.
//
// BATON_HANDOFF_FAULT=child:STEP or parent:STEP makes that side of the *next*
// handoff fail at STEP: it raises SIGKILL there, except for the steps named
// `hang_*` (stop responding forever) and the non-fatal ones a Take() reads
// (`wire_version`: the child claims a different protocol version;
// `ack_after_parent_exit`: the child waits for the old process to be gone
// before its first ACK, which makes a parent killed between a batch and its
// ACK deterministic). Several faults are separated by commas
// (`parent:after_batch_sent,child:ack_after_parent_exit`). One-shot: the
// process that reads the variable removes it from its environment, and a
// parent passes its child: faults only to the first child it starts, so a
// later restart succeeds. Steps are listed in docs/restart.md.
//
//   Fault::Load();                       // once, at start
//   Fault::Hit(Side::kChild, "after_hello");
#ifndef BATON_HANDOFF_FAULT_H_
#define BATON_HANDOFF_FAULT_H_

#include <string>
#include <string_view>
#include <vector>

namespace baton::handoff {

enum class Side { kParent, kChild };

inline constexpr const char* kFaultEnv = "BATON_HANDOFF_FAULT";

class Fault {
 public:
  // Reads and clears BATON_HANDOFF_FAULT.
  static void Load();
  // If the armed fault is `side`:`step`, acts it out (never returns for the
  // kill and hang steps) and disarms.
  static void Hit(Side side, std::string_view step);
  // True (and disarms) if `side`:`step` is armed; for non-fatal faults.
  static bool Take(Side side, std::string_view step);
  // The child: faults to hand to the next child, if any (then forgotten).
  static std::string TakeForChild();

 private:
  static std::vector<std::string>& armed();
};

}  // namespace baton::handoff

#endif  // BATON_HANDOFF_FAULT_H_
