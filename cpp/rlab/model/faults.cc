#include "rlab/model/faults.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "rlab/core/clock.h"
#include "rlab/core/validate.h"

namespace rlab {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Sigma beyond this makes the tail meaningless (the 99th percentile would be e^23 medians).
constexpr double kMaxLogNormalSigma = 10.0;
constexpr int64_t kMaxCapacityCount = 1'000'000;
constexpr int64_t kMaxQueueCount = 10'000'000;
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

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

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
  if (dist.components.empty()) return Invalid("components must not be empty");
  if (dist.weights.size() != dist.components.size()) {
    return Invalid(absl::StrFormat("weights must have one entry per component (%d), got %d",
                                   dist.components.size(), dist.weights.size()));
  }
  double total = 0.0;
  for (double w : dist.weights) total += w;
  if (!std::isfinite(total)) return Invalid("weights must have a finite sum");
  for (size_t i = 0; i < dist.components.size(); ++i) {
    if (dist.components[i].kind == LatencyDist::Kind::kMixture) {
      return Invalid(absl::StrFormat("components[%d] must not itself be a mixture", i));
    }
  }
  return absl::OkStatus();
}

namespace {

// One table per distribution, over LatencyDist's `a` and `b` (seconds, or sigma).
const ConfigSchema<LatencyDist>& ConstantSchema() {
  using C = LatencyDist;
  static constexpr FieldSpec<C> kFields[] = {schema::Required(schema::Real<&C::a>(
      "value", 0, kMaxDurationS, Bound::kClosed, Bound::kClosed, "s", "the duration"))};
  static constexpr ConfigSchema<C> kSchema{"Constant", kFields, "constant"};
  return kSchema;
}

const ConfigSchema<LatencyDist>& ExponentialSchema() {
  using C = LatencyDist;
  static constexpr FieldSpec<C> kFields[] = {schema::Required(schema::Real<&C::a>(
      "mean", 0, kMaxDurationS, Bound::kClosed, Bound::kClosed, "s", "the mean duration"))};
  static constexpr ConfigSchema<C> kSchema{"Exponential", kFields, "exponential"};
  return kSchema;
}

const ConfigSchema<LatencyDist>& LogNormalSchema() {
  using C = LatencyDist;
  constexpr Bound kC = Bound::kClosed;
  static constexpr FieldSpec<C> kFields[] = {
      schema::Required(
          schema::Real<&C::a>("median", 0, kMaxDurationS, kC, kC, "s", "the median duration")),
      schema::Required(schema::Real<&C::b>("sigma", 0, kMaxLogNormalSigma, kC, kC, "",
                                           "the spread of the log (0 is a constant)")),
  };
  static constexpr ConfigSchema<C> kSchema{"LogNormal", kFields, "lognormal"};
  return kSchema;
}

const ConfigSchema<LatencyDist>& UniformSchema() {
  using C = LatencyDist;
  constexpr Bound kC = Bound::kClosed;
  static constexpr FieldSpec<C> kFields[] = {
      schema::Required(schema::Real<&C::a>("low", 0, kMaxDurationS, kC, kC, "s", "the lowest")),
      schema::Required(
          schema::Real<&C::b>("high", 0, kMaxDurationS, kC, kC, "s", "the highest, >= low")),
  };
  static constexpr ConfigSchema<C> kSchema{"Uniform", kFields, "uniform", &ValidateUniformRules};
  return kSchema;
}

const ConfigSchema<LatencyDist>& MixtureSchema() {
  using C = LatencyDist;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::Numbers<&C::weights>("weights", 0, kInf, Bound::kOpen,
                                                    Bound::kClosed, "",
                                                    "relative weights, one per component")),
      schema::Required(schema::OneOfList<&C::components, &LatencyUnion>(
          "components", "the distributions mixed, none itself a mixture")),
  };
  static const ConfigSchema<C> kSchema{"Mixture", kFields, "mixture", &ValidateMixtureRules};
  return kSchema;
}

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

const ConfigSchema<FailureMix>& FailureMixSchema() {
  using C = FailureMix;
  constexpr Bound kC = Bound::kClosed;
  static constexpr FieldSpec<C> kFields[] = {
      schema::Real<&C::http500>("http500", 0, kInf, kC, kC, "", "weight of HTTP 500 answers"),
      schema::Real<&C::http503>("http503", 0, kInf, kC, kC, "", "weight of HTTP 503 answers"),
      schema::Real<&C::http429>("http429", 0, kInf, kC, kC, "", "weight of HTTP 429 answers"),
      schema::Real<&C::timeout>("timeout", 0, kInf, kC, kC, "", "weight of hangs"),
      schema::Real<&C::connection_reset>("connection_reset", 0, kInf, kC, kC, "",
                                         "weight of connection resets"),
      schema::Seconds<&C::retry_after_ns>("retry_after", 0, kMaxDurationS, kC, kC,
                                          "the Retry-After hint of a 429"),
  };
  static constexpr ConfigSchema<C> kSchema{"FailureMix", kFields};
  return kSchema;
}

const ConfigSchema<CapacityConfig>& CapacitySchema() {
  using C = CapacityConfig;
  constexpr Bound kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      schema::Int<&C::max_in_service>("max_in_service", 0, kMaxCapacityCount, "calls",
                                      "calls served at once; 0 is unlimited"),
      schema::Int<&C::max_queue>("max_queue", -1, kMaxQueueCount, "calls",
                                 "calls allowed to wait for service; -1 is unbounded"),
      schema::Real<&C::load_slope>("load_slope", 0, kInf, kC, kC, "",
                                   "service time grows by this factor per call above the knee"),
      schema::Int<&C::load_knee>("load_knee", 0, kMaxQueueCount, "calls",
                                 "the load above which service slows down"),
      schema::Flag<&C::drop_abandoned>("drop_abandoned",
                                       "whether the server drops a call whose caller gave up"),
      schema::Config<&C::discipline, &QueueDisciplineSchema>(
          "discipline", "the order in which the server takes waiting calls"),
  };
  static const ConfigSchema<C> kSchema{"Capacity", kFields};
  return kSchema;
}

absl::Status ValidatePhaseRules(const FaultPhase& phase) {
  if (phase.end_ns > phase.start_ns) return absl::OkStatus();
  return Invalid(absl::StrFormat("end must be greater than start (%g), got %g",
                                 NsToSeconds(phase.start_ns), NsToSeconds(phase.end_ns)));
}

const ConfigSchema<FaultPhase>& PhaseSchema() {
  using C = FaultPhase;
  constexpr Bound kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      schema::Required(schema::String<&C::name>("name", "the phase's name in summaries and paths")),
      schema::Required(schema::Seconds<&C::start_ns>("start", 0, kMaxDurationS, kC, kC,
                                                     "where the window starts")),
      schema::Required(
          schema::Seconds<&C::end_ns>("end", 0, kMaxDurationS, kC, kC, "where the window ends")),
      schema::MaybeReal<&C::failure_rate>("failure_rate", 0, 1, kC, kC, "",
                                          "the failure probability in force"),
      schema::Config<&C::mix, &FailureMixSchema>("mix", "the failure kinds in force"),
      schema::OneOf<&C::latency, &LatencyUnion>("latency",
                                                "the service time distribution in force"),
      schema::Real<&C::latency_multiplier>("latency_multiplier", 0, kMaxLatencyMultiplier,
                                           Bound::kOpen, kC, "",
                                           "multiplies whichever latency is in force"),
  };
  static const ConfigSchema<C> kSchema{"Phase", kFields, "phase", &ValidatePhaseRules};
  return kSchema;
}

absl::Status ValidateFaultsRules(const FaultsConfig& config) {
  absl::Status s = CheckMixUsable("mix", config.mix, "failure_rate", config.failure_rate);
  if (!s.ok()) return s;
  const std::vector<FaultPhase>& phases = config.phases;
  FieldInfo field;  // the phases row, for their labels
  field.name = "phases";
  field.by_name = true;
  std::vector<std::string> names;
  for (const FaultPhase& p : phases) names.push_back(p.name);
  std::vector<std::string> labels;
  for (size_t i = 0; i < phases.size(); ++i) {
    labels.push_back(ElementLabel(field, names, i));
    const FaultPhase& p = phases[i];
    // A phase fails calls with its own mix, or with the model's (which need not be usable
    // outside the phase).
    const double rate = p.failure_rate.value_or(config.failure_rate);
    const std::string rate_path =
        p.failure_rate.has_value() ? labels[i] + ".failure_rate" : "failure_rate";
    s = p.mix.has_value() ? CheckMixUsable(labels[i] + ".mix", *p.mix, rate_path, rate)
                          : CheckMixUsable("mix", config.mix, rate_path, rate);
    if (!s.ok()) return s;
  }
  // Phases may be given in any order; overlap is checked on the sorted order, and reported in
  // the order the user gave them.
  std::vector<size_t> order(phases.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return phases[x].start_ns < phases[y].start_ns; });
  for (size_t k = 1; k < order.size(); ++k) {
    size_t a = order[k - 1];
    size_t b = order[k];
    if (phases[b].start_ns < phases[a].end_ns) {
      if (b < a) std::swap(a, b);
      return Invalid(absl::StrFormat(
          "%s [%g, %g) overlaps %s [%g, %g): phases must not overlap", labels[a],
          NsToSeconds(phases[a].start_ns), NsToSeconds(phases[a].end_ns), labels[b],
          NsToSeconds(phases[b].start_ns), NsToSeconds(phases[b].end_ns)));
    }
  }
  return absl::OkStatus();
}

const ConfigSchema<FaultsConfig>& FaultsSchema() {
  using C = FaultsConfig;
  constexpr Bound kC = Bound::kClosed;
  static const FieldSpec<C> kFields[] = {
      schema::Real<&C::failure_rate>("failure_rate", 0, 1, kC, kC, "",
                                     "probability that an attempt fails"),
      schema::Config<&C::mix, &FailureMixSchema>("mix", "the kinds of failure"),
      schema::OneOf<&C::latency, &LatencyUnion>("latency", "the service time of every attempt"),
      schema::List<&C::phases, &PhaseSchema>("phases", /*by_name=*/true,
                                             "windows overriding the above; must not overlap"),
      schema::Config<&C::capacity, &CapacitySchema>(
          "capacity", "limited concurrency and load-dependent latency"),
      schema::Real<&C::ambiguous_rate>(
          "ambiguous_rate", 0, 1, kC, kC, "",
          "probability that a successful attempt commits but loses its response"),
      schema::Seconds<&C::hang_ns>("hang", 0, kMaxDurationS, Bound::kOpen, kC,
                                   "how long a hung call lasts with no timeout or deadline"),
  };
  static const ConfigSchema<C> kSchema{"Faults", kFields, "", &ValidateFaultsRules};
  return kSchema;
}

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
