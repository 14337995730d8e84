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
//
// Bounded memory: the file is the record; memory keeps only what deduplication needs. That is
// (a) every pair an order still in flight has charged (it may retry: the engine pins the pair
// with Charge(..., pin=true) and unpins it when the order ends), and (b) the `window` most
// recently applied pairs, oldest evicted first, for later orders that reuse a key (a client's
// retry, or the service re-driving an order a previous process left unfinished, whose charge
// is among the last lines of the file). A pair older than the window is forgotten: charging it
// again applies it again, and that second application is written to the file (where an offline
// check finds it) but not counted by double_charged(). Real providers bound their memory the
// same way, by time (Stripe keeps a key for at least 24 hours); a count bounds memory whatever
// the rate. Loading streams the file through the same window.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
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
  // Pairs remembered beyond those of orders in flight, by default.
  static constexpr int64_t kDefaultWindow = 100'000;

  // An in-memory ledger when `path` is empty; otherwise opens (creating it if absent) and loads
  // the file. `window` (>= 0) bounds the pairs remembered for deduplication besides the pinned
  // ones (see above). A malformed line is an InvalidArgument naming the file and the line; an
  // unreadable file is the errno's message.
  static absl::StatusOr<std::unique_ptr<PaymentLedger>> Open(const std::string& path, bool fsync,
                                                             int64_t window = kDefaultWindow) {
    if (window < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("idempotency_window must be >= 0, got %d", window));
    }
    std::unique_ptr<PaymentLedger> l(new PaymentLedger(path, fsync, window));
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
    // Streamed a block at a time: the file grows with the run's history, memory must not.
    MutexLock lock(&l->mu_);
    std::string pending;  // the start of a line whose end is in a later block
    char buf[1 << 16];
    off_t off = 0;
    int64_t line_no = 0;
    for (;;) {
      const ssize_t n = ::pread(fd, buf, sizeof buf, off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("ledger_path: cannot read", path);
      if (n == 0) break;
      off += n;
      std::string_view block(buf, static_cast<size_t>(n));
      for (;;) {
        const size_t eol = block.find('\n');
        if (eol == std::string_view::npos) {
          if (pending.size() + block.size() > 2 * kMaxIdempotencyKeyBytes + 1) {
            return Malformed(path, line_no + 1, "the line is too long");
          }
          pending.append(block);
          break;
        }
        ++line_no;
        std::string_view line = block.substr(0, eol);
        block.remove_prefix(eol + 1);
        if (!pending.empty()) {
          pending.append(line);
          line = pending;
        }
        if (absl::Status s = l->LoadLineLocked(path, line_no, line); !s.ok()) return s;
        pending.clear();
      }
    }
    if (!pending.empty()) {
      return Malformed(path, line_no + 1, "the last line has no newline (a torn write?)");
    }
    return l;
  }

  ~PaymentLedger() {
    if (fd_ >= 0) ::close(fd_);
  }
  PaymentLedger(const PaymentLedger&) = delete;
  PaymentLedger& operator=(const PaymentLedger&) = delete;

  // A charge of `key` by dependency `dep` committed at the provider. With `dedupe` (the
  // dependency sends idempotency keys) it is applied only if the pair is not remembered yet;
  // without, always. An applied charge is written to the file before this returns. Returns
  // whether it was applied. A failed write is counted (write_errors) but the charge stays
  // applied: the provider took the money even if its bookkeeping failed. With `pin` the pair
  // stays remembered until a matching Unpin, whatever the window (an order in flight pins each
  // pair once, on its first charge of it).
  bool Charge(std::string_view dep, std::string_view key, bool dedupe, bool pin = false) {
    std::string line = std::string(dep) + "\t" + std::string(key) + "\n";
    const std::string_view entry(line.data(), line.size() - 1);
    // Under the lock: check, apply and append are one step, so concurrent charges of one key
    // apply once and the file's order is the order of application.
    MutexLock lock(&mu_);
    auto it = pairs_.find(absl::string_view(entry.data(), entry.size()));
    if (dedupe && it != pairs_.end()) {
      if (pin) PinLocked(it->second);
      return false;
    }
    Entry& e = ApplyLocked(entry);
    if (pin) PinLocked(e);
    if (fd_ >= 0) {
      ssize_t n;
      do {
        n = ::write(fd_, line.data(), line.size());
      } while (n < 0 && errno == EINTR);
      if (n != static_cast<ssize_t>(line.size())) ++write_errors_;
      if (fsync_ && ::fdatasync(fd_) != 0) ++write_errors_;
    }
    EvictLocked();
    return true;
  }

  // Ends a pin taken by Charge(dep, key, ..., pin=true): the order that may charge the pair
  // again has ended, so the pair is now kept only as long as the window keeps it.
  void Unpin(std::string_view dep, std::string_view key) {
    const std::string entry = std::string(dep) + "\t" + std::string(key);
    MutexLock lock(&mu_);
    auto it = pairs_.find(entry);
    if (it == pairs_.end() || it->second.pins == 0) return;
    if (--it->second.pins == 0) --pinned_;
    EvictLocked();
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
  // (dependency, key) pairs applied more than once while remembered: double charges, loaded
  // ones included.
  int64_t double_charged() const {
    MutexLock lock(&mu_);
    return double_charged_;
  }
  int64_t write_errors() const {
    MutexLock lock(&mu_);
    return write_errors_;
  }
  // Pairs remembered now (pinned ones included): bounded by the window plus the pairs of the
  // orders in flight.
  int64_t tracked() const {
    MutexLock lock(&mu_);
    return static_cast<int64_t>(pairs_.size());
  }
  int64_t window() const { return window_; }
  const std::string& path() const { return path_; }
  bool durable() const { return !path_.empty(); }

 private:
  struct Entry {
    int32_t applied = 0;  // times applied while remembered
    int32_t pins = 0;     // orders in flight that charged the pair
  };

  PaymentLedger(std::string path, bool fsync, int64_t window)
      : path_(std::move(path)), fsync_(fsync), window_(window) {}

  static absl::Status Errno(std::string_view what, const std::string& path) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s: %s", what, path, std::strerror(errno)));
  }
  static absl::Status Malformed(const std::string& path, int64_t line, std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ledger_path: %s line %d is malformed: %s", path, line, why));
  }

  absl::Status LoadLineLocked(const std::string& path, int64_t line_no, std::string_view line)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
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
    ApplyLocked(line);
    ++loaded_;
    EvictLocked();
    return absl::OkStatus();
  }

  Entry& ApplyLocked(std::string_view entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, inserted] = pairs_.try_emplace(absl::string_view(entry.data(), entry.size()));
    // A node map: the key's address is stable until the pair is erased.
    if (inserted) age_.push_back(&it->first);
    if (++it->second.applied == 2) ++double_charged_;
    ++entries_;
    return it->second;
  }

  void PinLocked(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (e.pins++ == 0) ++pinned_;
  }

  // Forgets the oldest unpinned pairs beyond the window. A pinned pair at the front goes to the
  // back (it is young again when its order ends); at most one pass over the pairs per call, so
  // pins beyond the window cost no loop.
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t tries = age_.size();
         static_cast<int64_t>(pairs_.size()) - pinned_ > window_ && tries > 0 && !age_.empty();
         --tries) {
      const std::string* oldest = age_.front();
      age_.pop_front();
      auto it = pairs_.find(*oldest);
      if (it->second.pins > 0) {
        age_.push_back(oldest);
      } else {
        pairs_.erase(it);
      }
    }
  }

  const std::string path_;
  const bool fsync_;
  const int64_t window_;
  int fd_ = -1;  // set once in Open, before the ledger is shared
  mutable Mutex mu_;
  absl::node_hash_map<std::string, Entry> pairs_ ABSL_GUARDED_BY(mu_);
  std::deque<const std::string*> age_ ABSL_GUARDED_BY(mu_);  // pairs_' keys, oldest first
  int64_t pinned_ ABSL_GUARDED_BY(mu_) = 0;  // pairs with pins > 0
  int64_t entries_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t loaded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t double_charged_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rlab

#endif  // RLAB_LIVE_PAYMENT_LEDGER_H_
