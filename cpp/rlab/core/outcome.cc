#include "rlab/core/outcome.h"

#include <array>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rlab {
namespace {

constexpr std::array<std::string_view, kNumOutcomeKinds> kKindNames = {
    "success",           "timeout",      "connection_reset",
    "http_status",       "error",        "cancelled",
    "deadline_exceeded", "breaker_open", "breaker_half_open_full",
    "bulkhead_full",     "throttled",
};

constexpr std::array<std::string_view, kNumOutcomeClasses> kClassNames = {
    "success", "dependency_fault", "caller_fault", "caller_gave_up", "local_rejection"};

}  // namespace

std::string_view OutcomeClassName(OutcomeClass c) { return kClassNames[static_cast<size_t>(c)]; }

std::string_view OutcomeKindName(OutcomeKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

absl::StatusOr<OutcomeKind> ParseOutcomeKind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (kKindNames[i] == name) return static_cast<OutcomeKind>(i);
  }
  return absl::InvalidArgumentError(absl::StrFormat("unknown outcome kind '%s'", name));
}

std::string Outcome::Label() const {
  if (kind == OutcomeKind::kHttpStatus) return absl::StrCat("http_", http_status);
  return std::string(OutcomeKindName(kind));
}

OutcomeSet OutcomeSet::DefaultRetryable() {
  OutcomeSet s;
  s.AddKind(OutcomeKind::kTimeout).AddKind(OutcomeKind::kConnectionReset);
  for (int status : {429, 500, 502, 503, 504}) s.AddStatus(status);
  return s;
}

absl::StatusOr<OutcomeSet> OutcomeSet::Parse(std::string_view field,
                                             const std::vector<std::string>& names) {
  OutcomeSet s;
  for (const std::string& name : names) {
    if (name == "4xx" || name == "5xx") {
      const int base = name[0] == '4' ? 400 : 500;
      for (int st = base; st < base + 100; ++st) s.AddStatus(st);
      continue;
    }
    int status = 0;
    const auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), status);
    if (ec == std::errc() && ptr == name.data() + name.size()) {
      if (status < 300 || status > 599) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: HTTP status must be in [300, 599], got %d", field, status));
      }
      s.AddStatus(status);
      continue;
    }
    absl::StatusOr<OutcomeKind> kind = ParseOutcomeKind(name);
    if (!kind.ok() || *kind == OutcomeKind::kSuccess || *kind == OutcomeKind::kHttpStatus) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: unknown outcome '%s'; allowed: timeout, connection_reset, error, cancelled, "
          "deadline_exceeded, breaker_open, breaker_half_open_full, bulkhead_full, throttled, "
          "an HTTP status in [300, 599], 4xx, 5xx",
          field, name));
    }
    s.AddKind(*kind);
  }
  return s;
}

OutcomeSet& OutcomeSet::AddKind(OutcomeKind kind) {
  kinds_.set(static_cast<size_t>(kind));
  return *this;
}

OutcomeSet& OutcomeSet::AddStatus(int status) {
  if (status >= 100 && status < 600) statuses_.set(static_cast<size_t>(status));
  return *this;
}

bool OutcomeSet::Contains(const Outcome& outcome) const {
  if (outcome.kind == OutcomeKind::kHttpStatus) {
    return outcome.http_status >= 0 && outcome.http_status < 600 &&
           statuses_.test(static_cast<size_t>(outcome.http_status));
  }
  return kinds_.test(static_cast<size_t>(outcome.kind));
}

std::vector<std::string> OutcomeSet::Names() const {
  std::vector<std::string> out;
  for (int i = 0; i < kNumOutcomeKinds; ++i) {
    if (kinds_.test(i)) out.emplace_back(kKindNames[i]);
  }
  for (int st = 0; st < 600; ++st) {
    if (statuses_.test(st)) out.push_back(absl::StrCat(st));
  }
  return out;
}

}  // namespace rlab
