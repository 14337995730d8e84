#ifndef RLAB_LIVE_PAYMENT_LEDGER_H_
#define RLAB_LIVE_PAYMENT_LEDGER_H_

// The simulated payment provider's own store of applied charges. In memory, or durable: an
// append-only text file, one line per APPLIED charge, "<dependency>\t<idempotency key>\n".
// Because only applied charges are written, a (dependency, key) pair that appears twice in the
// file is a double charge, whoever wrote it (this process or a previous one killed mid-run).
//
// Durability: each line is one write(2) on an O_APPEND descriptor, issued before the charging
// attempt's response is handed back to the order's flow. The bytes are then in the page cache,
// which outlives the process (kill -9 loses nothing); `fsync` adds an fdatasync per line for
// power loss. Header-only because it is a small piece of the live engine's library target.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "rlab/core/mutex.h"

namespace rlab {

// The longest idempotency key the ledger accepts.
inline constexpr size_t kMaxIdempotencyKeyBytes = 200;

// Whether `key` can be an idempotency key: 1 to kMaxIdempotencyKeyBytes printable ASCII
// characters without spaces (so that a ledger line can never be split or forged by a key).
inline absl::Status ValidateIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("idempotency_key must have 1 to %d characters, got %d",
                        kMaxIdempotencyKeyBytes, key.size()));
  }
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "idempotency_key must be printable ASCII without spaces (characters 0x21..0x7e)");
    }
  }
  return absl::OkStatus();
}

class PaymentLedger {
 public:
  // An in-memory ledger when `path` is empty; otherwise opens (creating it if absent) and loads
  // the file. A malformed line is an InvalidArgument naming the file and the line; an
  // unreadable file is the errno's message.
  static absl::StatusOr<std::unique_ptr<PaymentLedger>> Open(const std::string& path, bool fsync) {
    std::unique_ptr<PaymentLedger> l(new PaymentLedger(path, fsync));
    if (path.empty()) return l;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("ledger_path: cannot open", path);
    l->fd_ = fd;
    struct stat st;
    if (::fstat(fd, &st) != 0) return Errno("ledger_path: cannot stat", path);
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ledger_path: %s is not a regular file", path));
    }
    std::string text;
    char buf[1 << 16];
    off_t off = 0;
    for (;;) {
      const ssize_t n = ::pread(fd, buf, sizeof buf, off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("ledger_path: cannot read", path);
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      off += n;
    }
    MutexLock lock(&l->mu_);
    size_t pos = 0;
    int64_t line_no = 0;
    while (pos < text.size()) {
      ++line_no;
      const size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) {
        return Malformed(path, line_no, "the last line has no newline (a torn write?)");
      }
      const std::string_view line(text.data() + pos, eol - pos);
      pos = eol + 1;
      const size_t tab = line.find('\t');
      if (tab == std::string_view::npos || line.find('\t', tab + 1) != std::string_view::npos) {
        return Malformed(path, line_no, "expected <dependency><TAB><idempotency key>");
      }
      const std::string_view dep = line.substr(0, tab);
      const std::string_view key = line.substr(tab + 1);
      if (dep.empty() || !ValidateIdempotencyKey(dep).ok()) {
        return Malformed(path, line_no, "the dependency name is empty or not printable ASCII");
      }
      if (!ValidateIdempotencyKey(key).ok()) {
        return Malformed(path, line_no, "the idempotency key is empty, too long or not printable");
      }
      l->ApplyLocked(std::string(dep) + "\t" + std::string(key));
      ++l->loaded_;
    }
    return l;
  }

  ~PaymentLedger() {
    if (fd_ >= 0) ::close(fd_);
  }
  PaymentLedger(const PaymentLedger&) = delete;
  PaymentLedger& operator=(const PaymentLedger&) = delete;

  // A charge of `key` by dependency `dep` committed at the provider. With `dedupe` (the
  // dependency sends idempotency keys) it is applied only if the pair is not in the ledger yet;
  // without, always. An applied charge is written to the file before this returns. Returns
  // whether it was applied. A failed write is counted (write_errors) but the charge stays
  // applied: the provider took the money even if its bookkeeping failed.
  bool Charge(std::string_view dep, std::string_view key, bool dedupe) {
    std::string line = std::string(dep) + "\t" + std::string(key) + "\n";
    const std::string_view entry(line.data(), line.size() - 1);
    // Under the lock: check, apply and append are one step, so concurrent charges of one key
    // apply once and the file's order is the order of application.
    MutexLock lock(&mu_);
    if (dedupe && counts_.contains(absl::string_view(entry.data(), entry.size()))) return false;
    ApplyLocked(std::string(entry));
    if (fd_ >= 0) {
      ssize_t n;
      do {
        n = ::write(fd_, line.data(), line.size());
      } while (n < 0 && errno == EINTR);
      if (n != static_cast<ssize_t>(line.size())) ++write_errors_;
      if (fsync_ && ::fdatasync(fd_) != 0) ++write_errors_;
    }
    return true;
  }

  // Applied charges, loaded ones included.
  int64_t entries() const {
    MutexLock lock(&mu_);
    return entries_;
  }
  // Lines loaded from the file at Open.
  int64_t loaded() const {
    MutexLock lock(&mu_);
    return loaded_;
  }
  // (dependency, key) pairs applied more than once: double charges, loaded ones included.
  int64_t double_charged() const {
    MutexLock lock(&mu_);
    return double_charged_;
  }
  int64_t write_errors() const {
    MutexLock lock(&mu_);
    return write_errors_;
  }
  const std::string& path() const { return path_; }
  bool durable() const { return !path_.empty(); }

 private:
  PaymentLedger(std::string path, bool fsync) : path_(std::move(path)), fsync_(fsync) {}

  static absl::Status Errno(std::string_view what, const std::string& path) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s: %s", what, path, std::strerror(errno)));
  }
  static absl::Status Malformed(const std::string& path, int64_t line, std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ledger_path: %s line %d is malformed: %s", path, line, why));
  }

  void ApplyLocked(std::string entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (++counts_[std::move(entry)] == 2) ++double_charged_;
    ++entries_;
  }

  const std::string path_;
  const bool fsync_;
  int fd_ = -1;  // set once in Open, before the ledger is shared
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, int32_t> counts_ ABSL_GUARDED_BY(mu_);
  int64_t entries_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t loaded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t double_charged_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_LIVE_PAYMENT_LEDGER_H_
