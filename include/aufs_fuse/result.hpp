// SPDX-License-Identifier: GPL-2.0-or-later
// Result<T>: a value or a positive errno. The only error currency below the
// FUSE adapter; no exception crosses into libfuse.
#pragma once
#include <cerrno>
#include <optional>
#include <utility>

namespace aufs {

struct Errno {
  int code;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}  // NOLINT: implicit by design
  Result(Errno e) : err_(e.code ? e.code : EIO) {}
  bool ok() const { return v_.has_value(); }
  explicit operator bool() const { return ok(); }
  int err() const { return err_; }
  T& value() & { return *v_; }
  const T& value() const& { return *v_; }
  T&& value() && { return std::move(*v_); }
  T* operator->() { return &*v_; }
  const T* operator->() const { return &*v_; }
  T& operator*() { return *v_; }

 private:
  std::optional<T> v_;
  int err_ = 0;
};

// Status: 0 on success, positive errno on failure.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errno e) : err_(e.code) {}  // NOLINT
  static Status Ok() { return {}; }
  bool ok() const { return err_ == 0; }
  explicit operator bool() const { return ok(); }
  int err() const { return err_; }

 private:
  int err_ = 0;
};

// Errno from the current errno value (never 0).
inline Errno last_errno() { return Errno{errno ? errno : EIO}; }

}  // namespace aufs

#define AUFS_TRY(expr)                            \
  do {                                            \
    auto _st = (expr);                            \
    if (!_st.ok()) return ::aufs::Errno{_st.err()}; \
  } while (0)

// Declares `lhs` from a Result, or returns its errno from the enclosing
// function: AUFS_ASSIGN_OR_RETURN(auto w, where(m, bs, n)); then w.rel.
#define AUFS_CONCAT_INNER(a, b) a##b
#define AUFS_CONCAT(a, b) AUFS_CONCAT_INNER(a, b)
#define AUFS_ASSIGN_OR_RETURN(lhs, expr) \
  AUFS_ASSIGN_OR_RETURN_IMPL(AUFS_CONCAT(aufs_result_, __LINE__), lhs, expr)
#define AUFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return ::aufs::Errno{tmp.err()};  \
  lhs = std::move(tmp.value())
