#ifndef RLAB_LIVE_LIVE_ORDER_H_
#define RLAB_LIVE_LIVE_ORDER_H_

// One live order's slot, the chunks they are allocated in, and the job that carries an order
// from the intake to a worker: the vocabulary shared by the live engine's parts.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "rlab/model/run_result.h"
#include "rlab/policy/concurrency_limit.h"

namespace rlab {

// Orders' slots are allocated (and released) this many at a time.
inline constexpr int kLiveOrderChunkBits = 10;
inline constexpr int64_t kLiveOrderChunk = int64_t{1} << kLiveOrderChunkBits;

// One order's state. `status` is the publication point: every other field an order's owner
// wrote is visible to a reader that saw a terminal status (release / acquire).
struct LiveOrderSlot {
  std::atomic<uint8_t> status{0};
  uint8_t reason = 0;
  int32_t key = 0;
  int64_t deadline_ns = 0;
  OrderRecord record;
  // Set by Submit when the caller gave one; freed when the order ends (Finish).
  std::unique_ptr<std::string> idempotency_key;
  // intake.limit: the order's permit, handed back when the order ends.
  LimitToken intake_token;
  bool holds_intake = false;
};

// kLiveOrderChunk consecutive orders' slots. Freed when the last reference goes: the order
// table's own (dropped once every order in it is terminal and older than the retained history)
// and each OrderRef's.
struct LiveOrderChunk {
  explicit LiveOrderChunk(int64_t base) : base_id(base) {}
  const int64_t base_id;
  std::atomic<int64_t> refs{1};
  std::atomic<int64_t> unfinished{0};  // slots handed out and not yet terminal
  std::array<LiveOrderSlot, kLiveOrderChunk> slots;
  // The slot of order `id`, which must be in this chunk.
  LiveOrderSlot& slot(int64_t id) { return slots[static_cast<size_t>(id - base_id)]; }
};

// An order on its way to a worker.
struct LiveJob {
  LiveOrderChunk* chunk = nullptr;
  int64_t id = 0;
  // The order's slot.
  LiveOrderSlot& slot() const { return chunk->slot(id); }
};

}  // namespace rlab

#endif  // RLAB_LIVE_LIVE_ORDER_H_
