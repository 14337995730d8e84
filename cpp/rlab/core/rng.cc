#include "rlab/core/rng.h"

#include <cmath>

namespace rlab {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

RandomStream::RandomStream(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& word : s_) word = SplitMix64(x);
}

double RandomStream::Normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  double u, v, s;
  do {
    u = 2.0 * Uniform01() - 1.0;
    v = 2.0 * Uniform01() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double m = std::sqrt(-2.0 * std::log(s) / s);
  spare_normal_ = v * m;
  has_spare_normal_ = true;
  return u * m;
}

double RandomStream::LogNormal(double mu, double sigma) { return std::exp(mu + sigma * Normal()); }

uint64_t RandomStream::UniformIndex(uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(NextU64()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(NextU64()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

uint64_t Rng::DeriveSeed(uint64_t seed, std::string_view name) {
  // FNV-1a over the name, then mixed with the root seed through SplitMix64 twice, so that
  // neighbouring seeds and similar names give unrelated streams.
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  uint64_t x = seed ^ SplitMix64(h);
  SplitMix64(x);
  return SplitMix64(x);
}

RandomStream Rng::Stream(std::string_view name, uint64_t index) const {
  uint64_t x = DeriveSeed(seed_, name) ^ (index * 0xD1B54A32D192ED03ULL);
  return RandomStream(SplitMix64(x));
}

}  // namespace rlab
