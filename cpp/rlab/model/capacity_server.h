#ifndef RLAB_MODEL_CAPACITY_SERVER_H_
#define RLAB_MODEL_CAPACITY_SERVER_H_

// A dependency's server with limited capacity (Faults.capacity): at most max_in_service calls in
// service, the others waiting in a line of at most max_queue calls, taken by the line's queue
// discipline (policy/queue_discipline.h). One pure state machine that both engines interpret:
// it owns the line, the count in service, admission, the discipline's pick and drops,
// drop_abandoned and the totals, and tells its caller what to do with each call. The caller
// owns the clock (times come in as `now_ns`), the draws (model/faults.h: a call's service time,
// drawn when its service starts with the load this machine reports) and the calls' callers:
// the simulator turns the decisions into events, the live engine into condition-variable
// hand-offs under its server's lock.
//
// Protocol. Arrive() when a call reaches the server: kServe (its service starts now), kQueued
// (it waits in the line) or kRejected (the line is full: the call fails at once with 503).
// Release() when a call's service ends, then Take() until it returns nothing, each call it takes
// from the line followed by Judge(), which gives the verdict (LineVerdict) at that same instant.
//
// The rules. Both engines had their own copy of this server, which disagreed in three rules; the
// simulator's were kept (its results stayed bit-identical), and the live engine adopted them:
// 1. An abandoned call is noticed when its turn comes, not when its caller gives up: a caller
//    that times out does not tell the server (a real server learns it only when it picks the
//    request up), so the call keeps its place in the line and counts against max_queue.
// 2. drop_abandoned comes before the discipline's verdict: the server skips a call nobody waits
//    for without showing it to CoDel, whose sojourn estimate is about the calls it may serve.
// 3. A freed slot goes at once, at the instant it frees, to the call the discipline picks (FIFO:
//    the oldest), whose service starts then; no arrival takes it while calls wait. (So the live
//    engine starts and draws that service when the slot frees, not when the waiter wakes up.)

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

#include "rlab/core/invariant.h"
#include "rlab/model/run_result.h"
#include "rlab/model/scenario.h"
#include "rlab/policy/queue_discipline.h"

namespace rlab {

// What happens to a call that reaches a capacity-limited server.
enum class CapacityAdmission : uint8_t {
  kServe = 0,     // a slot is free and nobody waits: its service starts now
  kQueued = 1,    // it waits in the line
  kRejected = 2,  // the line is full (max_queue): it fails at once with 503
};

// What the server does with a call it takes from its line.
enum class LineVerdict : uint8_t {
  kServe = 0,        // its service starts now; its caller waits for the answer
  kServeWasted = 1,  // its service starts now, for nobody: its caller gave up (wasted work)
  kDrop = 2,         // the discipline (CoDel) fails it at once with 503 (its caller, if waiting)
  kDiscard = 3,      // drop_abandoned: its caller gave up, the server skips it unserved
};

// A server's totals.
struct CapacityCounts {
  int64_t rejected = 0;          // calls refused by a full line (max_queue)
  int64_t wasted = 0;            // calls served after their caller gave up
  int64_t dropped_by_queue = 0;  // calls the discipline dropped (waiting or not)
  int64_t discarded = 0;         // abandoned calls skipped unserved (drop_abandoned)
  int64_t max_load = 0;          // most calls in service and waiting at once
};

// The engine-neutral part of CapacityServer (capacity_server.cc): limits, the count in service,
// the discipline and the totals. The line itself is CapacityServer's, which knows the calls' type.
class CapacityServerCore {
 public:
  // The server of a dependency with `config` (used while its max_in_service is positive: a call
  // to an unlimited dependency starts at once and never reaches it).
  explicit CapacityServerCore(const CapacityConfig& config);

  // New limits (max_in_service, max_queue, drop_abandoned) for the decisions from now on (the
  // live engine's faults can be replaced while it runs). The discipline stays the one built
  // first. Calls in service above a lowered limit finish; no new one starts until below it.
  void SetLimits(const CapacityConfig& config);

  // A call in service ended: its slot is free (Take() hands it out).
  void Release() { --in_service_; }

  int in_service() const { return in_service_; }
  int max_in_service() const { return max_in_service_; }
  const CapacityCounts& counts() const { return counts_; }
  // The line's discipline, or null for FIFO.
  const QueueDiscipline* discipline() const { return discipline_ ? &*discipline_ : nullptr; }

 protected:
  // Arrive's decision for a line of `queued` calls; takes the slot or counts the refusal.
  CapacityAdmission Admit(size_t queued) {
    // A free slot goes to an arrival only when nobody waits (rule 3).
    if (queued == 0 && SlotFree()) {
      ++in_service_;
      NoteLoad(in_service_);
      return CapacityAdmission::kServe;
    }
    if (max_queue_ >= 0 && queued >= static_cast<size_t>(max_queue_)) {
      ++counts_.rejected;
      return CapacityAdmission::kRejected;
    }
    return CapacityAdmission::kQueued;
  }
  // Whether the next call leaves from the back of the line (the newest), given when the
  // oldest joined.
  bool TakeNewest(int64_t now_ns, int64_t oldest_enqueued_ns) const {
    return discipline_ &&
           discipline_->Next(now_ns, oldest_enqueued_ns) == QueueDiscipline::End::kBack;
  }
  // The verdict on a call just taken from the line (`remaining` calls left behind it), which
  // joined at `enqueued_ns`; takes the slot for the serve verdicts, counts the others.
  LineVerdict JudgeTaken(int64_t now_ns, int64_t enqueued_ns, bool waiting, size_t remaining) {
    // Rule 2: drop_abandoned first; the discipline never sees a call the server skips.
    if (!waiting && drop_abandoned_) {
      ++counts_.discarded;
      return LineVerdict::kDiscard;
    }
    if (discipline_ && discipline_->drops() && CodelDrops(now_ns, enqueued_ns, remaining)) {
      return LineVerdict::kDrop;
    }
    ++in_service_;
    NoteLoad(in_service_);
    if (!waiting) {
      ++counts_.wasted;
      return LineVerdict::kServeWasted;
    }
    return LineVerdict::kServe;
  }
  bool SlotFree() const { return in_service_ < max_in_service_; }
  // CoDel's verdict on the call taken (capacity_server.cc): whether it drops it (counted).
  bool CodelDrops(int64_t now_ns, int64_t enqueued_ns, size_t remaining);
  void NoteLoad(int64_t load) {
    if (load > counts_.max_load) counts_.max_load = load;
  }

 private:
  int max_in_service_;
  int max_queue_;  // -1: unbounded
  bool drop_abandoned_;
  int in_service_ = 0;
  std::optional<QueueDiscipline> discipline_;
  CapacityCounts counts_;
};

// The server, with its line of `Call`s (the engine's record of a waiting call: what it needs to
// resume its caller). Not thread-safe: the live engine calls it under its server's lock.
template <typename Call>
class CapacityServer : public CapacityServerCore {
 public:
  using CapacityServerCore::CapacityServerCore;

  // A call reaches the server at `now_ns`.
  CapacityAdmission Arrive(int64_t now_ns, const Call& call) {
    const CapacityAdmission admission = Admit(line_.size());
    if (admission == CapacityAdmission::kQueued) {
      line_.push_back({call, now_ns});
      NoteLoad(in_service() + static_cast<int64_t>(line_.size()));
    }
    return admission;
  }

  // The next call leaving the line at `now_ns`, while a slot is free (nothing: none leaves).
  // The caller then tells Judge() whether the call's caller still waits for it (rule 1: the
  // server asks only now) and gets the verdict, before the next Take(). A serve verdict takes
  // the slot, so after a Release() at most one call is served.
  std::optional<Call> Take(int64_t now_ns) {
    RLAB_INVARIANT(!taken_, "capacity server: Take() before Judge() on the call taken");
    if (line_.empty() || !SlotFree()) return std::nullopt;
    // The line is in arrival order: the discipline may take the newest call.
    const bool back = TakeNewest(now_ns, line_.front().enqueued_ns);
    Entry& e = back ? line_.back() : line_.front();
    std::optional<Call> call(std::move(e.call));
    taken_enqueued_ns_ = e.enqueued_ns;
    taken_ = true;
    if (back) {
      line_.pop_back();
    } else {
      line_.pop_front();
    }
    return call;
  }

  // The verdict on the call Take() returned, at the same `now_ns`; `waiting`: its caller still
  // waits. A serve verdict's service time is drawn with load in_service() (this call included).
  LineVerdict Judge(int64_t now_ns, bool waiting) {
    RLAB_INVARIANT(taken_, "capacity server: Judge() without a call taken");
    taken_ = false;
    return JudgeTaken(now_ns, taken_enqueued_ns_, waiting, line_.size());
  }

  // Calls waiting in the line.
  size_t queued() const { return line_.size(); }

 private:
  struct Entry {
    Call call;
    int64_t enqueued_ns;  // when it joined the line (its discipline's sojourn time)
  };
  std::deque<Entry> line_;
  bool taken_ = false;  // a call was taken and awaits its verdict
  int64_t taken_enqueued_ns_ = 0;
};

// Adds a server's totals to its dependency's (the dependency's own server and each replica's).
void AddCapacityTotals(const CapacityCounts& counts, DependencyTotals& totals);

}  // namespace rlab

#endif  // RLAB_MODEL_CAPACITY_SERVER_H_
