#ifndef RLAB_SIM_EVENT_QUEUE_H_
#define RLAB_SIM_EVENT_QUEUE_H_

#include <cstdint>
#include <vector>

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
class EventQueue {
 public:
  // Schedules an event; returns its sequence number.
  uint64_t Push(int64_t t_ns, uint32_t type, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0) {
    heap_.push_back({t_ns, next_seq_, type, a, b, c});
    SiftUp(heap_.size() - 1);
    return next_seq_++;
  }
  // Removes and returns the earliest event; the queue must not be empty.
  SimEvent Pop() {
    SimEvent top = heap_.front();
    heap_.front() = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) SiftDown(0);
    return top;
  }
  const SimEvent& Top() const { return heap_.front(); }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  void Reserve(size_t n) { heap_.reserve(n); }

 private:
  static bool Before(const SimEvent& x, const SimEvent& y) {
    return x.t_ns < y.t_ns || (x.t_ns == y.t_ns && x.seq < y.seq);
  }
  // A 4-ary heap: shallower than a binary one, and its children share cache lines.
  void SiftUp(size_t i) {
    const SimEvent e = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 4;
      if (!Before(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  void SiftDown(size_t i) {
    const SimEvent e = heap_[i];
    const size_t n = heap_.size();
    for (;;) {
      const size_t first = 4 * i + 1;
      if (first >= n) break;
      size_t best = first;
      const size_t last = first + 4 < n ? first + 4 : n;
      for (size_t c = first + 1; c < last; ++c) {
        if (Before(heap_[c], heap_[best])) best = c;
      }
      if (!Before(heap_[best], e)) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = e;
  }

  std::vector<SimEvent> heap_;
  uint64_t next_seq_ = 0;
};

}  // namespace rlab

#endif  // RLAB_SIM_EVENT_QUEUE_H_
