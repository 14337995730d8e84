#include "rlab/model/faults.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Sigma beyond this makes the tail meaningless (the 99th percentile would be e^23 medians).
constexpr double kMaxLogNormalSigma = 10.0;
constexpr int64_t kMaxCalls = 1'000'000;   // calls served at once
constexpr int64_t kMaxQueue = 10'000'000;  // calls waiting, and a load
constexpr double kMaxLatencyMultiplier = 1e6;

// The uniform draws of one sample: the mixture's component pick, then two for the component
// (Box-Muller needs two; the others use the first).
struct SampleDraws {
  double pick;
  double u1;
  double u2;
};

SampleDraws DrawSample(RandomStream& rng) {
  SampleDraws d;
  d.pick = rng.Uniform01();
  d.u1 = rng.Uniform01();
  d.u2 = rng.Uniform01();
  return d;
}

// A non-mixture distribution's draw in seconds, by inversion (one or two uniforms each).
double SampleSimpleSeconds(const LatencyDist& dist, double u1, double u2) {
  switch (dist.kind) {
    case LatencyDist::Kind::kConstant:
      return dist.a;
    case LatencyDist::Kind::kExponential:
      // 1 - u lies in (0, 1], so the log is finite.
      return -dist.a * std::log(1.0 - u1);  // 1 - u1 is exact; log beats log1p
    case LatencyDist::Kind::kLogNormal: {
      // Box-Muller with a fixed two draws, rather than RandomStream::Normal: the polar method
      // rejects and caches a spare, so its draw count varies and would shift later draws.
      const double radius = std::sqrt(-2.0 * std::log(1.0 - u1));
      const double z = radius * std::cos(2.0 * std::numbers::pi * u2);
      return dist.a * std::exp(dist.b * z);
    }
    case LatencyDist::Kind::kUniform:
      return dist.a + (dist.b - dist.a) * u1;
    case LatencyDist::Kind::kMixture:
      break;  // not simple; ValidateMixtureRules forbids nested mixtures
  }
  return 0.0;
}

double SampleSeconds(const LatencyDist& dist, const SampleDraws& d) {
  if (dist.kind != LatencyDist::Kind::kMixture) return SampleSimpleSeconds(dist, d.u1, d.u2);
  const size_t n = std::min(dist.weights.size(), dist.components.size());
  if (n == 0) return 0.0;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += dist.weights[i];
  const double x = d.pick * total;
  double cumulative = 0.0;
  size_t chosen = n - 1;  // rounding can leave x at the very top: take the last component
  for (size_t i = 0; i < n; ++i) {
    cumulative += dist.weights[i];
    if (x < cumulative) {
      chosen = i;
      break;
    }
  }
  return SampleSimpleSeconds(dist.components[chosen], d.u1, d.u2);
}

// Seconds to capped nanoseconds: NaN and negatives give 0, anything huge gives kMaxSampleNs.
int64_t ToCappedNs(double seconds) {
  if (!(seconds > 0.0)) return 0;
  if (seconds >= kMaxDurationS) return kMaxSampleNs;
  return std::min(SecondsToNs(seconds), kMaxSampleNs);
}

double MixTotal(const FailureMix& mix) {
  return mix.http500 + mix.http503 + mix.http429 + mix.timeout + mix.connection_reset;
}

// A failing call needs a kind to fail with: the mix in force must have some weight.
absl::Status CheckMixUsable(std::string_view mix_path, const FailureMix& mix,
                            std::string_view rate_path, double failure_rate) {
  const double total = MixTotal(mix);
  if (failure_rate > 0.0 && !(total > 0.0 && std::isfinite(total))) {
    return Invalid(
        absl::StrFormat("%s must have a positive, finite total weight when %s > 0, got total %g",
                        mix_path, rate_path, total));
  }
  return absl::OkStatus();
}

// Picks a failure kind from the mix with the uniform draw `u`.
Outcome PickFailure(const FailureMix& mix, double u) {
  const std::array<double, 5> weights = {mix.http500, mix.http503, mix.http429, mix.timeout,
                                         mix.connection_reset};
  double total = 0.0;
  for (double w : weights) total += w;
  const double x = u * total;
  double cumulative = 0.0;
  int chosen = -1;
  int last_positive = 1;  // 503 if the mix is somehow empty: validation prevents it
  for (int i = 0; i < static_cast<int>(weights.size()); ++i) {
    if (weights[i] > 0.0) last_positive = i;
    cumulative += weights[i];
    if (chosen < 0 && x < cumulative) chosen = i;
  }
  if (chosen < 0) chosen = last_positive;
  switch (chosen) {
    case 0:
      return Outcome::Http(500);
    case 1:
      return Outcome::Http(503);
    case 2:
      return Outcome::Http(429, mix.retry_after_ns);
    case 3:
      return Outcome::Of(OutcomeKind::kTimeout);
    default:
      return Outcome::Of(OutcomeKind::kConnectionReset);
  }
}

}  // namespace

absl::Status ValidateUniformRules(const LatencyDist& dist) {
  if (dist.b >= dist.a) return absl::OkStatus();
  return Invalid(absl::StrFormat("high must be >= low (%g), got %g", dist.a, dist.b));
}

absl::Status ValidateMixtureRules(const LatencyDist& dist) {
  const std::vector<LatencyDist>& c = dist.components;
  if (c.empty()) return Invalid("components must not be empty");
  if (dist.weights.size() != c.size()) {
    return Invalid(absl::StrFormat("weights must have one entry per component (%d), got %d",
                                   c.size(), dist.weights.size()));
  }
  // Each weight is in (0, inf]: the sum is finite unless one is infinite or they overflow.
  if (!std::isfinite(std::accumulate(dist.weights.begin(), dist.weights.end(), 0.0))) {
    return Invalid("weights must have a finite sum");
  }
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i].kind != LatencyDist::Kind::kMixture) continue;
    return Invalid(absl::StrFormat("components[%d] must not itself be a mixture", i));
  }
  return absl::OkStatus();
}

namespace {

// One table per distribution, over LatencyDist's `a` and `b` (seconds, or sigma).
RLAB_TABLE(ConstantSchema, LatencyDist, "Constant", "constant", nullptr,
           schema::Required(schema::Real<&C::a>("value", 0, kMaxS, RLAB_ENDS_CC, "s",
                                                "the duration")));

RLAB_TABLE(ExponentialSchema, LatencyDist, "Exponential", "exponential", nullptr,
           schema::Required(schema::Real<&C::a>("mean", 0, kMaxS, RLAB_ENDS_CC, "s",
                                                "the mean duration")));

RLAB_TABLE(LogNormalSchema, LatencyDist, "LogNormal", "lognormal", nullptr,
           schema::Required(schema::Real<&C::a>("median", 0, kMaxS, RLAB_ENDS_CC, "s",
                                                "the median duration")),
           schema::Required(schema::Real<&C::b>("sigma", 0, kMaxLogNormalSigma, RLAB_ENDS_CC, "",
                                                "the spread of the log (0 is a constant)")));

RLAB_TABLE(UniformSchema, LatencyDist, "Uniform", "uniform", &ValidateUniformRules,
           schema::Required(schema::Real<&C::a>("low", 0, kMaxS, RLAB_ENDS_CC, "s", "the lowest")),
           schema::Required(schema::Real<&C::b>("high", 0, kMaxS, RLAB_ENDS_CC, "s",
                                                "the highest, >= low")));

RLAB_TABLE(MixtureSchema, LatencyDist, "Mixture", "mixture", &ValidateMixtureRules,
           schema::Required(schema::Numbers<&C::weights>("weights", 0, kInf, RLAB_ENDS_OC, "",
                                                         "relative weights, one per component")),
           schema::Required(schema::OneOfList<&C::components, &LatencyUnion>(
               "components", "the distributions mixed, none itself a mixture")));

}  // namespace

const UnionSchema<LatencyDist>& LatencyUnion() {
  using K = LatencyDist::Kind;
  static constexpr UnionMember<LatencyDist> kMembers[] = {
      {&ConstantSchema, K::kConstant},   {&ExponentialSchema, K::kExponential},
      {&LogNormalSchema, K::kLogNormal}, {&UniformSchema, K::kUniform},
      {&MixtureSchema, K::kMixture},
  };
  static constexpr UnionSchema<LatencyDist> kUnion{"Latency", kMembers};
  return kUnion;
}

RLAB_TABLE(FailureMixSchema, FailureMix, "FailureMix", "", nullptr,
           RLAB_REAL(http500, 0, kInf, CC, "", "weight of HTTP 500 answers"),
           RLAB_REAL(http503, 0, kInf, CC, "", "weight of HTTP 503 answers"),
           RLAB_REAL(http429, 0, kInf, CC, "", "weight of HTTP 429 answers"),
           RLAB_REAL(timeout, 0, kInf, CC, "", "weight of hangs"),
           RLAB_REAL(connection_reset, 0, kInf, CC, "", "weight of connection resets"),
           RLAB_SECONDS(retry_after, 0, kMaxS, CC, "the Retry-After hint of a 429"));

RLAB_TABLE(CapacitySchema, CapacityConfig, "Capacity", "", nullptr,
           RLAB_INT(max_in_service, 0, kMaxCalls, "calls", "calls served at once; 0 is unlimited"),
           RLAB_INT(max_queue, -1, kMaxQueue, "calls",
                    "calls allowed to wait for service; -1 is unbounded"),
           RLAB_REAL(load_slope, 0, kInf, CC, "",
                     "service time grows by this factor per call above the knee"),
           RLAB_INT(load_knee, 0, kMaxQueue, "calls", "the load above which service slows down"),
           RLAB_FLAG(drop_abandoned, "whether the server drops a call whose caller gave up"),
           RLAB_CONFIG(discipline, QueueDisciplineSchema,
                       "the order in which the server takes waiting calls"));

absl::Status ValidatePhaseRules(const FaultPhase& phase) {
  if (phase.end_ns > phase.start_ns) return absl::OkStatus();
  return Invalid(absl::StrFormat("end must be greater than start (%g), got %g",
                                 NsToSeconds(phase.start_ns), NsToSeconds(phase.end_ns)));
}

RLAB_TABLE(PhaseSchema, FaultPhase, "Phase", "phase", &ValidatePhaseRules,
           schema::Required(RLAB_STRING(name, "the phase's name in summaries and paths")),
           schema::Required(RLAB_SECONDS(start, 0, kMaxS, CC, "where the window starts")),
           schema::Required(RLAB_SECONDS(end, 0, kMaxS, CC, "where the window ends")),
           schema::MaybeReal<&C::failure_rate>("failure_rate", 0, 1, RLAB_ENDS_CC, "",
                                               "the failure probability in force"),
           RLAB_CONFIG(mix, FailureMixSchema, "the failure kinds in force"),
           RLAB_ONEOF(latency, LatencyUnion, "the service time distribution in force"),
           RLAB_REAL(latency_multiplier, 0, kMaxLatencyMultiplier, OC, "",
                     "multiplies whichever latency is in force"));

absl::Status ValidateFaultsRules(const FaultsConfig& config) {
  absl::Status s = CheckMixUsable("mix", config.mix, "failure_rate", config.failure_rate);
  const std::vector<FaultPhase>& phases = config.phases;
  const FieldInfo field{.name = "phases", .by_name = true};  // the phases row, for their labels
  std::vector<std::string> names, labels;
  for (const FaultPhase& p : phases) names.push_back(p.name);
  for (size_t i = 0; i < phases.size() && s.ok(); ++i) {
    labels.push_back(ElementLabel(field, names, i));
    // A phase fails calls with its own mix, or with the model's (which need not be usable
    // outside the phase).
    const FaultPhase& p = phases[i];
    s = CheckMixUsable(p.mix ? labels[i] + ".mix" : "mix", p.mix.value_or(config.mix),
                       p.failure_rate ? labels[i] + ".failure_rate" : "failure_rate",
                       p.failure_rate.value_or(config.failure_rate));
  }
  if (!s.ok()) return s;
  // Phases may be given in any order; overlap is checked on the sorted order, and reported in
  // the order the user gave them.
  std::vector<size_t> order(phases.size());
  std::iota(order.begin(), order.end(), 0);
  absl::c_stable_sort(order,
                      [&](size_t x, size_t y) { return phases[x].start_ns < phases[y].start_ns; });
  const auto it = absl::c_adjacent_find(
      order, [&](size_t x, size_t y) { return phases[y].start_ns < phases[x].end_ns; });
  if (it == order.end()) return absl::OkStatus();
  const auto [a, b] = std::minmax(it[0], it[1]);
  return Invalid(absl::StrFormat("%s [%g, %g) overlaps %s [%g, %g): phases must not overlap",
                                 labels[a], NsToSeconds(phases[a].start_ns),
                                 NsToSeconds(phases[a].end_ns), labels[b],
                                 NsToSeconds(phases[b].start_ns), NsToSeconds(phases[b].end_ns)));
}

RLAB_TABLE(FaultsSchema, FaultsConfig, "Faults", "", &ValidateFaultsRules,
           RLAB_REAL(failure_rate, 0, 1, CC, "", "probability that an attempt fails"),
           RLAB_CONFIG(mix, FailureMixSchema, "the kinds of failure"),
           RLAB_ONEOF(latency, LatencyUnion, "the service time of every attempt"),
           RLAB_LIST(phases, PhaseSchema, true, "windows overriding the above; must not overlap"),
           RLAB_CONFIG(capacity, CapacitySchema, "limited concurrency and load-dependent latency"),
           RLAB_REAL(ambiguous_rate, 0, 1, CC, "",
                     "probability that a successful attempt commits but loses its response"),
           RLAB_SECONDS(hang, 0, kMaxS, OC,
                        "how long a hung call lasts with no timeout or deadline"));

int64_t SampleNs(const LatencyDist& dist, RandomStream& rng) {
  return ToCappedNs(SampleSeconds(dist, DrawSample(rng)));
}

double MeanSeconds(const LatencyDist& dist) {
  switch (dist.kind) {
    case LatencyDist::Kind::kConstant:
    case LatencyDist::Kind::kExponential:
      return dist.a;
    case LatencyDist::Kind::kLogNormal:
      return dist.a * std::exp(dist.b * dist.b / 2.0);
    case LatencyDist::Kind::kUniform:
      return (dist.a + dist.b) / 2.0;
    case LatencyDist::Kind::kMixture: {
      const size_t n = std::min(dist.weights.size(), dist.components.size());
      double total = 0.0;
      double weighted = 0.0;
      for (size_t i = 0; i < n; ++i) {
        total += dist.weights[i];
        weighted += dist.weights[i] * MeanSeconds(dist.components[i]);
      }
      return total > 0.0 ? weighted / total : 0.0;
    }
  }
  return 0.0;
}

absl::Status ValidateFaultModel(std::string_view path, const FaultsConfig& config) {
  return ValidateAt(path, FaultsSchema(), config);
}

FaultModel::FaultModel(const FaultsConfig& config) : config_(config) {}

const FaultPhase* FaultModel::PhaseAt(int64_t now_ns) const {
  for (const FaultPhase& phase : config_.phases) {
    if (phase.start_ns <= now_ns && now_ns < phase.end_ns) return &phase;
  }
  return nullptr;
}

double FaultModel::FailureRateAt(int64_t now_ns) const {
  const FaultPhase* phase = PhaseAt(now_ns);
  return phase != nullptr && phase->failure_rate.has_value() ? *phase->failure_rate
                                                             : config_.failure_rate;
}

AttemptDraw FaultModel::Draw(int64_t now_ns, int load, RandomStream& rng) const {
  const FaultPhase* phase = PhaseAt(now_ns);
  double failure_rate = config_.failure_rate;
  const FailureMix* mix = &config_.mix;
  const LatencyDist* latency = &config_.latency;
  double multiplier = 1.0;
  if (phase != nullptr) {
    if (phase->failure_rate.has_value()) failure_rate = *phase->failure_rate;
    if (phase->mix.has_value()) mix = &*phase->mix;
    if (phase->latency.has_value()) latency = &*phase->latency;
    multiplier = phase->latency_multiplier;
  }

  // Every draw is taken whether or not it is used, in a fixed order, so that attempt i always
  // reads the same uniforms: raising failure_rate turns some successes into failures and changes
  // nothing else (common random numbers across a sweep).
  const double u_fail = rng.Uniform01();
  const double u_kind = rng.Uniform01();
  const double u_ambiguous = rng.Uniform01();
  const double sample_s = SampleSeconds(*latency, DrawSample(rng));

  const CapacityConfig& capacity = config_.capacity;
  const double excess_load =
      static_cast<double>(std::max<int64_t>(0, int64_t{load} - capacity.load_knee));
  const double load_factor = 1.0 + capacity.load_slope * excess_load;

  AttemptDraw draw;
  draw.service_ns = ToCappedNs(sample_s * multiplier * load_factor);
  if (u_fail < failure_rate) {
    draw.outcome = PickFailure(*mix, u_kind);
    draw.hangs = draw.outcome.kind == OutcomeKind::kTimeout;
    draw.committed = false;
  } else if (u_ambiguous < config_.ambiguous_rate) {
    // The effect happened but the answer is lost: the caller can only time out, and a retry
    // without an idempotency key charges twice.
    draw.outcome = Outcome::Of(OutcomeKind::kTimeout);
    draw.hangs = true;
    draw.committed = true;
  } else {
    draw.outcome = Outcome::Success();
    draw.committed = true;
  }
  return draw;
}

}  // namespace rlab
