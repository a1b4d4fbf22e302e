// SPDX-License-Identifier: GPL-2.0-or-later
// Support for the tests of the user-facing tools: mount(8) with the
// mount.aufs helper, fstab, remount, aufsctl.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include "mount_fixture.hpp"

namespace aufs::mt {

// aufsctl of this build ($AUFSCTL_BIN, else from PATH).
std::string aufsctl_binary();
// Why aufsctl tests cannot run here ("" = they can).
std::string aufsctl_unavailable();
// The mount(8) helper (this build's, staged by staged-helper.sh).
inline constexpr const char* kMountHelper = "/sbin/mount.aufs";

// Why mount(8) tests cannot run here ("" = they can): not root, or the
// helper is not at /sbin (staged-helper.sh puts it there).
std::string mount_helper_unavailable();

using Json = nlohmann::json;

// `aufsctl MNT --json`, parsed; fails the test (and returns {}) if the
// tool fails or prints something that is not JSON.
Json ctl_info(const std::string& mnt);
// `aufsctl MNT which PATH --json`, parsed (the exit status is returned in
// *exit_code when given).
Json ctl_which(const std::string& mnt, const std::string& path, int* exit_code = nullptr);
// The branch list of an info document as "index:id:path=perm" strings.
std::vector<std::string> branch_rows(const Json& info);
// path -> id of every branch.
std::vector<std::pair<std::string, long long>> branch_ids(const Json& info);

// Checks a failed command's stderr: exactly one non-empty line, starting
// with one of the prefixes.
::testing::AssertionResult one_error_line(const RunResult& r,
                                          const std::vector<std::string>& prefixes);

// Waits up to timeout_ms for pred() to hold (polled every 5 ms); returns the
// final value of pred().
bool eventually(const std::function<bool()>& pred, int timeout_ms);

}  // namespace aufs::mt
