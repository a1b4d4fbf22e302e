// SPDX-License-Identifier: GPL-2.0-or-later
// The FUSE session of a mount (see session.hpp).
#include "fuse/session.hpp"

#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <syslog.h>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <cstdarg>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "fuse/adapter.hpp"
#include "fuse/invalidator.hpp"

namespace aufs {
namespace {

// libfuse's errors while the mount is being set up are held, to end our one
// line ("cannot mount on X: REASON") instead of printing lines of their own.
std::mutex setup_mu;
bool setting_up = true;   // setup_mu
std::string setup_error;  // setup_mu: libfuse's first error

void libfuse_log(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  std::string_view msg = buf;
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  while (msg.starts_with("fuse: ")) msg.remove_prefix(6);  // libfuse's own prefix
  // A refused backing file is an expected fallback (src/fuse/passthrough.cpp
  // warns once and counts them), not an error per open.
  if (msg.starts_with("passthrough_open:")) level = FUSE_LOG_DEBUG;
  if (level <= FUSE_LOG_ERR) {
    std::lock_guard<std::mutex> g(setup_mu);
    if (setting_up) {
      if (setup_error.empty()) setup_error = msg;
      return;
    }
  }
  switch (level) {
    case FUSE_LOG_EMERG: case FUSE_LOG_ALERT: case FUSE_LOG_CRIT: case FUSE_LOG_ERR:
      spdlog::error("fuse: {}", msg); break;
    case FUSE_LOG_WARNING: spdlog::warn("fuse: {}", msg); break;
    case FUSE_LOG_NOTICE: case FUSE_LOG_INFO: spdlog::info("fuse: {}", msg); break;
    default: spdlog::debug("fuse: {}", msg); break;
  }
}

// Set-up is over: libfuse's errors are logged from now on.
std::string end_setup() {
  std::lock_guard<std::mutex> g(setup_mu);
  setting_up = false;
  return std::move(setup_error);
}

// Nothing is mounted: the reason is one line.
int fail(const std::string& msg) {
  std::string why = end_setup();
  std::fprintf(stderr, "aufs-fuse: %s%s\n", msg.c_str(), why.empty() ? "" : (": " + why).c_str());
  return 1;
}

// The loop stopped (a signal) while a notification waits in the kernel for
// a directory lock that a request not yet answered holds: only this daemon
// can answer it, so serve requests until the notification is through.
void serve_until_sent(fuse_session* se, Invalidator& inv) {
  spdlog::info("stopping: serving requests until a cache notification is through");
  fuse_buf buf{};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (inv.in_kernel() && std::chrono::steady_clock::now() < until) {
    pollfd p{fuse_session_fd(se), POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) break;
    fuse_session_process_buf(se, &buf);
  }
  std::free(buf.mem);
  if (inv.in_kernel())
    spdlog::error("a cache notification still waits in the kernel; `umount -f` on the mount point "
                  "releases it");
}

// A FUSE file system still attached at `path` (absolute, resolved), read
// from /proc/self/mountinfo (mount point: fifth field, with the kernel's
// octal escapes; type: first field after " - ").
bool fuse_attached_at(const std::string& path) {
  std::FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (!f) return true;  // cannot tell: as if it were
  char* line = nullptr;
  size_t cap = 0;
  bool found = false;
  while (!found && ::getline(&line, &cap, f) > 0) {
    std::string_view l(line);
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string_view::npos; ++field) pos = l.find(' ', pos + 1);
    if (pos == std::string_view::npos) continue;
    size_t end = l.find(' ', pos + 1);
    if (end == std::string_view::npos) continue;
    std::string mnt;
    for (size_t i = pos + 1; i < end; ++i) {
      if (l[i] == '\\' && i + 3 < end) {
        mnt += static_cast<char>((l[i + 1] - '0') * 64 + (l[i + 2] - '0') * 8 + (l[i + 3] - '0'));
        i += 3;
      } else {
        mnt += l[i];
      }
    }
    size_t sep = l.find(" - ", end);
    if (mnt != path || sep == std::string_view::npos) continue;
    std::string_view type = l.substr(sep + 3);
    type = type.substr(0, type.find(' '));
    found = type == "fuse" || type.starts_with("fuse.");
  }
  std::free(line);
  std::fclose(f);
  return found;
}

}  // namespace

void route_libfuse_log() { fuse_set_log_func(libfuse_log); }

int serve(Union& fs, const MountOptions& opts) {
  FuseContext fctx;
  fctx.fs = &fs;
  // The control file shows fctx's request counts while fctx lives.
  fs.set_request_stats({[&fctx] { return fctx.stats.json(); }, [&fctx] { fctx.stats.reset(); }});
  struct StatsGuard {
    Union& fs;
    ~StatsGuard() { fs.set_request_stats({}); }
  } stats_guard{fs};
  // udba=none trusts the caches; notify keeps long timeouts safe through
  // inotify; reval re-checks the branches at least every second.
  double def_to = opts.udba == Udba::None ? 86400.0
                  : opts.udba == Udba::Notify ? 3600.0 : 1.0;
  fctx.cfg.entry_timeout = opts.entry_timeout >= 0 ? opts.entry_timeout : def_to;
  fctx.cfg.attr_timeout = opts.attr_timeout >= 0 ? opts.attr_timeout : def_to;
  fctx.cfg.negative_timeout = opts.negative_timeout >= 0 ? opts.negative_timeout : def_to;
  fctx.cfg.debug = opts.debug;
  // Only with long-lived entries: under reval, readdirplus replies are what
  // renew the 1 s entries of a listed directory in bulk; a listing served by
  // the kernel would leave a stat-ing scan one LOOKUP per name.
  fctx.cfg.cache_readdir = opts.rdcache > 0 && opts.udba != Udba::Reval;
  fctx.features.configure(opts);
  fctx.plus.configure(opts.readdirplus);
  // aufsctl's "fuse" part: the features in use and the passthrough counts.
  struct InfoGuard {
    Union& fs;
    ~InfoGuard() { fs.set_frontend_info(nullptr); }  // fctx goes with this frame
  } info_guard{fs};
  fs.set_frontend_info([&fctx] {
    auto j = nlohmann::ordered_json::parse(fctx.features.json());
    j["passthrough"]["counters"] = nlohmann::ordered_json::parse(fctx.passthrough.counters_json());
    j["readdirplus"] = nlohmann::ordered_json::parse(fctx.plus.json());
    return j.dump();
  });

  std::vector<std::string> fargs = {"aufs-fuse"};
  std::string fsname = opts.source.empty() ? "aufs" : opts.source;
  for (char& c : fsname)
    if (c == ',') c = '_';  // would split the option string
  std::string o = "default_permissions,fsname=" + fsname + ",subtype=aufs";
  for (auto& f : opts.fuse_opts) {
    if (f.starts_with("fsname=") || f.starts_with("subtype=")) {
      std::string key = f.substr(0, f.find('=') + 1);
      auto pos = o.find(key);
      auto end = o.find(',', pos);
      o.erase(pos, end == std::string::npos ? std::string::npos : end - pos + 1);
      if (!o.empty() && o.back() == ',') o.pop_back();
    }
    if (f == "default_permissions") continue;
    o += "," + f;
  }
  if (opts.read_only) o += ",ro";
  for (auto& so : fctx.features.session_options()) o += "," + so;
  fargs.push_back("-o");
  fargs.push_back(o);
  if (opts.debug) fargs.push_back("-d");
  std::vector<char*> cargs;
  for (auto& a : fargs) cargs.push_back(a.data());
  fuse_args fa = FUSE_ARGS_INIT(static_cast<int>(cargs.size()), cargs.data());
  // libfuse may add arguments of its own (then owned by fa): freed on every
  // way out.
  struct ArgsGuard {
    fuse_args* a;
    ~ArgsGuard() { fuse_opt_free_args(a); }
  } args_guard{&fa};

  fuse_session* se = fuse_session_new(&fa, &fuse_operations(), sizeof(fuse_lowlevel_ops), &fctx);
  if (!se) return fail("cannot create the FUSE session");
  fctx.se = se;
  int rc = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return fail("cannot install signal handlers");
  }
  // Resolved while it is still a plain directory (see the loop's end).
  std::string resolved_mnt;
  if (char* r = ::realpath(opts.mountpoint.c_str(), nullptr)) {
    resolved_mnt = r;
    std::free(r);
  }
  if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return fail("cannot mount on '" + opts.mountpoint + "'");
  }
  if (std::string held = end_setup(); !held.empty()) spdlog::error("fuse: {}", held);
  // Only now are the rw branches written: a failed mount leaves them alone.
  if (std::string why; !fs.prepare_branches(&why).ok()) {
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    // A failed mount leaves the branches as it found them: the clean marks
    // prepare_branches took off go back (nothing was written since).
    fs.release_branches(true);
    return fail(why);
  }
  if (!opts.foreground) {
    auto sys_logger = spdlog::syslog_logger_mt("aufs-fuse-syslog", "aufs-fuse", LOG_PID, LOG_DAEMON);
    sys_logger->set_level(spdlog::get_level());
    spdlog::set_default_logger(sys_logger);
  }
  fuse_daemonize(opts.foreground ? 1 : 0);
  // After daemonizing: the watcher's and the invalidator's threads must
  // live in the final process.
  Invalidator invalidator(fctx);
  invalidator.start();
  bool watching = fs.start_notify([&invalidator](NodeId dir, const std::string& name) {
    invalidator.post(dir, name);
  });
  if (opts.udba == Udba::Notify && !watching) {
    // Given explicitly, the user expected notify: a warning; the default
    // falls back quietly (aufsctl info says why).
    if (opts.udba_given)
      spdlog::warn("udba=notify: {}; behaving as udba=reval", fs.udba_fallback());
    else
      spdlog::info("udba: {}; using udba=reval", fs.udba_fallback());
    if (opts.entry_timeout < 0) fctx.cfg.entry_timeout = 1.0;
    if (opts.attr_timeout < 0) fctx.cfg.attr_timeout = 1.0;
    if (opts.negative_timeout < 0) fctx.cfg.negative_timeout = 1.0;
    fctx.cfg.cache_readdir = false;
  }
  spdlog::info("mounted {} branches on {}", opts.branches.size(), opts.mountpoint);
  if (opts.single_thread) {
    rc = fuse_session_loop(se);
  } else {
    fuse_loop_config* lc = fuse_loop_cfg_create();
    unsigned threads = opts.max_threads ? opts.max_threads
                                        : std::max(4u, 2 * std::thread::hardware_concurrency());
    fuse_loop_cfg_set_max_threads(lc, threads);
    fuse_loop_cfg_set_clone_fd(lc, opts.clone_fd ? 1 : 0);
    rc = fuse_session_loop_mt(se, lc);
    fuse_loop_cfg_destroy(lc);
  }
  // The kernel ends a connection whose mount is gone (a lazy unmount, once
  // the last file is closed) by aborting it; a read that raced that abort
  // gets ECONNABORTED instead of ENODEV, and libfuse calls it an error.
  // With nothing attached any more, that is the normal end. Attached, the
  // connection was aborted on purpose (fusectl's abort file).
  if (rc == -ECONNABORTED && !resolved_mnt.empty() && !fuse_attached_at(resolved_mnt)) {
    spdlog::info("the kernel ended the connection (the mount was detached)");
    rc = 0;
  }
  // libfuse ends its loop quietly on some errors of /dev/fuse: say which.
  if (rc != 0)
    spdlog::error("the FUSE request loop ended with an error: {}",
                  rc < 0 ? std::strerror(-rc) : std::to_string(rc));
  fs.stop_notify();
  if (!invalidator.quiesce(std::chrono::milliseconds(200))) serve_until_sent(se, invalidator);
  invalidator.stop();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  // No request runs any more, however the loop ended (unmount, a signal,
  // an aborted connection): the branches hold nothing half done.
  fs.release_branches(false);
  spdlog::info("unmounted {}", opts.mountpoint);
  return rc == 0 ? 0 : 1;
}

}  // namespace aufs
