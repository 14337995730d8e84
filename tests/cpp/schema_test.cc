// The field tables (rlab/core/schema.h): generic validation and the accessors.
#include "rlab/core/schema.h"

#include <gtest/gtest.h>

#include <string_view>

#include "rlab/core/clock.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab {
namespace {

enum class Mode : uint8_t { kA = 0, kB = 1 };

struct Demo {
  int count = 3;
  double ratio = 0.5;
  int64_t wait_ns = kNsPerSecond;
  bool on = true;
  Mode mode = Mode::kB;
};

constexpr std::string_view kModes[] = {"a", "b"};

const ConfigSchema<Demo>& DemoSchema() {
  static constexpr FieldSpec<Demo> kFields[] = {
      schema::Int<&Demo::count>("count", 1, 10, "calls", "how many"),
      schema::Real<&Demo::ratio>("ratio", 0, 1, Bound::kOpen, Bound::kClosed, "", "a share"),
      schema::Seconds<&Demo::wait_ns>("wait", 0, kMaxDurationS, Bound::kOpen, Bound::kClosed,
                                      "how long"),
      schema::Flag<&Demo::on>("on", "whether"),
      schema::Choice<&Demo::mode>("mode", kModes, "which"),
  };
  static constexpr ConfigSchema<Demo> kSchema{"Demo", kFields};
  return kSchema;
}

TEST(SchemaTest, AccessorsReadAndWriteTheMembers) {
  Demo d;
  const auto& f = DemoSchema().fields;
  EXPECT_EQ(f[0].get_int(d), 3);
  f[0].set_int(d, 7);
  EXPECT_EQ(d.count, 7);
  f[1].set_real(d, 0.25);
  EXPECT_EQ(d.ratio, 0.25);
  EXPECT_EQ(f[2].get_int(d), kNsPerSecond);
  f[3].set_int(d, 0);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(f[4].get_int(d), 1);
  f[4].set_int(d, 0);
  EXPECT_EQ(d.mode, Mode::kA);
}

TEST(SchemaTest, DefaultsValidate) { EXPECT_TRUE(ValidateFields(DemoSchema(), Demo{}).ok()); }

TEST(SchemaTest, MessagesUseTheCoreWording) {
  Demo d;
  d.count = 11;
  EXPECT_EQ(ValidateFields(DemoSchema(), d).message(),
            "count must be an integer in [1, 10], got 11");
  d = Demo{};
  d.ratio = 0;
  EXPECT_EQ(ValidateFields(DemoSchema(), d).message(),
            "ratio must be a finite number in (0, 1], got 0");
  d = Demo{};
  d.wait_ns = -kNsPerSecond;
  EXPECT_EQ(ValidateFields(DemoSchema(), d).message(),
            "wait must be a finite number in (0, 1e+06], got -1");
  d = Demo{};
  d.mode = static_cast<Mode>(5);
  EXPECT_EQ(ValidateFields(DemoSchema(), d).message(), "mode must be one of 'a', 'b', got 5");
}

TEST(SchemaTest, SecondsAreComparedInNanoseconds) {
  Demo d;
  d.wait_ns = static_cast<int64_t>(kMaxDurationS) * kNsPerSecond;  // the maximum itself passes
  EXPECT_TRUE(ValidateFields(DemoSchema(), d).ok());
  d.wait_ns += 1;
  EXPECT_FALSE(ValidateFields(DemoSchema(), d).ok());
  d.wait_ns = 1;  // one nanosecond is above an open zero
  EXPECT_TRUE(ValidateFields(DemoSchema(), d).ok());
}

TEST(SchemaTest, BreakerTableDrivesItsValidator) {
  BreakerConfig c;
  EXPECT_TRUE(ValidateBreakerConfig(c).ok());
  c.open_for_ns = -kNsPerSecond;
  EXPECT_EQ(ValidateBreakerConfig(c).message(),
            "open_for must be a finite number in (0, 1e+06], got -1");
  c = BreakerConfig{};
  c.consecutive_failures = 0;  // a rule between fields, not a range
  EXPECT_TRUE(ValidateFields(BreakerSchema(), c).ok());
  EXPECT_FALSE(ValidateBreakerConfig(c).ok());
  EXPECT_EQ(BreakerSchema().class_name, "Breaker");
}

}  // namespace
}  // namespace rlab
