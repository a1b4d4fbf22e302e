#include "tools_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace aufs::mt {

std::string aufsctl_binary() { return tool_binary("AUFSCTL_BIN", "aufsctl"); }

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

json::Value ctl_info(const std::string& mnt) {
  auto r = run({aufsctl_binary(), mnt, "--json"});
  if (!r.ok()) {
    ADD_FAILURE() << "aufsctl " << mnt << " --json: " << r;
    return {};
  }
  auto v = json::parse(r.out);
  if (!v || !v->is_obj()) {
    ADD_FAILURE() << "aufsctl --json printed something that is not a JSON object:\n" << r.out;
    return {};
  }
  return *v;
}

json::Value ctl_which(const std::string& mnt, const std::string& path, int* exit_code) {
  auto r = run({aufsctl_binary(), mnt, "which", path, "--json"});
  if (exit_code) *exit_code = r.exit_code;
  auto v = json::parse(r.out);
  if (!v || !v->is_obj()) {
    ADD_FAILURE() << "aufsctl which " << path << " --json did not print a JSON object: " << r;
    return {};
  }
  return *v;
}

std::vector<std::string> branch_rows(const json::Value& info) {
  std::vector<std::string> out;
  for (auto& b : info["branches"].arr)
    out.push_back(std::to_string(b["index"].i()) + ":" + std::to_string(b["id"].i()) + ":" +
                  b["path"].str + "=" + b["perm"].str);
  return out;
}

std::vector<std::pair<std::string, long long>> branch_ids(const json::Value& info) {
  std::vector<std::pair<std::string, long long>> out;
  for (auto& b : info["branches"].arr) out.emplace_back(b["path"].str, b["id"].i());
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
