#ifndef RLAB_SIM_EVENT_QUEUE_H_
#define RLAB_SIM_EVENT_QUEUE_H_

#include <cstdint>
#include <vector>

#include "rlab/core/invariant.h"

namespace rlab {

// One scheduled event: when, a tie-breaking sequence number, and a small payload that the engine
// interprets (type, a slot or index, and a generation to recognise stale events).
struct SimEvent {
  int64_t t_ns;
  uint64_t seq;
  uint32_t type;
  uint32_t a;
  uint32_t b;
  uint32_t c;
};

// A min-heap of events ordered by (time, sequence number): events at the same instant run in the
// order they were scheduled, which makes every run with the same seed bit-identical.
//
// Beside the heap, one "lane" holds at most one event outside it: the next open-loop arrival,
// which is always pending and would otherwise cost a heap push and pop per order. A lane event
// takes its sequence number from the same counter, and Pop takes whichever of the lane and the
// heap's top is earlier by (time, sequence): the order of events is exactly the heap's alone.
class EventQueue {
 public:
  // Schedules an event; returns its sequence number.
  uint64_t Push(int64_t t_ns, uint32_t type, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0) {
    // The new event stays in registers while the hole climbs (no store and reload of it).
    const SimEvent e{t_ns, next_seq_, type, a, b, c};
    heap_.emplace_back();
    SiftUp(heap_.size() - 1, e);
    return next_seq_++;
  }
  // Schedules an event in the lane, which must be free (see the class comment); returns its
  // sequence number.
  uint64_t PushLane(int64_t t_ns, uint32_t type, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0) {
    RLAB_INVARIANT(lane_free(), "event lane taken at t = %d ns", t_ns);  // it would be lost
    lane_ = SimEvent{t_ns, next_seq_, type, a, b, c};
    lane_key_ = Key(lane_);
    return next_seq_++;
  }
  bool lane_free() const { return lane_key_ == kFreeLane; }
  // Removes and returns the earliest event; the queue must not be empty.
  SimEvent Pop() {
    if (heap_.empty() || lane_key_ < Key(heap_.front())) {
      lane_key_ = kFreeLane;
      return lane_;
    }
    const SimEvent top = heap_.front();
    const SimEvent last = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) SiftDown(0, last);
    return top;
  }
  const SimEvent& Top() const {
    return heap_.empty() || lane_key_ < Key(heap_.front()) ? lane_ : heap_.front();
  }
  bool empty() const { return heap_.empty() && lane_free(); }
  size_t size() const { return heap_.size() + (lane_free() ? 0 : 1); }
  void Reserve(size_t n) { heap_.reserve(n); }

 private:
  // (time, sequence) as one 128-bit key: one branch-free comparison instead of two branches.
  static unsigned __int128 Key(const SimEvent& e) {
    return (static_cast<unsigned __int128>(static_cast<uint64_t>(e.t_ns) ^ (uint64_t{1} << 63))
            << 64) |
           e.seq;
  }
  // A 4-ary heap: shallower than a binary one, and its children share cache lines. Both sifts
  // move a hole and write `e` once, where it belongs.
  void SiftUp(size_t i, const SimEvent& e) {
    const unsigned __int128 key = Key(e);
    while (i > 0) {
      const size_t parent = (i - 1) / 4;
      if (!(key < Key(heap_[parent]))) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  void SiftDown(size_t i, const SimEvent& e) {
    const unsigned __int128 key = Key(e);
    const size_t n = heap_.size();
    for (;;) {
      const size_t first = 4 * i + 1;
      if (first >= n) break;
      size_t best = first;
      unsigned __int128 best_key = Key(heap_[first]);
      const size_t last = first + 4 < n ? first + 4 : n;
      for (size_t c = first + 1; c < last; ++c) {
        const unsigned __int128 k = Key(heap_[c]);
        if (k < best_key) {
          best = c;
          best_key = k;
        }
      }
      if (!(best_key < key)) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = e;
  }

  // No real event has this key (its sequence number would be 2^64 - 1).
  static constexpr unsigned __int128 kFreeLane = ~static_cast<unsigned __int128>(0);

  std::vector<SimEvent> heap_;
  uint64_t next_seq_ = 0;
  SimEvent lane_{};
  unsigned __int128 lane_key_ = kFreeLane;
};

}  // namespace rlab

#endif  // RLAB_SIM_EVENT_QUEUE_H_
