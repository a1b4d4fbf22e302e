// SPDX-License-Identifier: GPL-2.0-or-later
// rename(2) of the union, with RENAME_NOREPLACE and RENAME_EXCHANGE; dirren
// moves a directory with lower parts through a redirect record.
#pragma once
#include <string_view>

#include "core/mount.hpp"

namespace aufs::core {

Status rename(Mount& m, NodeId parent, std::string_view name, NodeId newparent,
              std::string_view newname, unsigned flags);

}  // namespace aufs::core
