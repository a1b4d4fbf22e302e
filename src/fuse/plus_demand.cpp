// SPDX-License-Identifier: GPL-2.0-or-later
#include "fuse/plus_demand.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace aufs {

PlusDemand::Caller* PlusDemand::find(pid_t tid) {
  for (auto& c : callers_)
    if (c.tid == tid) return &c;
  return nullptr;
}

PlusDemand::Caller& PlusDemand::slot(pid_t tid) {
  Caller* old = &callers_[0];
  for (auto& c : callers_) {
    if (c.tid == 0) {
      old = &c;
      break;
    }
    if (c.used < old->used) old = &c;
  }
  if (old->tid != 0 && !old->attrs) probing_.fetch_sub(1, std::memory_order_relaxed);
  *old = Caller{};
  old->tid = tid;
  probing_.fetch_add(1, std::memory_order_relaxed);
  return *old;
}

bool PlusDemand::wants_attrs(pid_t tid) {
  bool attrs = true;
  if (mode_ == PlusMode::Auto && tid != 0) {
    std::lock_guard<std::mutex> g(mu_);
    Caller* c = find(tid);
    if (!c) c = &slot(tid);
    c->used = ++tick_;
    attrs = c->attrs;
  }
  (attrs ? attr_replies_ : names_replies_).fetch_add(1, std::memory_order_relaxed);
  return attrs;
}

void PlusDemand::sent_names(pid_t tid, size_t nondirs) {
  std::lock_guard<std::mutex> g(mu_);
  if (Caller* c = find(tid))
    c->sent = static_cast<uint32_t>(std::min<size_t>(UINT32_MAX, c->sent + nondirs));
}

void PlusDemand::note_lookup(pid_t tid) {
  std::lock_guard<std::mutex> g(mu_);
  Caller* c = find(tid);
  if (!c || c->attrs) return;
  c->used = ++tick_;
  c->looked++;
  if (c->looked >= std::min(kSwitchAfter, std::max<uint32_t>(1, c->sent))) {
    c->attrs = true;  // for good: attributes are never taken back
    probing_.fetch_sub(1, std::memory_order_relaxed);
    switched_.fetch_add(1, std::memory_order_relaxed);
  }
}

std::string PlusDemand::json() const {
  nlohmann::ordered_json j;
  j["mode"] = mode_ == PlusMode::Auto ? "auto" : mode_ == PlusMode::Full ? "full" : "off";
  j["replies_with_attributes"] = attr_replies_.load();
  j["replies_names_only"] = names_replies_.load();
  j["callers_switched_to_attributes"] = switched_.load();
  j["callers_sent_names_only"] = probing_.load();
  return j.dump();
}

}  // namespace aufs
