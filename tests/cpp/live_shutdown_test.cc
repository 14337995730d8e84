// LiveShutdown on its own: the sequence's order, the grace time, the cancellation every wait
// watches, and idempotence. No timed assertions: the grace times used are 0 or unlimited.

#include "rlab/live/live_shutdown.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace rlab::live_shutdown_test {
namespace {

// Steps that record their calls; the counts are fixed numbers.
struct Recorder {
  std::vector<std::string> calls;
  int64_t arrived = 10;
  int64_t terminal = 4;
  int64_t cancelled = 0;
  std::function<void()> on_close_queue;

  LiveShutdown::Steps Steps() {
    LiveShutdown::Steps s;
    auto note = [this](const char* name) { calls.push_back(name); };
    s.close_intake = [=] { note("close_intake"); };
    s.stop_producers = [=] { note("stop_producers"); };
    s.drain_parked = [=](LiveShutdown::SteadyTime, bool) {
      note("drain_parked");
      return false;
    };
    s.close_queue = [=, this] {
      note("close_queue");
      if (on_close_queue) on_close_queue();
    };
    s.interrupt_waits = [=] { note("interrupt_waits"); };
    s.cancel_queued = [=, this] {
      note("cancel_queued");
      cancelled += 3;
    };
    s.join_workers = [=] { note("join_workers"); };
    s.end_run = [=] {
      note("end_run");
      return int64_t{0};
    };
    s.check_conservation = [=] {
      note("check_conservation");
      return absl::OkStatus();
    };
    s.arrived = [this] { return arrived; };
    s.terminal = [this] { return terminal; };
    s.cancelled = [this] { return cancelled; };
    return s;
  }
};

TEST(LiveShutdownTest, NeverStartedOnlyEndsTheRun) {
  LiveShutdown shutdown;
  Recorder r;
  const ShutdownReport report = shutdown.Run(-1, /*started=*/false, r.Steps());
  EXPECT_EQ(r.calls, (std::vector<std::string>{"close_intake", "end_run"}));
  EXPECT_FALSE(report.timed_out);
  EXPECT_TRUE(shutdown.begun());
  EXPECT_TRUE(shutdown.done());
}

TEST(LiveShutdownTest, WorkersThatExitInTimeAreNotCancelled) {
  LiveShutdown shutdown;
  shutdown.WorkersStarted(1);
  Recorder r;
  std::thread worker;
  // The worker exits once the queue is closed, as a real one does when the queue runs dry.
  r.on_close_queue = [&] { worker = std::thread([&] { shutdown.WorkerExited(); }); };
  const ShutdownReport report = shutdown.Run(-1, /*started=*/true, r.Steps());
  worker.join();
  EXPECT_EQ(r.calls, (std::vector<std::string>{"close_intake", "stop_producers", "drain_parked",
                                               "close_queue", "join_workers", "end_run",
                                               "check_conservation"}));
  EXPECT_FALSE(report.timed_out);
  EXPECT_FALSE(shutdown.cancelled());
  EXPECT_EQ(report.cancelled, 0);
  EXPECT_EQ(report.finished_in_time, 10 - 4);
}

TEST(LiveShutdownTest, OutOfTimeCancelsEveryWaitAndWhatIsQueued) {
  LiveShutdown shutdown;
  shutdown.WorkersStarted(1);  // never exits on its own
  Recorder r;
  const ShutdownReport report = shutdown.Run(0, /*started=*/true, r.Steps());
  EXPECT_TRUE(report.timed_out);
  EXPECT_TRUE(shutdown.cancelled());
  EXPECT_EQ(r.calls, (std::vector<std::string>{"close_intake", "stop_producers", "drain_parked",
                                               "close_queue", "interrupt_waits", "cancel_queued",
                                               "join_workers", "end_run", "check_conservation"}));
  EXPECT_EQ(report.cancelled, 3);
  EXPECT_EQ(report.finished_in_time, 10 - 4 - 3);
  // Once cancelled, a sleep without limit returns at once.
  EXPECT_EQ(shutdown.SleepUntil(LiveShutdown::SteadyTime::max(), /*forever=*/true),
            LiveWaitEnd::kInterrupted);
}

TEST(LiveShutdownTest, ParkedOrdersCancelledMeanTimedOut) {
  LiveShutdown shutdown;
  Recorder r;
  LiveShutdown::Steps steps = r.Steps();
  steps.drain_parked = [](LiveShutdown::SteadyTime, bool) { return true; };
  EXPECT_TRUE(shutdown.Run(-1, /*started=*/true, steps).timed_out);
}

TEST(LiveShutdownTest, LaterCallsReturnTheFirstReport) {
  LiveShutdown shutdown;
  Recorder r;
  const ShutdownReport first = shutdown.Run(0, /*started=*/true, r.Steps());
  const size_t calls = r.calls.size();
  r.arrived = 99;
  const ShutdownReport second = shutdown.Run(0, /*started=*/true, r.Steps());
  EXPECT_EQ(r.calls.size(), calls);  // nothing ran again
  EXPECT_EQ(second.finished_in_time, first.finished_in_time);
}

TEST(LiveShutdownTest, SleepEndsAtItsDeadlineWithoutCancellation) {
  LiveShutdown shutdown;
  EXPECT_EQ(shutdown.SleepUntil(std::chrono::steady_clock::now(), /*forever=*/false),
            LiveWaitEnd::kDone);
}

TEST(LiveShutdownTest, CancellationWakesASleeperWithoutLimit) {
  LiveShutdown shutdown;
  LiveWaitEnd end = LiveWaitEnd::kDone;
  std::thread sleeper([&] { end = shutdown.SleepUntil(LiveShutdown::SteadyTime::max(), true); });
  Recorder r;
  shutdown.WorkersStarted(1);  // keeps the grace time (0) from being enough: Run cancels
  shutdown.Run(0, /*started=*/true, r.Steps());
  sleeper.join();
  EXPECT_EQ(end, LiveWaitEnd::kInterrupted);
}

}  // namespace
}  // namespace rlab::live_shutdown_test
