#include "rlab/live/live_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rlab/core/invariant.h"
#include "rlab/core/validate.h"
#include "rlab/live/live_services.h"
#include "rlab/model/arrivals.h"
#include "rlab/model/faults.h"
#include "rlab/model/order_conservation.h"

namespace rlab {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

constexpr const std::array<OrderStatus, 5>& kTerminal = kLiveTerminal;

// A key for an order that brought none: a fixed mix of its id and the seed, so it needs no
// shared random stream (Submit runs on many threads).
int32_t KeyOf(int64_t id, uint64_t seed, int num_keys) {
  uint64_t z = static_cast<uint64_t>(id) + seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<int32_t>(z % static_cast<uint64_t>(std::max(1, num_keys)));
}

}  // namespace

absl::Status CheckOrderConservation(const SimResult& r, int64_t finished_twice,
                                    int64_t unfinished_slots) {
  auto n = [&r](OrderStatus s) { return r.by_status[static_cast<size_t>(s)]; };
  int64_t terminal = 0;
  for (OrderStatus s : kTerminal) terminal += n(s);
  std::vector<std::string> problems;
  if (terminal != r.arrived) {
    problems.push_back(absl::StrFormat(
        "arrived %d != completed %d + failed %d + rejected %d + expired %d + cancelled %d",
        r.arrived, n(OrderStatus::kCompleted), n(OrderStatus::kFailed), n(OrderStatus::kRejected),
        n(OrderStatus::kExpired), n(OrderStatus::kCancelled)));
  }
  if (r.in_flight != 0) problems.push_back(absl::StrFormat("%d orders in flight", r.in_flight));
  if (finished_twice != 0) {
    problems.push_back(absl::StrFormat("%d orders reached a terminal state twice", finished_twice));
  }
  if (unfinished_slots != 0) {
    problems.push_back(absl::StrFormat("%d order slots never became terminal", unfinished_slots));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("order conservation violated: ", absl::StrJoin(problems, "; ")));
}

// --- Order references -------------------------------------------------------------------------

LiveEngine::OrderRef::OrderRef(const OrderRef& other) : chunk_(other.chunk_), id_(other.id_) {
  if (chunk_ != nullptr) chunk_->refs.fetch_add(1, std::memory_order_relaxed);
}

LiveEngine::OrderRef& LiveEngine::OrderRef::operator=(const OrderRef& other) {
  if (this != &other) *this = OrderRef(other);
  return *this;
}

LiveEngine::OrderRef& LiveEngine::OrderRef::operator=(OrderRef&& other) noexcept {
  if (this != &other) {
    Reset();
    chunk_ = other.chunk_;
    id_ = other.id_;
    other.chunk_ = nullptr;
  }
  return *this;
}

void LiveEngine::OrderRef::Reset() {
  // acq_rel: whoever frees the chunk sees every write made through the other references.
  if (chunk_ != nullptr && chunk_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete chunk_;
  }
  chunk_ = nullptr;
}

LiveEngine::OrderRef LiveEngine::OrderRef::Sibling(int64_t id) const {
  if (chunk_ == nullptr || id < chunk_->base_id || id >= chunk_->base_id + kOrderChunk) return {};
  chunk_->refs.fetch_add(1, std::memory_order_relaxed);
  return OrderRef(chunk_, id);
}

// Per-order dependency sets are uint32_t masks; ValidateScenario bounds the count.
static_assert(kMaxDependencies <= 32);

absl::StatusOr<std::unique_ptr<LiveEngine>> LiveEngine::Create(const ScenarioConfig& config,
                                                               const LiveOptions& options) {
  if (absl::Status s = ValidateScenario(config); !s.ok()) return s;
  for (const DependencyConfig& d : config.dependencies) {
    // The worker runs a round's copies as timed events on its own thread (RunRound), which the
    // capacity-limited server (one blocking wait in its line per call) does not support yet.
    if ((d.hedge || d.fanout) && d.faults.capacity.max_in_service > 0) {
      const char* what = d.hedge ? "hedge" : "fanout";
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.%s with a capacity limit (%s.faults.capacity.max_in_service = %d) is "
                          "simulator-only for now: use simulate(), or set %s.%s=None",
                          d.name, what, d.name, d.faults.capacity.max_in_service, d.name, what));
    }
    // The same for a replica whose own fault model has a capacity limit.
    for (size_t i = 0; (d.hedge || d.fanout) && d.replicas && i < d.replicas->overrides.size();
         ++i) {
      const ReplicaOverride& o = d.replicas->overrides[i];
      if (o.faults.capacity.max_in_service == 0) continue;
      const char* what = d.hedge ? "hedge" : "fanout";
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.%s with a capacity limit (%s.replicas.overrides[%d].faults.capacity.max_in_service "
          "= %d) is simulator-only for now: use simulate(), or set %s.%s=None",
          d.name, what, d.name, i, o.faults.capacity.max_in_service, d.name, what));
    }
  }
  // Service graphs: what the live engine cannot run in one yet (live_services.cc).
  if (absl::Status s = CheckServicesForLive(config); !s.ok()) return s;
  if (config.release_worker_during_backoff) {
    return absl::UnimplementedError(
        "release_worker_during_backoff is not supported by the live engine: its workers hold "
        "an order through its backoff sleeps (simulate() supports both)");
  }
  if (options.sample_every_ns < 0) {
    return absl::InvalidArgumentError("sample_every must be >= 0");
  }
  const std::pair<const char*, int64_t> sizes[] = {
      {"retain_orders", options.retain_orders},
      {"max_order_records", options.max_order_records},
      {"idempotency_window", options.idempotency_window}};
  if (options.max_samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_samples must be >= 1, got %d", options.max_samples));
  }
  if (options.max_transitions < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_transitions must be >= 1, got %d", options.max_transitions));
  }
  for (const auto& [name, value] : sizes) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrFormat("%s must be >= 0, got %d", name, value));
    }
  }
  absl::StatusOr<std::unique_ptr<PaymentLedger>> ledger =
      PaymentLedger::Open(options.ledger_path, options.ledger_fsync, options.idempotency_window);
  if (!ledger.ok()) return ledger.status();
  std::unique_ptr<LiveEngine> e(new LiveEngine(config, options));
  e->ledger_ = *std::move(ledger);
  if (absl::Status s = e->InitMetrics(); !s.ok()) return s;
  return e;
}

LiveEngine::LiveEngine(const ScenarioConfig& config, const LiveOptions& options)
    : config_(LiveWorkingConfig(config)),  // service graphs: every tier's dependencies
      options_(options),
      rng_(config.seed),
      scenario_(config) {
  if (config_.arrivals.kind == ArrivalConfig::Kind::kPoisson ||
      config_.arrivals.kind == ArrivalConfig::Kind::kConstant) {
    arrival_rate_.store(config_.arrivals.rate, std::memory_order_release);
  }
  {
    LiveIntake::Hooks hooks;
    hooks.now_ns = [this] { return NowNs(); };
    hooks.to_steady = [this](int64_t t_ns) { return ToSteady(t_ns); };
    hooks.finish = [this](const Job& job, OrderStatus status, FailReason reason, int64_t now_ns,
                          bool admitted) {
      Finish(nullptr, *job.chunk, job.id, status, reason, nullptr, now_ns, admitted);
    };
    hooks.on_queued = [this](int64_t id, int64_t now_ns) {
      if (options_.order_events) {
        RecordEvent(id, OrderStatus::kQueued, FailReason::kNone, now_ns, 0, 0);
      }
    };
    hooks.in_system = &in_system_;
    hooks.metrics = &metrics_;
    intake_ = std::make_unique<LiveIntake>(config_, rng_, std::move(hooks));
  }
  const size_t n = config_.dependencies.size();
  deps_.reserve(n);
  for (const DependencyConfig& d : config_.dependencies) deps_.emplace_back(d);
  {
    // A durable ledger outlives the run: keys derived from order ids (which restart at 0) get
    // a tag that differs between runs, so that a new run's order 5 is not mistaken for an
    // earlier run's.
    std::random_device entropy;
    const uint64_t tag =
        (uint64_t{entropy()} << 32) ^ entropy() ^
        static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    run_tag_ = absl::StrFormat("run%016x", tag);
  }
  {
    LiveWorkerPool::Hooks hooks;
    hooks.finish = [this](LiveWorker* w, const Job& job, OrderStatus status, FailReason reason,
                          const OrderFlow* flow, int64_t now_ns, bool admitted,
                          int ledger_applied) {
      Finish(w, *job.chunk, job.id, status, reason, flow, now_ns, admitted, ledger_applied);
    };
    hooks.record_event = [this](int64_t id, OrderStatus status, int64_t t_ns) {
      RecordEvent(id, status, FailReason::kNone, t_ns, 0, 0);
    };
    pool_ =
        std::make_unique<LiveWorkerPool>(config_, options_.order_events, rng_, deps_, metrics_,
                                         *intake_, shutdown_, ledger_, run_tag_, std::move(hooks));
    pool_->InitServices(scenario_, rng_);  // service graphs (live_services.cc)
  }
  {
    MutexLock lock(&aux_mu_);
    aux_.stats.resize(n);
  }
  if (options_.record_events) {
    MutexLock lock(&events_mu_);
    for (size_t i = 0; i < n; ++i) {
      const auto& phases = config_.dependencies[i].faults.phases;
      for (size_t p = 0; p < phases.size(); ++p) {
        phase_edges_.push_back({phases[p].start_ns, static_cast<int>(i),
                                SimTransition::Kind::kPhaseStart, BreakerState::kClosed,
                                BreakerState::kClosed, static_cast<int>(p)});
        phase_edges_.push_back({phases[p].end_ns, static_cast<int>(i),
                                SimTransition::Kind::kPhaseEnd, BreakerState::kClosed,
                                BreakerState::kClosed, static_cast<int>(p)});
      }
    }
  }
  LiveSampleSources sources;
  sources.config = &config_;
  sources.deps = &deps_;
  sources.metrics = &metrics_;
  sources.dep_in_flight = pool_->dep_in_flight();
  sources.busy_workers = &pool_->busy();
  sources.in_system = &in_system_;
  sources.queue_depth = [this] { return intake_->queue_depth(); };
  if (intake_->queue_disciplined()) {
    sources.queue_oldest_enqueued_ns = [this] { return intake_->queue_oldest_enqueued_ns(); };
  }
  sources.intake_limiter = intake_->limiter();
  sources.intake_rate = intake_->rate_gate();
  // Service graphs: their columns, last (model/service_accounting.h).
  sources.services = [this](absl::FunctionRef<void(double)> put) { pool_->SampleServices(put); };
  sampler_ = std::make_unique<LiveSampler>(std::move(sources), options_.sample_every_ns,
                                           options_.max_samples);
}

LiveEngine::~LiveEngine() {
  Shutdown(0);
  // The table's references; a chunk an OrderRef still holds lives on until that goes.
  MutexLock lock(&index_mu_);
  for (Chunk* c : young_) OrderRef(c, c->base_id).Reset();
  for (Chunk* c : old_) OrderRef(c, c->base_id).Reset();
}

absl::Status LiveEngine::InitMetrics() {
  LiveMetrics::Sources sources;
  sources.config = &config_;
  sources.deps = &deps_;
  sources.intake_limiter = intake_->limiter();
  sources.intake_rate = intake_->rate_gate();
  sources.latency_bounds_s = options_.latency_bounds_s;
  sources.dep_wasted_ns = pool_->dep_wasted_ns();
  if (absl::Status s = metrics_.Init(sources); !s.ok()) return s;
  // Service graphs: rlab_service_* (live_services.cc).
  if (absl::Status s = pool_->InitServiceMetrics(options_.latency_bounds_s); !s.ok()) return s;
  for (size_t d = 0; d < deps_.size(); ++d) {
    if (!deps_[d].breaker) continue;
    const int dep = static_cast<int>(d);
    deps_[d].breaker->AddListener(
        [this, dep](const BreakerTransition& t) { OnTransition(dep, t); });
  }
  return absl::OkStatus();
}

void LiveEngine::OnTransition(int dep, const BreakerTransition& t) {
  LiveDepMetrics& m = metrics_.deps[dep];
  m.transitions[static_cast<size_t>(t.from)][static_cast<size_t>(t.to)]->Add();
  if (t.to == BreakerState::kOpen) m.trips->Add();
  for (size_t s = 0; s < 3; ++s) m.state[s]->Set(s == static_cast<size_t>(t.to) ? 1.0 : 0.0);
  MutexLock lock(&events_mu_);
  transitions_.push_back({t.at_ns, dep, SimTransition::Kind::kBreaker, t.from, t.to, -1});
  if (static_cast<int64_t>(transitions_.size()) > options_.max_transitions) {
    transitions_.pop_front();
    ++transitions_dropped_;
  }
}

int64_t LiveEngine::NowNs() const {
  if (!started_.load(std::memory_order_acquire)) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start_)
      .count();
}

SteadyTime LiveEngine::ToSteady(int64_t t_ns) const {
  return start_ + std::chrono::nanoseconds(t_ns);
}

LiveEngine::Chunk* LiveEngine::FindChunkLocked(int64_t id) const {
  if (!young_.empty() && id >= young_base_) {
    const int64_t i = (id - young_base_) >> kOrderChunkBits;
    return i < static_cast<int64_t>(young_.size()) ? young_[static_cast<size_t>(i)] : nullptr;
  }
  for (Chunk* c : old_) {
    if (id >= c->base_id && id < c->base_id + kOrderChunk) return c;
  }
  return nullptr;
}

void LiveEngine::RecordChunkLocked(const Chunk& c, int64_t count) {
  if (!options_.record_orders || options_.max_order_records == 0 || count <= 0) return;
  std::vector<OrderRecord> run(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) run[static_cast<size_t>(i)] = c.slots[i].record;
  recorded_count_ += count;
  recorded_.emplace(c.base_id, std::move(run));
  // Keep the most recent max_order_records: drop the oldest run while the others suffice. Runs
  // released late (a long order held them) are older than some kept ones and go at once, so the
  // kept runs are always the newest released ones: consecutive ids by the end of the run.
  while (recorded_count_ - static_cast<int64_t>(recorded_.begin()->second.size()) >=
         options_.max_order_records) {
    recorded_count_ -= static_cast<int64_t>(recorded_.begin()->second.size());
    recorded_.erase(recorded_.begin());
  }
}

void LiveEngine::ReleaseChunks() {
  std::vector<Chunk*> released;
  {
    MutexLock lock(&index_mu_);
    const int64_t horizon = next_id_.load(std::memory_order_relaxed) - options_.retain_orders;
    while (!young_.empty() && young_.front()->base_id + kOrderChunk <= horizon) {
      old_.push_back(young_.front());
      young_.pop_front();
      young_base_ += kOrderChunk;
    }
    for (size_t i = 0; i < old_.size();) {
      Chunk* c = old_[i];
      // acquire: pairs with Finish's release, so every record in the chunk is complete.
      if (c->unfinished.load(std::memory_order_acquire) != 0) {
        ++i;
        continue;
      }
      RecordChunkLocked(*c, kOrderChunk);
      released.push_back(c);
      old_[i] = old_.back();
      old_.pop_back();
    }
  }
  for (Chunk* c : released) OrderRef(c, c->base_id).Reset();  // the table's reference
}

absl::Status LiveEngine::Start() {
  if (shutdown_.begun()) return absl::FailedPreconditionError("the engine was shut down");
  if (started_.load()) return absl::FailedPreconditionError("the engine is already started");
  start_ = std::chrono::steady_clock::now();
  started_.store(true, std::memory_order_release);
  intake_->Open();
  pool_->Start(start_);
  sampler_->Start(start_);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LiveEngine::Submit(int key, std::string_view idempotency_key,
                                           std::optional<OrderOrigin> origin) {
  return SubmitImpl(key, idempotency_key, nullptr, origin);
}

absl::StatusOr<LiveEngine::OrderRef> LiveEngine::SubmitOrder(int key,
                                                             std::string_view idempotency_key,
                                                             std::optional<OrderOrigin> origin) {
  OrderRef ref;
  absl::StatusOr<int64_t> id = SubmitImpl(key, idempotency_key, &ref, origin);
  if (!id.ok()) return id.status();
  return ref;
}

absl::StatusOr<int64_t> LiveEngine::SubmitImpl(int key, std::string_view idempotency_key,
                                               OrderRef* ref, std::optional<OrderOrigin> origin) {
  if (!idempotency_key.empty()) {
    if (absl::Status s = ValidateIdempotencyKey(idempotency_key); !s.ok()) return s;
  }
  if (origin) {
    if (absl::Status s = intake_->CheckOrigin(*origin); !s.ok()) return s;
  }
  // Announce the submit before checking intake (see LiveIntake::SubmitScope).
  LiveIntake::SubmitScope submitting(*intake_);
  if (!intake_->accepting()) {
    return absl::UnavailableError(started_.load()
                                      ? "the engine is shutting down: it accepts no new orders"
                                      : "the engine is not started");
  }
  int64_t id = 0;
  Chunk* chunk = nullptr;
  bool fresh = false;
  {
    // Ids and slots are handed out together; the chunk cannot go while this order is unfinished.
    MutexLock lock(&index_mu_);
    id = next_id_.load(std::memory_order_relaxed);
    if (young_.empty() || id >= young_.back()->base_id + kOrderChunk) {
      const int64_t base = id & ~(kOrderChunk - 1);  // id is the first of its chunk
      if (young_.empty()) young_base_ = base;
      young_.push_back(new Chunk(base));
      fresh = true;
    }
    chunk = young_.back();
    chunk->unfinished.fetch_add(1, std::memory_order_relaxed);
    if (ref != nullptr) {
      chunk->refs.fetch_add(1, std::memory_order_relaxed);
      *ref = OrderRef(chunk, id);
    }
    next_id_.store(id + 1, std::memory_order_release);
  }
  // Once per chunk: the cost of releasing old slots is spread over kOrderChunk orders.
  if (fresh) ReleaseChunks();
  OrderSlot& o = chunk->slot(id);
  const int64_t now = NowNs();
  o.record.arrival_ns = now;
  o.key =
      key >= 0 ? key % std::max(1, config_.num_keys) : KeyOf(id, config_.seed, config_.num_keys);
  o.deadline_ns = config_.order_deadline_ns > 0 ? now + config_.order_deadline_ns : kNoDeadline;
  if (!idempotency_key.empty()) {
    o.idempotency_key = std::make_unique<std::string>(idempotency_key);
    keys_held_.fetch_add(1, std::memory_order_relaxed);
  }
  intake_->Admit(Job{chunk, id}, origin, now);
  return id;
}

absl::Status LiveEngine::SetFaults(std::string_view dependency, const FaultsConfig& faults) {
  int dep = -1;
  for (size_t i = 0; i < config_.dependencies.size(); ++i) {
    if (config_.dependencies[i].name == dependency) dep = static_cast<int>(i);
  }
  if (dep < 0) {
    return absl::NotFoundError(
        absl::StrFormat("no dependency named '%s'", std::string(dependency)));
  }
  if (absl::Status s = ValidateFaultModel(std::string(dependency) + ".faults", faults); !s.ok()) {
    return s;
  }
  if (deps_[dep].replicas) {
    // Each replica's model is fixed when the pool is built; changing them at run time is not
    // modelled yet (it would silently leave the replicas as they were).
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has replicas: its fault model cannot be changed while the engine runs (not yet "
        "supported)",
        std::string(dependency)));
  }
  pool_->SetFaults(dep, faults);
  return absl::OkStatus();
}

absl::Status LiveEngine::SetBreakerConfig(std::string_view dependency,
                                          const BreakerConfig& breaker) {
  int dep = -1;
  for (size_t i = 0; i < config_.dependencies.size(); ++i) {
    if (config_.dependencies[i].name == dependency) dep = static_cast<int>(i);
  }
  if (dep < 0) {
    return absl::NotFoundError(
        absl::StrFormat("no dependency named '%s'", std::string(dependency)));
  }
  if (!deps_[dep].breaker) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has no circuit breaker (the scenario's %s.breaker is None); one cannot be added "
        "while the engine runs",
        std::string(dependency), std::string(dependency)));
  }
  if (absl::Status s = ValidateBreakerConfig(breaker); !s.ok()) {
    // Under the dotted path the scenario's validation uses ("payment.breaker.open_for ...").
    return absl::Status(s.code(), absl::StrFormat("%s.breaker.%s", std::string(dependency),
                                                  std::string(s.message())));
  }
  // deps_ and its breakers live as long as the engine; the breaker serialises with workers.
  return deps_[dep].breaker->Reconfigure(breaker, NowNs());
}

void LiveEngine::RecordEvent(int64_t id, OrderStatus status, FailReason reason, int64_t t_ns,
                             int attempts, int charges, bool degraded) {
  MutexLock lock(&order_events_mu_);
  order_events_.push_back({id, status, reason, t_ns, attempts, charges, degraded});
}

std::vector<LiveOrderEvent> LiveEngine::TakeOrderEvents() {
  std::vector<LiveOrderEvent> out;
  MutexLock lock(&order_events_mu_);
  out.swap(order_events_);
  return out;
}

LiveInternals LiveEngine::Internals() const {
  LiveInternals in;
  in.running = started_.load(std::memory_order_acquire) && intake_->accepting();
  in.queue_depth = intake_->queue_depth();
  in.queue_capacity = static_cast<int64_t>(std::max(1, config_.queue_capacity));
  in.workers = config_.workers;
  in.busy_workers = pool_->busy().load(std::memory_order_relaxed);
  in.in_flight = in_system_.load(std::memory_order_acquire);
  in.arrived = next_id_.load(std::memory_order_acquire);
  const int64_t now = NowNs();
  for (size_t d = 0; d < deps_.size(); ++d) {
    LiveInternals::Dep& x = in.deps.emplace_back();
    x.name = config_.dependencies[d].name;
    // State(now) is what the next call would see (an expired open breaker is half-open).
    if (deps_[d].breaker) {
      x.breaker = started_.load() ? deps_[d].breaker->State(now) : BreakerState::kClosed;
    }
    x.in_flight_calls = pool_->dep_in_flight()[d].load(std::memory_order_relaxed);
    x.faults_version = pool_->faults_version(static_cast<int>(d));
  }
  in.ledger_path = ledger_->path();
  in.ledger_entries = ledger_->entries();
  in.ledger_double_charged = ledger_->double_charged();
  in.ledger_write_errors = ledger_->write_errors();
  {
    MutexLock lock(&order_events_mu_);
    in.order_events_pending = static_cast<int64_t>(order_events_.size());
  }
  {
    MutexLock lock(&index_mu_);
    const int64_t chunks = static_cast<int64_t>(young_.size() + old_.size());
    in.order_slots = chunks * kOrderChunk;
    in.retained_orders = static_cast<int64_t>(old_.size()) * kOrderChunk;
    if (!young_.empty()) in.retained_orders += next_id_.load() - young_base_;
    in.recorded_orders = recorded_count_;
  }
  in.idempotency_keys_held = keys_held_.load(std::memory_order_relaxed);
  in.ledger_tracked = ledger_->tracked();
  return in;
}

void LiveEngine::Finish(LiveWorker* w, Chunk& c, int64_t id, OrderStatus status, FailReason reason,
                        const OrderFlow* flow, int64_t now_ns, bool admitted, int ledger_applied) {
  OrderSlot& o = c.slot(id);
  OrderRecord& r = o.record;
  if (o.idempotency_key != nullptr) {
    // The key's only use was the order's charges: its memory goes with the order.
    o.idempotency_key.reset();
    keys_held_.fetch_sub(1, std::memory_order_relaxed);
  }
  const int applied = flow == nullptr       ? 0
                      : ledger_applied >= 0 ? ledger_applied
                                            : flow->applied_charges();
  // The order's intake.limit permit and its class's end count (intake.shedding).
  intake_->OnOrderEnd(o, status, reason, now_ns, admitted);
  r.end_ns = now_ns;
  r.status = static_cast<uint8_t>(status);
  r.reason = static_cast<uint8_t>(reason);
  const bool degraded = flow != nullptr && flow->degraded();
  if (flow != nullptr) {
    r.attempts = static_cast<uint16_t>(std::min(flow->attempts(), 65535));
    r.degraded = degraded ? 1 : 0;
    r.charges = static_cast<uint8_t>(std::min(flow->charges(), 255));
    r.applied = static_cast<uint8_t>(std::min(applied, 255));
  }
  o.reason = static_cast<uint8_t>(reason);
  metrics_.by_status[static_cast<size_t>(status)]->Add();
  if (reason != FailReason::kNone) metrics_.by_reason[static_cast<size_t>(reason)]->Add();
  if (degraded) metrics_.degraded->Add();
  const int64_t sojourn_ns = now_ns - r.arrival_ns;
  if (admitted) metrics_.latency->Observe(NsToSeconds(sojourn_ns));
  pool_->OnRootServiceEnd(status, sojourn_ns);  // service graphs: rlab_service_*{service="root"}
  auto account = [&](LiveWorker& acc) {
    acc.sojourn_sum_s += NsToSeconds(sojourn_ns);
    if (status == OrderStatus::kCompleted) acc.latency_completed.Add(sojourn_ns);
    if (admitted) acc.latency_terminal.Add(sojourn_ns);
    if (flow != nullptr) {
      acc.charges += flow->charges();
      acc.applied_charges += applied;
      if (applied > 1) ++acc.double_charged;
    }
  };
  if (w != nullptr) {
    account(*w);
  } else {
    MutexLock lock(&aux_mu_);
    account(aux_);
  }
  // Recorded before the publication, so that whoever saw the order terminal finds its event.
  if (options_.order_events) {
    RecordEvent(id, status, reason, now_ns, r.attempts, flow != nullptr ? flow->charges() : 0,
                degraded);
  }
  // The publication point: readers that see the terminal status see the record too.
  const auto before = static_cast<OrderStatus>(
      o.status.exchange(static_cast<uint8_t>(status), std::memory_order_seq_cst));
  if (IsTerminal(before)) finished_twice_.fetch_add(1, std::memory_order_relaxed);  // a bug
  // Any live status may end (a pending order: parked for its intake.rate_limit permit, then
  // cancelled or refused); a terminal one never ends again.
  RLAB_INVARIANT(!IsTerminal(before),
                 "order %d: %s from status %s (statuses only move forward, once terminal)", id,
                 OrderStatusName(status), OrderStatusName(before));
  if (admitted) in_system_.fetch_sub(1, std::memory_order_seq_cst);
  // The last touch of the slot: from here ReleaseChunks may free the chunk.
  c.unfinished.fetch_sub(1, std::memory_order_acq_rel);
  NotifyDone();
}

void LiveEngine::NotifyDone() {
  // Dekker-style pairing with WaitUntil: it raises done_waiters_ and then reads the status; we
  // wrote the status and then read done_waiters_ (both sequentially consistent), so at least one
  // side sees the other.
  if (done_waiters_.load(std::memory_order_seq_cst) == 0) return;
  { MutexLock lock(&done_mu_); }
  done_cv_.SignalAll();
}

absl::StatusOr<LiveEngine::OrderRef> LiveEngine::Find(int64_t id) const {
  if (id < 0 || id >= next_id_.load(std::memory_order_acquire)) {
    return absl::NotFoundError(absl::StrFormat("no order with id %d", id));
  }
  MutexLock lock(&index_mu_);
  Chunk* c = FindChunkLocked(id);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrFormat(
        "order %d is no longer retained: it ended and is older than the last %d orders "
        "(retain_orders); a handle taken before still answers",
        id, options_.retain_orders));
  }
  c->refs.fetch_add(1, std::memory_order_relaxed);
  return OrderRef(c, id);
}

std::vector<LiveEngine::OrderRef> LiveEngine::Retained() const {
  std::vector<OrderRef> out;
  MutexLock lock(&index_mu_);
  const int64_t next = next_id_.load(std::memory_order_acquire);
  std::vector<Chunk*> chunks(old_.begin(), old_.end());
  std::sort(chunks.begin(), chunks.end(),
            [](const Chunk* x, const Chunk* y) { return x->base_id < y->base_id; });
  chunks.insert(chunks.end(), young_.begin(), young_.end());
  for (Chunk* c : chunks) {
    for (int64_t id = c->base_id; id < std::min(c->base_id + kOrderChunk, next); ++id) {
      c->refs.fetch_add(1, std::memory_order_relaxed);
      out.push_back(OrderRef(c, id));
    }
  }
  return out;
}

absl::StatusOr<LiveOrderView> LiveEngine::View(int64_t id) const {
  absl::StatusOr<OrderRef> ref = Find(id);
  if (!ref.ok()) return ref.status();
  return View(*ref);
}

LiveOrderView LiveEngine::View(const OrderRef& order) const {
  LiveOrderView v;
  if (!order.valid()) return v;
  const OrderSlot& o = order.chunk_->slot(order.id_);
  v.status = static_cast<OrderStatus>(o.status.load(std::memory_order_acquire));
  if (IsTerminal(v.status)) {
    v.reason = static_cast<FailReason>(o.reason);
    v.record = o.record;
  } else if (v.status != OrderStatus::kPending) {
    // Only the submitter's fields, published with the queued status: a worker may be writing
    // the others right now (and a pending slot's submitter too).
    v.record.arrival_ns = o.record.arrival_ns;
  }
  return v;
}

bool LiveEngine::WaitUntil(const OrderSlot* slot, SteadyTime deadline, bool forever,
                           bool stop_with_load) const {
  auto done = [&] {
    if (stop_with_load && load_stop_.load(std::memory_order_acquire)) return true;
    if (slot != nullptr) {
      return IsTerminal(static_cast<OrderStatus>(slot->status.load(std::memory_order_seq_cst)));
    }
    return in_system_.load(std::memory_order_seq_cst) == 0 &&
           load_active_.load(std::memory_order_seq_cst) == 0;
  };
  done_waiters_.fetch_add(1, std::memory_order_seq_cst);
  bool ok = true;
  {
    MutexLock lock(&done_mu_);
    while (!done()) {
      if (forever) {
        done_cv_.Wait(&done_mu_);
      } else if (done_cv_.WaitUntil(&done_mu_, deadline)) {
        ok = done();
        break;
      }
    }
  }
  done_waiters_.fetch_sub(1, std::memory_order_seq_cst);
  return ok;
}

bool LiveEngine::Wait(int64_t id, int64_t timeout_ns) const {
  if (id < 0 || id >= next_id_.load(std::memory_order_acquire)) return false;
  absl::StatusOr<OrderRef> ref = Find(id);
  if (!ref.ok()) return true;  // released: only terminal orders are
  return Wait(*ref, timeout_ns);
}

bool LiveEngine::Wait(const OrderRef& order, int64_t timeout_ns) const {
  if (!order.valid()) return false;
  const OrderSlot& o = order.chunk_->slot(order.id_);
  const SteadyTime deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<int64_t>(0, timeout_ns));
  return WaitUntil(&o, deadline, timeout_ns < 0, false) &&
         IsTerminal(static_cast<OrderStatus>(o.status.load(std::memory_order_acquire)));
}

bool LiveEngine::WaitIdle(int64_t timeout_ns) const {
  const SteadyTime deadline =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<int64_t>(0, timeout_ns));
  return WaitUntil(nullptr, deadline, timeout_ns < 0, false);
}

absl::Status LiveEngine::StartLoad() {
  if (!intake_->accepting()) {
    return absl::UnavailableError("the engine is not running (not started, or shut down)");
  }
  MutexLock lock(&load_mu_);
  if (!load_threads_.empty()) return absl::FailedPreconditionError("the load is already started");
  const int64_t t0 = NowNs();
  const int64_t end = t0 + config_.duration_ns;
  if (config_.arrivals.kind == ArrivalConfig::Kind::kClosedLoop) {
    load_active_.store(config_.arrivals.clients, std::memory_order_seq_cst);
    for (int c = 0; c < config_.arrivals.clients; ++c) {
      load_threads_.emplace_back([this, c, t0, end] { ClosedLoopClient(c, t0, end); });
    }
  } else {
    load_active_.store(1, std::memory_order_seq_cst);
    load_threads_.emplace_back([this, t0, end] { OpenLoop(t0, end); });
  }
  return absl::OkStatus();
}

absl::Status LiveEngine::SetArrivalRate(double rate_per_s) {
  if (config_.arrivals.kind != ArrivalConfig::Kind::kPoisson &&
      config_.arrivals.kind != ArrivalConfig::Kind::kConstant) {
    return absl::FailedPreconditionError(
        "arrivals.rate can change only for Poisson or constant arrivals (this scenario's "
        "arrivals are a schedule, a trace or closed-loop clients)");
  }
  // The bounds of the scenario's own arrivals.rate.
  absl::Status valid =
      CheckRange("arrivals.rate", rate_per_s, 0.0, 1e7, Bound::kOpen, Bound::kClosed);
  if (!valid.ok()) return valid;
  arrival_rate_.store(rate_per_s, std::memory_order_release);
  {
    MutexLock lock(&load_mu_);
    arrival_rate_version_.fetch_add(1, std::memory_order_acq_rel);
  }
  load_cv_.SignalAll();
  return absl::OkStatus();
}

LiveEngine::LoadWake LiveEngine::LoadSleepOrRateChange(int64_t t_ns, uint64_t seen) const {
  auto changed = [&] { return arrival_rate_version_.load(std::memory_order_acquire) != seen; };
  if (load_stop_.load(std::memory_order_acquire)) return LoadWake::kStopped;
  if (changed()) return LoadWake::kRateChanged;
  if (t_ns <= NowNs()) return LoadWake::kDue;
  MutexLock lock(&load_mu_);
  const SteadyTime deadline = ToSteady(t_ns);
  while (!load_stop_.load(std::memory_order_acquire) && !changed()) {
    if (load_cv_.WaitUntil(&load_mu_, deadline)) break;
  }
  if (load_stop_.load(std::memory_order_acquire)) return LoadWake::kStopped;
  return changed() ? LoadWake::kRateChanged : LoadWake::kDue;
}

void LiveEngine::StopLoad() {
  load_stop_.store(true, std::memory_order_seq_cst);
  std::vector<std::thread> threads;
  {
    MutexLock lock(&load_mu_);
    threads.swap(load_threads_);
  }
  load_cv_.SignalAll();
  { MutexLock lock(&done_mu_); }
  done_cv_.SignalAll();
  for (std::thread& t : threads) t.join();
}

bool LiveEngine::LoadRunning() const { return load_active_.load(std::memory_order_acquire) > 0; }

bool LiveEngine::LoadSleepUntil(int64_t t_ns) const {
  if (load_stop_.load(std::memory_order_acquire)) return false;
  if (t_ns <= NowNs()) return true;
  MutexLock lock(&load_mu_);
  const SteadyTime deadline = ToSteady(t_ns);
  while (!load_stop_.load(std::memory_order_acquire)) {
    if (load_cv_.WaitUntil(&load_mu_, deadline)) break;
  }
  return !load_stop_.load(std::memory_order_acquire);
}

void LiveEngine::LoadThreadDone() {
  load_active_.fetch_sub(1, std::memory_order_seq_cst);
  { MutexLock lock(&done_mu_); }
  done_cv_.SignalAll();
}

void LiveEngine::OpenLoop(int64_t t0, int64_t end) {
  const ArrivalConfig& arr = config_.arrivals;
  RandomStream rng = rng_.Stream("arrivals");
  const int64_t duration = end - t0;
  ArrivalProcess process(arr, duration);  // the simulated engine's process, in offsets from t0
  int64_t offset = 0;  // of the last arrival (or of the last rate change), from t0
  uint64_t version = arrival_rate_version_.load(std::memory_order_acquire);
  for (;;) {
    // SetArrivalRate may change it while we run (Poisson and constant arrivals only).
    const double rate = arrival_rate_.load(std::memory_order_acquire);
    const int64_t next = process.Next(offset, rate, rng);
    if (next >= duration) {
      // A rate change may still bring an arrival inside the duration: wait for one until the
      // end (Poisson and constant arrivals), or stop.
      if (arr.kind != ArrivalConfig::Kind::kPoisson && arr.kind != ArrivalConfig::Kind::kConstant)
        break;
      if (LoadSleepOrRateChange(end, version) != LoadWake::kRateChanged) break;
      version = arrival_rate_version_.load(std::memory_order_acquire);
      offset = std::min(duration, NowNs() - t0);
      continue;
    }
    // Behind schedule (a burst, or a rate beyond one sleep per order): submit at once.
    const LoadWake wake = LoadSleepOrRateChange(t0 + next, version);
    if (wake == LoadWake::kStopped) break;
    if (wake == LoadWake::kRateChanged) {
      // Draw again from now at the new rate; the arrival just drawn never happens.
      version = arrival_rate_version_.load(std::memory_order_acquire);
      offset = std::min(duration, NowNs() - t0);
      continue;
    }
    offset = next;
    if (!Submit(-1).ok()) break;
  }
  LoadThreadDone();
}

void LiveEngine::ClosedLoopClient(int client, int64_t t0, int64_t end) {
  RandomStream think = rng_.Stream("think", static_cast<uint64_t>(client));
  int64_t t = t0 + SampleNs(config_.arrivals.think_time, think);
  while (t < end) {
    if (!LoadSleepUntil(t)) break;
    OrderRef order;
    if (!SubmitImpl(-1, {}, &order).ok()) break;
    WaitUntil(&order.chunk_->slot(order.id_), SteadyTime::max(), true, true);
    if (load_stop_.load(std::memory_order_acquire)) break;
    t = NowNs() + SampleNs(config_.arrivals.think_time, think);
  }
  LoadThreadDone();
}

std::vector<FamilySnapshot> LiveEngine::MetricsSnapshot() {
  sampler_->RefreshGauges(NowNs(), started_.load());
  intake_->RefreshMetrics();
  return metrics_.registry.Snapshot();
}

std::vector<SimTransition> LiveEngine::TakeTransitions() {
  MutexLock lock(&events_mu_);
  // Those dropped before anyone took them are lost to the caller, as the cap says.
  const int64_t first = std::max<int64_t>(transitions_taken_, transitions_dropped_);
  std::vector<SimTransition> out(
      transitions_.begin() + static_cast<std::ptrdiff_t>(first - transitions_dropped_),
      transitions_.end());
  transitions_taken_ = transitions_dropped_ + static_cast<int64_t>(transitions_.size());
  return out;
}

absl::StatusOr<const SimResult*> LiveEngine::result() const {
  if (!shutdown_.done()) {
    return absl::FailedPreconditionError("the result is complete only after shutdown");
  }
  return &result_;
}

ShutdownReport LiveEngine::Shutdown(int64_t timeout_ns) {
  // Service graphs: the end of the grace time their leftover work may use (live_services.cc).
  const SteadyTime grace_end =
      std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::max<int64_t>(0, timeout_ns));
  LiveShutdown::Steps steps;
  steps.close_intake = [this] { intake_->Close(); };
  steps.stop_producers = [this] {
    StopLoad();
    intake_->WaitSubmits();  // submits that passed the intake check finish in a moment
  };
  steps.drain_parked = [this](SteadyTime deadline, bool forever) {
    bool cancelled = false;
    for (const Job& job : intake_->DrainParked(deadline, forever)) {
      cancelled = true;
      Finish(nullptr, *job.chunk, job.id, OrderStatus::kCancelled, FailReason::kShutdown, nullptr,
             NowNs(), true);
    }
    return cancelled;
  };
  steps.close_queue = [this] { intake_->CloseQueue(); };
  steps.interrupt_waits = [this] { pool_->InterruptWaits(); };
  steps.cancel_queued = [this] {
    for (const Job& job : intake_->DrainQueue()) {
      Finish(nullptr, *job.chunk, job.id, OrderStatus::kCancelled, FailReason::kShutdown, nullptr,
             NowNs(), true);
    }
  };
  steps.join_workers = [this, grace_end, timeout_ns] {
    pool_->Join();
    // Service graphs: every order is terminal; the services' workers end, within what is left
    // of the grace time (live_services.cc).
    pool_->StopServices(grace_end, timeout_ns < 0);
  };
  steps.end_run = [this] {
    sampler_->Stop();
    const int64_t end = NowNs();
    sampler_->Sample(end, true);
    BuildResult(end);
    return end;
  };
  steps.check_conservation = [this] {
    int64_t unfinished = 0;
    {
      MutexLock index_lock(&index_mu_);
      for (const Chunk* c : young_) unfinished += c->unfinished.load(std::memory_order_acquire);
      for (const Chunk* c : old_) unfinished += c->unfinished.load(std::memory_order_acquire);
    }
    return CheckOrderConservation(result_, finished_twice_.load(std::memory_order_acquire),
                                  unfinished);
  };
  steps.arrived = [this] { return next_id_.load(); };
  steps.terminal = [this] { return next_id_.load() - in_system_.load(); };
  steps.cancelled = [this] {
    return metrics_.by_status[static_cast<size_t>(OrderStatus::kCancelled)]->value();
  };
  return shutdown_.Run(timeout_ns, started_.load(std::memory_order_acquire), steps);
}

void LiveEngine::BuildResult(int64_t end_ns) {
  SimResult& r = result_;
  r.arrived = next_id_.load();
  for (OrderStatus s : kTerminal) {
    r.by_status[static_cast<size_t>(s)] = metrics_.by_status[static_cast<size_t>(s)]->value();
  }
  for (int i = 1; i < kNumFailReasons; ++i) r.by_reason[i] = metrics_.by_reason[i]->value();
  r.degraded = metrics_.degraded->value();
  r.in_flight = in_system_.load();
  r.end_ns = end_ns;
  r.deps.assign(deps_.size(), {});
  auto merge = [&r](const LiveWorker& w) {
    r.latency_completed.Merge(w.latency_completed);
    r.latency_terminal.Merge(w.latency_terminal);
    r.queue_wait.Merge(w.queue_wait);
    r.sojourn_sum_s += w.sojourn_sum_s;
    r.busy_integral_ns += w.busy_ns;
    r.charges += w.charges;
    r.applied_charges += w.applied_charges;
    r.double_charged_orders += w.double_charged;
    for (size_t d = 0; d < w.stats.size(); ++d) {
      FlowStats& t = r.deps[d].flow;
      const FlowStats& s = w.stats[d];
      t.calls += s.calls;
      t.retries += s.retries;
      t.failures += s.failures;
      t.rejected_breaker += s.rejected_breaker;
      t.rejected_bulkhead += s.rejected_bulkhead;
      t.rejected_throttle += s.rejected_throttle;
      t.fallbacks += s.fallbacks;
      t.successes += s.successes;
      t.cancelled += s.cancelled;
      t.hedges += s.hedges;
      t.hedges_won += s.hedges_won;
      t.hedges_denied += s.hedges_denied;
      t.rejected_limit += s.rejected_limit;
      t.rejected_rate_limit += s.rejected_rate_limit;
      t.rate_limit_waits += s.rate_limit_waits;
      for (int e = 0; e < kNumRetryEndReasons; ++e) t.retry_ends[e] += s.retry_ends[e];
    }
  };
  for (const auto& w : pool_->workers()) merge(*w);
  for (const auto& w : pool_->service_workers()) merge(*w);  // service graphs (live_services.cc)
  r.services = pool_->ServiceResult();
  {
    MutexLock lock(&aux_mu_);
    merge(aux_);
  }
  // Every order is terminal by now, so the integral of the number in the system is the sum of
  // the time each order spent in it (rejected orders spent none).
  r.in_system_integral_s = r.sojourn_sum_s;
  r.events = r.arrived;
  for (size_t d = 0; d < deps_.size(); ++d) {
    DependencyTotals& t = r.deps[d];
    if (deps_[d].breaker) t.breaker = deps_[d].breaker->Snapshot(end_ns);
    t.trips = metrics_.deps[d].trips->value();
    if (deps_[d].token_bucket) {
      t.budget_tokens = deps_[d].token_bucket->Snapshot().milli_tokens * 1e-3;
    }
    AddCapacityTotals(pool_->ServerTotals(static_cast<int>(d), -1), t);
    t.max_load = std::max(t.max_load, pool_->dep_max_load(static_cast<int>(d)));
    t.wasted_attempt_ns = pool_->dep_wasted_ns()[d].load();
    if (deps_[d].hedger && deps_[d].hedger->config().budget_ratio >= 0.0) {
      t.hedge_tokens = deps_[d].hedger->tokens();
    }
  }
  for (size_t d = 0; d < deps_.size(); ++d) {
    const ReplicaPool* pool = deps_[d].replicas.get();
    if (pool == nullptr) continue;
    DependencyTotals& t = r.deps[d];
    t.replicas = pool->Totals(end_ns);
    t.panic_picks = pool->panic_picks();
    for (int i = 0; i < pool_->replica_servers(static_cast<int>(d)); ++i) {
      AddCapacityTotals(pool_->ServerTotals(static_cast<int>(d), i), t);
    }
    if (options_.record_events) {
      for (const ReplicaEvent& e : pool->Events()) {
        if (e.t_ns <= end_ns) r.ejections.push_back({static_cast<int>(d), e});
      }
    }
  }
  std::stable_sort(r.ejections.begin(), r.ejections.end(),
                   [](const ReplicaEjection& x, const ReplicaEjection& y) {
                     return x.event.t_ns < y.event.t_ns;
                   });
  if (options_.record_orders) {
    // The orders still in the table join the released ones' records (the table keeps its
    // chunks: handles and lookups by id go on answering after the run).
    MutexLock lock(&index_mu_);
    for (const Chunk* c : old_) RecordChunkLocked(*c, kOrderChunk);
    for (const Chunk* c : young_) {
      RecordChunkLocked(*c, std::min(kOrderChunk, r.arrived - c->base_id));
    }
    size_t skip =
        static_cast<size_t>(std::max<int64_t>(0, recorded_count_ - options_.max_order_records));
    recorded_first_id_ =
        recorded_.empty() ? 0 : recorded_.begin()->first + static_cast<int64_t>(skip);
    for (auto it = recorded_.begin(); it != recorded_.end(); it = recorded_.erase(it)) {
      for (size_t i = skip; i < it->second.size(); ++i) r.orders.emplace_back() = it->second[i];
      skip = 0;
    }
    recorded_count_ = 0;
  }
  r.ts_columns = sampler_->columns();
  r.ts = sampler_->rows();
  r.origins = intake_->origins();
  {
    MutexLock lock(&events_mu_);
    if (options_.record_events) {
      for (const SimTransition& t : phase_edges_) {
        if (t.t_ns <= end_ns) r.transitions.push_back(t);
      }
      for (const SimTransition& t : transitions_) {
        if (t.t_ns <= end_ns) r.transitions.push_back(t);
      }
    }
  }
  if (options_.record_events) {  // the hedge budgets' edges (policy/hedge.h)
    for (size_t d = 0; d < deps_.size(); ++d) {
      if (!deps_[d].hedger || deps_[d].hedger->config().budget_ratio < 0.0) continue;
      for (const Hedger::BudgetEvent& e : deps_[d].hedger->BudgetEvents()) {
        if (e.t_ns > end_ns) continue;
        r.transitions.push_back(
            {e.t_ns, static_cast<int>(d),
             e.dry ? SimTransition::Kind::kHedgeDry : SimTransition::Kind::kHedgeRefill,
             BreakerState::kClosed, BreakerState::kClosed, -1});
      }
    }
  }
  std::stable_sort(r.transitions.begin(), r.transitions.end(),
                   [](const SimTransition& x, const SimTransition& y) { return x.t_ns < y.t_ns; });
}

}  // namespace rlab
