// SPDX-License-Identifier: GPL-2.0-or-later
#include "tools_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace aufs::mt {

std::string aufsctl_binary() { return tool_binary("AUFSCTL_BIN", "aufsctl"); }

std::string aufsctl_unavailable() {
  if (run({aufsctl_binary(), "--version"}).ok()) return "";
  return "aufsctl not runnable: " + aufsctl_binary() + " (set AUFSCTL_BIN)";
}

std::string mount_helper_unavailable() {
  if (::geteuid() != 0) return "mount(8) tests need root";
  if (::access(kMountHelper, X_OK) != 0)
    return std::string(kMountHelper) +
           " is not there (meson test runs this suite through staged-helper.sh, which shows "
           "this build's staged install there)";
  if (::access("/sbin/mount.fuse.aufs", X_OK) != 0)
    return "/sbin/mount.fuse.aufs is not installed (needed for remount of type fuse.aufs)";
  return "";
}

namespace {
// The daemon's JSON as aufsctl printed it: an object, or {} and a failure.
Json object_of(const RunResult& r, const std::string& what) {
  Json v = Json::parse(r.out, nullptr, false);
  if (v.is_object()) return v;
  ADD_FAILURE() << what << " did not print a JSON object: " << r;
  return Json::object();
}
}  // namespace

Json ctl_info(const std::string& mnt) {
  auto r = run({aufsctl_binary(), mnt, "--json"});
  if (!r.ok()) {
    ADD_FAILURE() << "aufsctl " << mnt << " --json: " << r;
    return Json::object();
  }
  return object_of(r, "aufsctl --json");
}

Json ctl_which(const std::string& mnt, const std::string& path, int* exit_code) {
  auto r = run({aufsctl_binary(), mnt, "which", path, "--json"});
  if (exit_code) *exit_code = r.exit_code;
  return object_of(r, "aufsctl which " + path + " --json");
}

std::vector<std::string> branch_rows(const Json& info) {
  std::vector<std::string> out;
  for (auto& b : info.value("branches", Json::array()))
    out.push_back(std::to_string(b["index"].get<long long>()) + ":" +
                  std::to_string(b["id"].get<long long>()) + ":" + b["path"].get<std::string>() +
                  "=" + b["perm"].get<std::string>());
  return out;
}

std::vector<std::pair<std::string, long long>> branch_ids(const Json& info) {
  std::vector<std::pair<std::string, long long>> out;
  for (auto& b : info.value("branches", Json::array()))
    out.emplace_back(b["path"].get<std::string>(), b["id"].get<long long>());
  return out;
}

::testing::AssertionResult one_error_line(const RunResult& r,
                                          const std::vector<std::string>& prefixes) {
  if (r.err.empty()) return ::testing::AssertionFailure() << "nothing on stderr\n" << r;
  if (!r.err.ends_with("\n") || std::count(r.err.begin(), r.err.end(), '\n') != 1)
    return ::testing::AssertionFailure() << "stderr is not exactly one line\n" << r;
  for (auto& p : prefixes)
    if (r.err.starts_with(p)) return ::testing::AssertionSuccess();
  std::string want;
  for (auto& p : prefixes) want += " '" + p + "'";
  return ::testing::AssertionFailure() << "stderr does not start with" << want << "\n" << r;
}

bool eventually(const std::function<bool()>& pred, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace aufs::mt
