// The field tables (rlab/core/schema.h): generic validation and the accessors.
#include "rlab/core/schema.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rlab/core/clock.h"
#include "rlab/policy/circuit_breaker.h"

namespace rlab::schema_test {
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
  static constexpr FieldSpec kFields[] = {
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
  EXPECT_EQ(f[0].get_int(&d), 3);
  f[0].set_int(&d, 7);
  EXPECT_EQ(d.count, 7);
  f[1].set_real(&d, 0.25);
  EXPECT_EQ(d.ratio, 0.25);
  EXPECT_EQ(f[2].get_int(&d), kNsPerSecond);
  f[3].set_int(&d, 0);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(f[4].get_int(&d), 1);
  f[4].set_int(&d, 0);
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

struct Inner {
  double rate = 2.0;
};

struct Optional {
  int64_t wait_ns = -1;  // None
  double share = 0.5;
  Inner inner;
};

const ConfigSchema<Optional>& OptionalSchema() {
  static constexpr FieldSpec kFields[] = {
      schema::OrNone(schema::Seconds<&Optional::wait_ns>("wait", 0, kMaxDurationS, Bound::kClosed,
                                                         Bound::kClosed, "how long"),
                     -1),
      schema::OrNone(
          schema::Real<&Optional::share>("share", 0, 1, Bound::kOpen, Bound::kOpen, "", "a share"),
          -1.0),
      schema::Real<&Optional::inner, &Inner::rate>("rate", 0, 10, Bound::kOpen, Bound::kClosed,
                                                   "1/s", "a nested member"),
  };
  static constexpr ConfigSchema<Optional> kSchema{"Optional", kFields};
  return kSchema;
}

TEST(SchemaTest, OptionalFieldsAcceptOnlyTheirSentinelOutsideTheRange) {
  Optional o;
  EXPECT_TRUE(ValidateFields(OptionalSchema(), o).ok());  // both None
  EXPECT_TRUE(OptionalSchema().fields[0].info.optional);
  EXPECT_TRUE(IsNoneInt(OptionalSchema().fields[0].info, o.wait_ns));
  o.wait_ns = -2;  // not the sentinel: out of range
  EXPECT_EQ(ValidateFields(OptionalSchema(), o).message(),
            "wait must be a finite number in [0, 1e+06], got -2e-09");
  o = Optional{};
  o.share = -1.0;  // the sentinel: None
  EXPECT_TRUE(ValidateFields(OptionalSchema(), o).ok());
  o.share = 1.0;
  EXPECT_EQ(ValidateFields(OptionalSchema(), o).message(),
            "share must be a finite number in (0, 1), got 1");
}

TEST(SchemaTest, RealOfANestedMemberReadsAndWritesIt) {
  Optional o;
  const FieldSpec& f = OptionalSchema().fields[2];
  EXPECT_EQ(f.get_real(&o), 2.0);
  f.set_real(&o, 3.0);
  EXPECT_EQ(o.inner.rate, 3.0);
  o.inner.rate = 0.0;
  EXPECT_EQ(ValidateFields(OptionalSchema(), o).message(),
            "rate must be a finite number in (0, 10], got 0");
}

TEST(SchemaTest, ValidateAtRootsTheMessageAtThePath) {
  Optional o;
  o.inner.rate = 11.0;
  EXPECT_EQ(ValidateAt("payment.x", OptionalSchema(), o).message(),
            "payment.x.rate must be a finite number in (0, 10], got 11");
  EXPECT_EQ(ValidateAt("", OptionalSchema(), o).message(),
            "rate must be a finite number in (0, 10], got 11");
  auto rules = [](const Optional& c) {
    return c.share > 0.4 ? absl::InvalidArgumentError("share too big") : absl::OkStatus();
  };
  static const ConfigSchema<Optional> kRuled{"Optional", OptionalSchema().fields, "", +rules};
  EXPECT_EQ(ValidateAt("p", kRuled, Optional{}).message(), "p.share too big");
}

// Nested rows: a config, an optional config and a list named by name, each with its own rules.
struct Leaf {
  std::string name;
  double share = 0.5;
};

absl::Status LeafRules(const Leaf& l) {
  return l.share == 0.25 ? absl::InvalidArgumentError("share must not be a quarter")
                         : absl::OkStatus();
}

const ConfigSchema<Leaf>& LeafSchema() {
  static const FieldSpec kFields[] = {
      schema::String<&Leaf::name>("name", "its name"),
      schema::Real<&Leaf::share>("share", 0, 1, Bound::kClosed, Bound::kClosed, "", "a share"),
  };
  static const ConfigSchema<Leaf> kSchema{"Leaf", kFields, "leaf", &LeafRules};
  return kSchema;
}

struct Tree {
  Leaf leaf;
  std::optional<Leaf> maybe;
  std::vector<Leaf> leaves;
};

const ConfigSchema<Tree>& TreeSchema() {
  static const FieldSpec kFields[] = {
      schema::Config<&Tree::leaf, &LeafSchema>("leaf", "one"),
      schema::Config<&Tree::maybe, &LeafSchema>("maybe", "one or None"),
      schema::List<&Tree::leaves, &LeafSchema>("leaves", /*by_name=*/true, "many"),
  };
  static const ConfigSchema<Tree> kSchema{"Tree", kFields};
  return kSchema;
}

TEST(SchemaTest, NestedRowsValidateUnderTheirDottedPaths) {
  Tree t;
  EXPECT_TRUE(ValidateAt("root", TreeSchema(), t).ok());
  EXPECT_EQ(TreeSchema().fields[0].inner().class_name, "Leaf");
  EXPECT_FALSE(TreeSchema().fields[0].info.optional);
  EXPECT_TRUE(TreeSchema().fields[1].info.optional);
  t.leaf.share = 2;
  EXPECT_EQ(ValidateAt("root", TreeSchema(), t).message(),
            "root.leaf.share must be a finite number in [0, 1], got 2");
  t = Tree{};
  t.maybe = Leaf{"m", 0.25};  // the nested config's own rules run
  EXPECT_EQ(ValidateAt("root", TreeSchema(), t).message(),
            "root.maybe.share must not be a quarter");
  t = Tree{};
  t.leaves = {Leaf{"a", 0.1}, Leaf{"b", -1}};  // by its unique name
  EXPECT_EQ(ValidateAt("", TreeSchema(), t).message(),
            "leaves[b].share must be a finite number in [0, 1], got -1");
  t.leaves = {Leaf{"b", 0.1}, Leaf{"b", -1}};  // a shared name: by index
  EXPECT_EQ(ValidateAt("", TreeSchema(), t).message(),
            "leaves[1].share must be a finite number in [0, 1], got -1");
}

TEST(SchemaTest, NestedRowsAreReachedThroughTheErasedSchema) {
  Tree t;
  const AnySchema& any = TreeSchema();
  const auto& rows = any.fields;
  EXPECT_EQ(rows[1].count(&t), 0u);  // None
  static_cast<Leaf*>(rows[1].add(&t))->name = "x";
  ASSERT_TRUE(t.maybe.has_value());
  EXPECT_EQ(t.maybe->name, "x");
  rows[2].add(&t);
  rows[2].add(&t);
  EXPECT_EQ(t.leaves.size(), 2u);
  EXPECT_EQ(rows[2].count(&t), 2u);
  rows[1].reset(&t);
  EXPECT_FALSE(t.maybe.has_value());
  const AnySchema& inner = rows[0].inner();
  EXPECT_EQ(inner.class_name, "Leaf");
  EXPECT_EQ(inner.tag, "leaf");
  EXPECT_EQ(inner.fields.size(), 2u);
}

struct MaybeRate {
  std::optional<double> rate;
};

TEST(SchemaTest, MaybeRealMapsAnEmptyOptionalToNone) {
  static const FieldSpec kFields[] = {schema::MaybeReal<&MaybeRate::rate>(
      "rate", 0, 1, Bound::kClosed, Bound::kClosed, "", "a rate or None")};
  static const ConfigSchema<MaybeRate> kSchema{"MaybeRate", kFields};
  MaybeRate m;
  EXPECT_TRUE(IsNoneReal(kFields[0].info, kFields[0].get_real(&m)));
  EXPECT_TRUE(ValidateFields(kSchema, m).ok());
  kFields[0].set_real(&m, 2.0);
  EXPECT_EQ(ValidateFields(kSchema, m).message(), "rate must be a finite number in [0, 1], got 2");
  kFields[0].set_real(&m, kFields[0].info.none_real);
  EXPECT_FALSE(m.rate.has_value());
}

// A union held in one optional member per class (a dependency's budget): the row's value is the
// config itself, and assigning a member empties the others.
struct Slotted {
  std::optional<Leaf> a;
  std::optional<Demo> b;
};

TEST(SchemaTest, OneOfSlotsFillsOneMemberPerClass) {
  static const FieldSpec kFields[] = {
      schema::OneOfSlots<schema::Slot<&Slotted::a, &LeafSchema>,
                         schema::Slot<&Slotted::b, &DemoSchema>>("pick", "one of")};
  static const ConfigSchema<Slotted> kSchema{"Slotted", kFields};
  Slotted s;
  EXPECT_EQ(kFields[0].count(&s), 0u);  // None
  const AnyUnion& u = kFields[0].members();
  EXPECT_EQ(u.member(u, 1).class_name, "Demo");
  static_cast<Demo*>(u.assign(u, 1, kFields[0].add(&s)))->count = 11;
  EXPECT_FALSE(s.a.has_value());
  ASSERT_TRUE(s.b.has_value());
  EXPECT_EQ(Which(u, &s), 1u);
  EXPECT_EQ(kFields[0].count(&s), 1u);
  EXPECT_EQ(ValidateFields(kSchema, s).message(),
            "pick.count must be an integer in [1, 10], got 11");
  u.assign(u, 0, &s);
  EXPECT_TRUE(s.a.has_value());
  EXPECT_FALSE(s.b.has_value());
  kFields[0].reset(&s);
  EXPECT_EQ(kFields[0].count(&s), 0u);
}

}  // namespace
}  // namespace rlab::schema_test
