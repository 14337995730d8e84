#ifndef RLAB_SIM_ATTEMPT_PAYLOAD_H_
#define RLAB_SIM_ATTEMPT_PAYLOAD_H_

// An attempt's outcome packed into a simulated event's 32-bit payload (kAttemptEnd): kind, HTTP
// status, committed, and the copy of its call (0 unless hedged or fanned out). Shared by the
// general loop (sim_engine.cc) and the flat path (flat_run.cc).

#include <cstdint>

#include "rlab/core/outcome.h"

namespace rlab {

inline uint32_t PackAttempt(const Outcome& o, bool committed, int copy = 0) {
  return static_cast<uint32_t>(o.kind) | (static_cast<uint32_t>(o.http_status) << 4) |
         (committed ? 1u << 14 : 0u) | (static_cast<uint32_t>(copy) << 16);
}

inline int AttemptCopy(uint32_t p) { return static_cast<int>((p >> 16) & 0xFF); }

// The outcome, with the Retry-After the engine kept beside the event (HTTP answers only).
inline Outcome UnpackAttempt(uint32_t p, int64_t retry_after_ns) {
  Outcome o;
  o.kind = static_cast<OutcomeKind>(p & 0xF);
  o.http_status = static_cast<int16_t>((p >> 4) & 0x3FF);
  o.retry_after_ns = o.kind == OutcomeKind::kHttpStatus ? retry_after_ns : -1;
  return o;
}

inline bool AttemptCommitted(uint32_t p) { return (p >> 14) & 1; }

}  // namespace rlab

#endif  // RLAB_SIM_ATTEMPT_PAYLOAD_H_
