#include "rlab/policy/queue_discipline.h"

#include <cmath>
#include <cstdint>
#include <deque>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rlab/live/bounded_queue.h"

namespace rlab::queue_discipline_test {
namespace {

using ::testing::HasSubstr;
using Kind = QueueDisciplineConfig::Kind;
using End = QueueDiscipline::End;
using Verdict = QueueDiscipline::Verdict;

constexpr int64_t kMs = 1'000'000;

QueueDisciplineConfig Config(Kind kind) {
  QueueDisciplineConfig c;
  c.kind = kind;
  return c;
}

TEST(QueueDisciplineTest, Names) {
  EXPECT_EQ(QueueDisciplineKindName(Kind::kFifo), "fifo");
  EXPECT_EQ(QueueDisciplineKindName(Kind::kLifo), "lifo");
  EXPECT_EQ(QueueDisciplineKindName(Kind::kAdaptiveLifo), "adaptive_lifo");
  EXPECT_EQ(QueueDisciplineKindName(Kind::kCodel), "codel");
}

TEST(QueueDisciplineTest, Validate) {
  EXPECT_TRUE(Validate(QueueDisciplineConfig{}).ok());
  QueueDisciplineConfig c;
  c.codel_target_ns = 0;
  EXPECT_THAT(Validate(c).message(), HasSubstr("codel_target"));
  c = {};
  c.codel_interval_ns = -1;
  EXPECT_THAT(Validate(c).message(), HasSubstr("codel_interval"));
  c = {};
  c.lifo_threshold_ns = 0;  // always LIFO under any queue: allowed
  EXPECT_TRUE(Validate(c).ok());
  c.lifo_threshold_ns = -1;
  EXPECT_THAT(Validate(c).message(), HasSubstr("lifo_threshold"));
  c = {};
  c.kind = static_cast<Kind>(9);
  EXPECT_THAT(Validate(c).message(), HasSubstr("kind"));
}

TEST(QueueDisciplineTest, FifoAndLifoPickTheirEnd) {
  QueueDiscipline fifo(Config(Kind::kFifo));
  QueueDiscipline lifo(Config(Kind::kLifo));
  EXPECT_TRUE(fifo.fifo());
  EXPECT_FALSE(fifo.drops());
  EXPECT_FALSE(lifo.drops());
  for (int64_t waited : {int64_t{0}, 1 * kMs, 10'000 * kMs}) {
    EXPECT_EQ(fifo.Next(20'000 * kMs, 20'000 * kMs - waited), End::kFront);
    EXPECT_EQ(lifo.Next(20'000 * kMs, 20'000 * kMs - waited), End::kBack);
  }
}

TEST(QueueDisciplineTest, AdaptiveLifoSwitchesAtTheThreshold) {
  QueueDisciplineConfig c = Config(Kind::kAdaptiveLifo);
  c.lifo_threshold_ns = 10 * kMs;
  QueueDiscipline d(c);
  EXPECT_FALSE(d.drops());
  EXPECT_FALSE(d.fifo());
  const int64_t now = 1'000 * kMs;
  EXPECT_EQ(d.Next(now, now), End::kFront);
  EXPECT_EQ(d.Next(now, now - 10 * kMs + 1), End::kFront) << "1 ns short of the threshold";
  EXPECT_EQ(d.Next(now, now - 10 * kMs), End::kBack) << "at the threshold: congested";
  EXPECT_EQ(d.Next(now, now - 500 * kMs), End::kBack);
}

TEST(QueueDisciplineTest, CodelServesWhileSojournBelowTarget) {
  QueueDiscipline d(Config(Kind::kCodel));
  EXPECT_TRUE(d.drops());
  EXPECT_EQ(d.Next(0, 0), End::kFront);
  for (int64_t t = 0; t < 10'000 * kMs; t += kMs) {
    ASSERT_EQ(d.OnDequeue(t, 5 * kMs - 1, 100), Verdict::kServe);
  }
  // Above target but never a standing queue behind the item: no drop either.
  for (int64_t t = 10'000 * kMs; t < 20'000 * kMs; t += kMs) {
    ASSERT_EQ(d.OnDequeue(t, 50 * kMs, 0), Verdict::kServe);
  }
  EXPECT_EQ(d.drops_total(), 0);
  EXPECT_FALSE(d.dropping());
}

// A reference transcription of RFC 8289 §5.5-5.7 (dequeue / dodequeue / control_law) over an
// explicit queue of enqueue times, in floating-point milliseconds; the policy, driven item by
// item, must drop exactly the same items at the same times.
struct RfcCodel {
  double target = 5, interval = 100;
  double first_above_time = 0, drop_next = 0;
  uint32_t count = 0, lastcount = 0;
  bool dropping = false;
  std::deque<double>* queue;
  std::vector<double>* dropped;  // enqueue times of dropped items
  struct R {
    bool has = false;
    double tstamp = 0;
    bool ok_to_drop = false;
  };
  double ControlLaw(double t) const { return t + interval / std::sqrt(count); }
  R DoDequeue(double now) {
    R r;
    if (queue->empty()) {
      first_above_time = 0;
      return r;
    }
    r.has = true;
    r.tstamp = queue->front();
    queue->pop_front();
    const double sojourn = now - r.tstamp;
    if (sojourn < target || queue->empty()) {
      first_above_time = 0;
    } else if (first_above_time == 0) {
      first_above_time = now + interval;
    } else if (now >= first_above_time) {
      r.ok_to_drop = true;
    }
    return r;
  }
  R Dequeue(double now) {
    R r = DoDequeue(now);
    if (!r.has) {
      dropping = false;
      return r;
    }
    if (dropping) {
      if (!r.ok_to_drop) dropping = false;
      while (now >= drop_next && dropping) {
        dropped->push_back(r.tstamp);
        ++count;
        r = DoDequeue(now);
        if (!r.ok_to_drop) {
          dropping = false;
        } else {
          drop_next = ControlLaw(drop_next);
        }
      }
    } else if (r.ok_to_drop) {
      dropped->push_back(r.tstamp);
      r = DoDequeue(now);
      dropping = true;
      const uint32_t delta = count - lastcount;
      count = 1;
      if (delta > 1 && now - drop_next < 16 * interval) count = delta;
      drop_next = ControlLaw(now);
      lastcount = count;
    }
    return r;
  }
};

// Drives the policy the way an engine does: take the front, ask, repeat after a drop.
struct PolicyQueue {
  QueueDiscipline d{Config(Kind::kCodel)};
  std::deque<int64_t> queue;
  std::vector<int64_t> dropped;
  std::vector<int64_t> drop_times;
  bool Dequeue(int64_t now, int64_t* served) {
    while (!queue.empty()) {
      const int64_t t = queue.front();
      queue.pop_front();
      if (d.OnDequeue(now, now - t, queue.size()) == Verdict::kServe) {
        *served = t;
        return true;
      }
      dropped.push_back(t);
      drop_times.push_back(now);
      if (queue.empty()) d.OnEmpty(now);
    }
    return false;
  }
};

TEST(QueueDisciplineTest, CodelDropScheduleFollowsTheControlLaw) {
  // A server that takes one item per millisecond from a line that never runs dry and whose
  // items all waited 50 ms: above target from t = 0 on.
  PolicyQueue q;
  std::vector<int64_t> drop_times;
  for (int64_t t = 0; t <= 1'000 * kMs; t += kMs) {
    q.queue.clear();
    for (int i = 0; i < 10; ++i) q.queue.push_back(t - 50 * kMs);
    int64_t served = 0;
    ASSERT_TRUE(q.Dequeue(t, &served));
    if (!q.drop_times.empty() && (drop_times.empty() || q.drop_times.back() != drop_times.back())) {
      drop_times.push_back(q.drop_times.back());
    }
  }
  // First drop one interval after the sojourn time went above target; then interval/sqrt(n)
  // after the previous one, n = 1, 2, 3... (each on the first dequeue at or after drop_next:
  // this server dequeues on whole milliseconds).
  ASSERT_GE(drop_times.size(), 6u);
  EXPECT_EQ(drop_times[0], 100 * kMs);
  double next = 200.0;  // entering: drop_next = now + interval / sqrt(1)
  for (size_t i = 1; i < drop_times.size(); ++i) {
    const int64_t expected = static_cast<int64_t>(std::ceil(next - 1e-9)) * kMs;
    EXPECT_EQ(drop_times[i], expected) << "drop " << i;
    next += 100.0 / std::sqrt(static_cast<double>(i + 1));
  }
  EXPECT_EQ(q.d.count(), drop_times.size());
  EXPECT_TRUE(q.d.dropping());
}

TEST(QueueDisciplineTest, CodelExactTransitions) {
  QueueDiscipline d(Config(Kind::kCodel));
  // t = 0: above target, first_above_time = 100 ms; no drop for an interval.
  EXPECT_EQ(d.OnDequeue(0, 10 * kMs, 5), Verdict::kServe);
  EXPECT_EQ(d.OnDequeue(100 * kMs - 1, 10 * kMs, 5), Verdict::kServe);
  // t = 100 ms: drop, and serve the next item whatever its sojourn; dropping with count 1.
  EXPECT_EQ(d.OnDequeue(100 * kMs, 10 * kMs, 5), Verdict::kDrop);
  EXPECT_FALSE(d.dropping());
  EXPECT_EQ(d.OnDequeue(100 * kMs, 10 * kMs, 4), Verdict::kServe);
  EXPECT_TRUE(d.dropping());
  EXPECT_EQ(d.count(), 1u);
  EXPECT_EQ(d.drop_next_ns(), 200 * kMs);
  // Before drop_next: served.
  EXPECT_EQ(d.OnDequeue(150 * kMs, 10 * kMs, 5), Verdict::kServe);
  // The sojourn time fell below target: dropping ends (first_above reset too).
  EXPECT_EQ(d.OnDequeue(160 * kMs, 1 * kMs, 5), Verdict::kServe);
  EXPECT_FALSE(d.dropping());
  // Above target again at 170 ms: first_above_time = 270 ms; the re-entry at 270 ms carries
  // nothing over (delta = count - lastcount = 0).
  EXPECT_EQ(d.OnDequeue(170 * kMs, 10 * kMs, 5), Verdict::kServe);
  EXPECT_EQ(d.OnDequeue(270 * kMs, 10 * kMs, 5), Verdict::kDrop);
  EXPECT_EQ(d.OnDequeue(270 * kMs, 10 * kMs, 5), Verdict::kServe);
  EXPECT_EQ(d.drop_next_ns(), 370 * kMs);
  // 370 ms: drop (count 2); the next item is above target too, so drop_next moves on by
  // interval/sqrt(2) and, being later than now, ends the loop: served.
  EXPECT_EQ(d.OnDequeue(370 * kMs, 10 * kMs, 5), Verdict::kDrop);
  EXPECT_EQ(d.count(), 2u);
  EXPECT_EQ(d.OnDequeue(370 * kMs, 10 * kMs, 5), Verdict::kServe);
  EXPECT_EQ(d.drop_next_ns(), 370 * kMs + std::llround(100 * kMs / std::sqrt(2.0)));
  // Long after drop_next (a backlog): the loop drops until drop_next passes now.
  const int64_t t = 600 * kMs;
  int drops = 0;
  while (d.OnDequeue(t, 10 * kMs, 50) == Verdict::kDrop) ++drops;
  // drop_next: 440.7, 498.4, 548.4, 593.1, 633.9 ms -> four more drops happen at 600 ms.
  EXPECT_EQ(drops, 4);
  EXPECT_EQ(d.count(), 6u);
  EXPECT_EQ(d.drops_total(), 7);
  // A drop that empties the line ends dropping (RFC 8289: dodequeue found no packet).
  EXPECT_EQ(d.OnDequeue(700 * kMs, 10 * kMs, 1), Verdict::kDrop);
  d.OnEmpty(700 * kMs);
  EXPECT_FALSE(d.dropping());
  // Re-entry soon after: the count that controlled the queue is carried over (§5.6):
  // delta = count - lastcount = 7 - 1 = 6 > 1 and now - drop_next < 16 intervals.
  EXPECT_EQ(d.OnDequeue(710 * kMs, 10 * kMs, 5), Verdict::kServe);  // first_above = 810 ms
  EXPECT_EQ(d.OnDequeue(810 * kMs, 10 * kMs, 5), Verdict::kDrop);
  EXPECT_EQ(d.OnDequeue(810 * kMs, 10 * kMs, 5), Verdict::kServe);
  EXPECT_EQ(d.count(), 6u);
  EXPECT_EQ(d.drop_next_ns(), 810 * kMs + std::llround(100 * kMs / std::sqrt(6.0)));
}

TEST(QueueDisciplineTest, CodelMatchesRfcPseudocodeOnRandomTraffic) {
  // Random arrivals and dequeues (a sawtooth overload); the RFC transcription and the policy
  // must drop the same items and serve the same ones.
  uint64_t x = 12345;
  auto next = [&x]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::deque<double> rfc_queue;
  std::vector<double> rfc_dropped;
  RfcCodel rfc;
  rfc.queue = &rfc_queue;
  rfc.dropped = &rfc_dropped;
  PolicyQueue pol;
  int64_t now = 0;
  int served = 0;
  for (int step = 0; step < 200'000; ++step) {
    now += static_cast<int64_t>(next() % 2'000'000);  // up to 2 ms
    const bool overload = (now / (3'000 * kMs)) % 2 == 0;
    const int arrivals = static_cast<int>(next() % (overload ? 4 : 2));
    for (int i = 0; i < arrivals; ++i) {
      rfc_queue.push_back(static_cast<double>(now) / kMs);
      pol.queue.push_back(now);
    }
    const RfcCodel::R r = rfc.Dequeue(static_cast<double>(now) / kMs);
    int64_t got = -1;
    const bool has = pol.Dequeue(now, &got);
    ASSERT_EQ(has, r.has) << "step " << step;
    if (has) {
      ASSERT_EQ(got, static_cast<int64_t>(std::llround(r.tstamp * kMs))) << "step " << step;
      ++served;
    }
    ASSERT_EQ(pol.dropped.size(), rfc_dropped.size()) << "step " << step;
  }
  EXPECT_GT(rfc_dropped.size(), 100u) << "the traffic must exercise the dropping state";
  EXPECT_GT(served, 1000);
}

// The live engine's job queue with a discipline, on a manual clock.
TEST(QueueDisciplineTest, BoundedQueueFifoIgnoresTheClock) {
  BoundedQueue<int> q(8);
  q.SetDiscipline(Config(Kind::kFifo), [] { return int64_t{0}; });
  EXPECT_FALSE(q.disciplined());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(q.TryPush(i, i), PushResult::kOk);
  EXPECT_EQ(q.oldest_enqueued_ns(), -1);
  int v = -1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(q.Pop(&v, 0), PopResult::kOk);
    EXPECT_EQ(v, i);
  }
}

TEST(QueueDisciplineTest, BoundedQueueLifoAndAdaptiveLifo) {
  int64_t now = 0;
  BoundedQueue<int> lifo(8);
  lifo.SetDiscipline(Config(Kind::kLifo), [&now] { return now; });
  for (int i = 0; i < 3; ++i) ASSERT_EQ(lifo.TryPush(i, now), PushResult::kOk);
  int v = -1;
  std::vector<int> dropped;
  for (int expected : {2, 1, 0}) {
    ASSERT_EQ(lifo.Pop(&v, 0, &dropped), PopResult::kOk);
    EXPECT_EQ(v, expected);
  }
  QueueDisciplineConfig c = Config(Kind::kAdaptiveLifo);
  c.lifo_threshold_ns = 10 * kMs;
  BoundedQueue<int> ada(8);
  ada.SetDiscipline(c, [&now] { return now; });
  for (int i = 0; i < 4; ++i) ASSERT_EQ(ada.TryPush(i, i * kMs), PushResult::kOk);
  EXPECT_EQ(ada.oldest_enqueued_ns(), 0);
  now = 9 * kMs;  // the oldest waited 9 ms: FIFO
  ASSERT_EQ(ada.Pop(&v, 0, &dropped), PopResult::kOk);
  EXPECT_EQ(v, 0);
  now = 11 * kMs;  // the oldest (1) waited 10 ms: LIFO
  ASSERT_EQ(ada.Pop(&v, 0, &dropped), PopResult::kOk);
  EXPECT_EQ(v, 3);
  EXPECT_EQ(ada.oldest_enqueued_ns(), 1 * kMs);
  EXPECT_TRUE(ada.TryPop(&v));  // TryPop: the oldest, whatever the discipline
  EXPECT_EQ(v, 1);
  EXPECT_EQ(ada.size(), 1u);
  EXPECT_EQ(ada.Drain(), std::vector<int>{2});
  EXPECT_EQ(ada.oldest_enqueued_ns(), -1);
  EXPECT_TRUE(dropped.empty());
}

TEST(QueueDisciplineTest, BoundedQueueCodelHandsDropsToTheCaller) {
  int64_t now = 0;
  BoundedQueue<int> q(100);
  q.SetDiscipline(Config(Kind::kCodel), [&now] { return now; });
  EXPECT_TRUE(q.disciplined());
  for (int i = 0; i < 50; ++i) ASSERT_EQ(q.TryPush(i, 0), PushResult::kOk);
  int v = -1;
  std::vector<int> dropped;
  now = 10 * kMs;  // above target: first_above_time = 110 ms
  ASSERT_EQ(q.Pop(&v, 0, &dropped), PopResult::kOk);
  EXPECT_EQ(v, 0);
  now = 110 * kMs;  // an interval later: drop 1, serve 2
  ASSERT_EQ(q.Pop(&v, 0, &dropped), PopResult::kOk);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(dropped, std::vector<int>{1});
  dropped.clear();
  // Long after drop_next (210 ms) the loop drops until drop_next passes now, then serves.
  now = 400 * kMs;
  ASSERT_EQ(q.Pop(&v, 0, &dropped), PopResult::kOk);
  // drop_next: 210, 280.7, 338.5, 388.5, 433.2 ms -> drops at 210, 280.7, 338.5 and 388.5.
  EXPECT_EQ(dropped, (std::vector<int>{3, 4, 5, 6}));
  EXPECT_EQ(v, 7);
  // The last item is never dropped (no standing queue behind it, RFC 8289's maxpacket rule):
  // even deep in the dropping state a Pop serves, so a line is never dropped empty.
  dropped.clear();
  BoundedQueue<int> small(4);
  now = 0;
  small.SetDiscipline(Config(Kind::kCodel), [&now] { return now; });
  for (int i = 0; i < 4; ++i) ASSERT_EQ(small.TryPush(i, 0), PushResult::kOk);
  now = 10 * kMs;
  ASSERT_EQ(small.Pop(&v, 0, &dropped), PopResult::kOk);  // 0; first_above = 110 ms
  now = 110 * kMs;
  ASSERT_EQ(small.Pop(&v, 0, &dropped), PopResult::kOk);  // drops 1, serves 2 (dropping)
  EXPECT_EQ(v, 2);
  now = 1000 * kMs;
  // Item 3 is the last one: no standing queue behind it, so it is served, and dropping ends.
  ASSERT_EQ(small.Pop(&v, 0, &dropped), PopResult::kOk);
  EXPECT_EQ(v, 3);
  EXPECT_EQ(PopResultName(PopResult::kDropped), "dropped");
}

}  // namespace
}  // namespace rlab::queue_discipline_test
