// SPDX-License-Identifier: GPL-2.0-or-later
// Mount options: a pure parser (no I/O) and a validator that checks the
// parsed branches against the filesystem. Both report the first problem as
// one human-readable line.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "aufs_fuse/policy.hpp"

namespace aufs {

enum class Perm { RW, RO, RR };

struct BranchSpec {
  std::string path;       // as given; absolute after validate_options()
  Perm perm = Perm::RO;
  bool wh = false;        // ro+wh / rr+wh: whiteouts honoured
  bool nolwh = false;     // rw+nolwh: whiteouts are plain files
  // coo_reg/coo_all: copy up on open (regular files / also dirs); moo (rw):
  // move up on open. Only the last of them counts.
  enum class Coo { None, Reg, All, Move } coo = Coo::None;
  // icex*: ignore xattr copy-up errors per namespace.
  enum : unsigned {
    kIcexSec = 1, kIcexSys = 2, kIcexTr = 4, kIcexUsr = 8, kIcexOth = 16, kIcexAll = 31
  };
  unsigned icex = 0;
  bool perm_given = false;
  // ro/rr+ovl: overlayfs's whiteouts (character devices 0:0) and opaque
  // markers (trusted./user.overlay.opaque=y) read as AUFS ones.
  bool ovl = false;
  // rw+shared: other mounts may write the branch too, if they also say so
  // (a shared lock instead of the exclusive one; see branch_lock.hpp).
  bool shared = false;
  // Whiteouts and opaque markers on this branch are honoured.
  bool wh_able() const { return perm == Perm::RW || wh || ovl; }
  bool writable() const { return perm == Perm::RW; }
  bool operator==(const BranchSpec&) const = default;
};

std::string format_perm(const BranchSpec& b);  // "rw", "ro+wh", "rw+nolwh"

enum class Udba { None, Reval, Notify };

// readdirplus replies: auto (attributes for callers that stat what they
// list, fuse/plus_demand.hpp), full (always), off (plain readdir only).
enum class PlusMode { Auto, Full, Off };
enum class PassthroughMode { None, Rw, All };

struct MountOptions {
  std::vector<BranchSpec> branches;
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool single_thread = false;
  bool show_help = false;
  bool show_version = false;

  // AUFS options.
  // notify unless given: inotify keeps long kernel caches exact, where AUFS
  // (in the kernel, where notify costs more) defaults to reval.
  Udba udba = Udba::Notify;
  bool udba_given = false;
  bool diropq_always = false;  // diropq=a
  bool sum = false;            // statfs sums all branches
  bool warn_perm = true;
  bool verbose = false;
  bool dio = true;
  std::string xino_path;       // accepted for compatibility, see man page
  bool noxino = false;
  int rdcache = 10;
  bool read_only = false;      // -o ro
  bool check = true;           // chk: repair rw branches before mounting
  bool plink = true;           // pseudo-links keep lower hard links together
  bool dirren = false;         // rename dirs with lower parts via redirect records
  bool dirperm1 = false;       // dir permission on the top copy only
  bool shwh = false;           // show whiteouts (read-only mounts)
  bool acl = false;            // POSIX ACLs enforced by the kernel
  bool cpup_caps = false;      // carry security.capability into copy-ups
  bool ociwh = false;          // OCI rule: a whiteout does not hide its own layer
  bool volatile_mode = false;  // volatile: copy-ups are not synced before publishing
  int dirwh = 3;               // rmdir: more whiteouts than this go async
  PolicyConfig policy;         // create= / cpup=

  // FUSE tuning; negative = derived from udba.
  double entry_timeout = -1, attr_timeout = -1, negative_timeout = -1;
  unsigned max_threads = 0;    // 0 = derived from the CPU count
  bool clone_fd = false;
  // FUSE passthrough: none; rw: files that no copy-up can move (on a
  // writable branch, or no branch to copy to); all: lower files too.
  PassthroughMode passthrough = PassthroughMode::Rw;
  PlusMode readdirplus = PlusMode::Auto;
  bool io_uring = false;          // FUSE over io_uring (libfuse >= 3.18)
  unsigned io_uring_q_depth = 0;  // 0: libfuse's default

  std::string source;          // mount(8)'s first argument ("none")
  std::string ovl_lower, ovl_upper, ovl_work;  // overlay-style options
  // Passed to libfuse verbatim (allow_other, fsname=..., nosuid, ...).
  std::vector<std::string> fuse_opts;
  // Non-fatal remarks (ignored obsolete options, dropped attributes).
  std::vector<std::string> notices;
  bool operator==(const MountOptions&) const = default;  // remount: "unchanged"
};

struct ParseResult {
  MountOptions opts;
  std::string error;  // empty on success
  bool ok() const { return error.empty(); }
};

// Parses a command line (argv[0] excluded).
ParseResult parse_command_line(const std::vector<std::string>& args);
// Applies one comma-separated -o string to `opts`; returns an error line.
std::string apply_option_string(MountOptions& opts, std::string_view s);
// Parses "a=rw:b=ro+wh:c" into branch specs (appended); returns an error line.
std::string parse_branches(std::string_view list, bool read_only_mount,
                           std::vector<BranchSpec>& out,
                           std::vector<std::string>& notices);

// A runtime branch change (remount): add:N:/ins:N:, append:, prepend:,
// del:, mod:.
struct BranchOp {
  enum class Kind { Add, Del, Mod, SetRo, SetRw } kind = Kind::Add;
  long index = -1;  // Add: position; -1 appends
  BranchSpec spec;  // path (+ perm for Add/Mod)
};
// Parses "append:/x=ro+wh,del:/y" (remount syntax). Options that only the
// kernel or mount(8) act on (remount, rw, ro, defaults, ...) are skipped.
std::string parse_branch_ops(std::string_view s, bool read_only_mount,
                             std::vector<BranchOp>& out);
// Inverse of parse_branch_ops.
std::string format_branch_ops(const std::vector<BranchOp>& ops);
// Makes relative branch paths absolute against the current directory (the
// daemon runs elsewhere); run by the tools before sending changes.
void absolutize_ops(std::vector<BranchOp>& ops);
// A remount request as a tool sends it: branch operations checked and their
// paths made absolute, every other item passed on for the daemon to judge.
// Sets `error` (one line) when a branch operation is malformed.
std::string absolutize_request(std::string_view s, std::string& error);
// Splits a -o string at commas that are not inside double quotes; quotes
// are removed.
std::vector<std::string> split_options(std::string_view s);
// True for options that only mount(8) and its helpers act on.
bool is_mount_helper_option(std::string_view opt);

// Resolves branch paths and the mount point, then checks everything that
// must hold before mounting. Returns an error line or "".
std::string validate_options(MountOptions& opts);

std::string usage_text(std::string_view prog);

// A directory considered as a branch, at mount time or in a branch change.
struct BranchDir {
  std::string path;  // real path
  dev_t dev = 0;
  ino_t ino = 0;
};
struct BranchDirCheck {
  std::string error;       // why it cannot be a branch; "" if it can
  int errnum = 0;          // errno for the error
  BranchDir dir;           // set when error is empty
  long duplicate_of = -1;  // index in `others` of the same directory
};
// Checks `given` as a branch beside `others` of a mount on `mountpoint`
// (both real paths): it exists, is a directory, is none of the others,
// neither contains nor lies in another branch or the mount point. It may be
// the mount point itself only with `may_be_mountpoint` (at mount time, when
// the daemon opens it before mounting over it). A duplicate is reported in
// duplicate_of, not as an error.
BranchDirCheck check_branch_dir(const std::string& given, const std::vector<BranchDir>& others,
                                const std::string& mountpoint, bool may_be_mountpoint = false);
// Why the directory `path` cannot be a writable branch ("" if it can).
std::string check_writable_dir(const std::string& path);

}  // namespace aufs
