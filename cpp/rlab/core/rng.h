#ifndef RLAB_CORE_RNG_H_
#define RLAB_CORE_RNG_H_

#include <cmath>
#include <cstdint>
#include <string_view>

namespace rlab {

// One stream of pseudo-random draws (xoshiro256**), with the distributions the lab needs written
// out here so that the same seed gives the same draws with every compiler and standard library.
// Not thread-safe: each stream has one owner.
class RandomStream {
 public:
  // Seeds the stream's state from `seed` through SplitMix64.
  explicit RandomStream(uint64_t seed);

  // The next 64 raw bits. Inline: the simulator draws several per order.
  uint64_t NextU64() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // A uniform draw in [0, 1) with 53 bits of precision.
  double Uniform01() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // A uniform draw in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform01(); }
  // True with probability `p`.
  bool Bernoulli(double p) { return Uniform01() < p; }
  // An exponential draw with the given mean. Inline: the simulator's hottest draw. 1 - U is
  // exact for a 53-bit U and lies in (0, 1], so the log is finite; log is about twice as fast as
  // log1p.
  double Exponential(double mean) { return -mean * std::log(1.0 - Uniform01()); }
  // A standard normal draw (Marsaglia's polar method).
  double Normal();
  // A log-normal draw: exp(mu + sigma * N(0, 1)).
  double LogNormal(double mu, double sigma);
  // A uniform integer in [0, n) for n > 0 (Lemire's nearly divisionless method).
  uint64_t UniformIndex(uint64_t n);

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t s_[4];
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

// A root seed from which independent named streams are derived. A stream depends only on the root
// seed and its own name, so adding a component never shifts the draws of another.
class Rng {
 public:
  explicit Rng(uint64_t seed) : seed_(seed) {}

  // The root seed.
  uint64_t seed() const { return seed_; }
  // The stream called `name`.
  RandomStream Stream(std::string_view name) const { return RandomStream(DeriveSeed(seed_, name)); }
  // The stream called `name` with an index, e.g. one per worker or per client.
  RandomStream Stream(std::string_view name, uint64_t index) const;
  // The seed of stream `name` under root `seed`: a 64-bit hash of both.
  static uint64_t DeriveSeed(uint64_t seed, std::string_view name);

 private:
  uint64_t seed_;
};

}  // namespace rlab

#endif  // RLAB_CORE_RNG_H_
