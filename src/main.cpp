// aufs-fuse daemon: parse and validate options, open the branches, mount,
// serve. Every error before mounting is one line on stderr and exit 1.
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "aufs_fuse/options.hpp"
#include "aufs_fuse/union_fs.hpp"
#include "aufs_fuse/version.hpp"
#include "fuse/adapter.hpp"

namespace {

void libfuse_log(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = std::strlen(buf);
  while (n && buf[n - 1] == '\n') buf[--n] = 0;
  switch (level) {
    case FUSE_LOG_EMERG: case FUSE_LOG_ALERT: case FUSE_LOG_CRIT: case FUSE_LOG_ERR:
      spdlog::error("fuse: {}", buf); break;
    case FUSE_LOG_WARNING: spdlog::warn("fuse: {}", buf); break;
    case FUSE_LOG_NOTICE: case FUSE_LOG_INFO: spdlog::info("fuse: {}", buf); break;
    default: spdlog::debug("fuse: {}", buf); break;
  }
}

void raise_fd_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "aufs-fuse: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto pr = aufs::parse_command_line(args);
  if (!pr.ok()) return fail(pr.error + " (see aufs-fuse --help)");
  aufs::MountOptions opts = pr.opts;
  if (opts.show_help) {
    std::fputs(aufs::usage_text("aufs-fuse").c_str(), stdout);
    return 0;
  }
  if (opts.show_version) {
    std::printf("aufs-fuse %s, libfuse %s\n", AUFS_FUSE_VERSION, fuse_pkgversion());
    return 0;
  }
  if (auto e = aufs::validate_options(opts); !e.empty()) return fail(e);

  auto logger = spdlog::stderr_logger_mt("aufs-fuse");
  spdlog::set_default_logger(logger);
  // Debug output interleaves worker threads: tag each line with its thread.
  spdlog::set_pattern(opts.debug ? "aufs-fuse[%P/%t]: %l: %v" : "aufs-fuse[%P]: %l: %v");
  spdlog::set_level(opts.debug ? spdlog::level::debug
                               : opts.verbose ? spdlog::level::info : spdlog::level::warn);
  fuse_set_log_func(libfuse_log);
  for (auto& n : opts.notices) spdlog::warn("{}", n);

  ::umask(0);  // the kernel applied the caller's umask already
  raise_fd_limit();
  auto u = aufs::Union::create(opts);
  if (!u.ok()) return fail(std::string("cannot open branches: ") + std::strerror(u.err()));

  aufs::FuseContext fctx;
  fctx.fs = u.value().get();
  // udba=none trusts the caches; notify keeps long timeouts safe through
  // inotify; reval re-checks the branches at least every second.
  double def_to = opts.udba == aufs::Udba::None ? 86400.0
                  : opts.udba == aufs::Udba::Notify ? 3600.0 : 1.0;
  fctx.cfg.entry_timeout = opts.entry_timeout >= 0 ? opts.entry_timeout : def_to;
  fctx.cfg.attr_timeout = opts.attr_timeout >= 0 ? opts.attr_timeout : def_to;
  fctx.cfg.negative_timeout = opts.negative_timeout >= 0 ? opts.negative_timeout : def_to;
  fctx.cfg.debug = opts.debug;
  // Only with long-lived entries: under reval, readdirplus replies are what
  // renew the 1 s entries of a listed directory in bulk; a listing served by
  // the kernel would leave a stat-ing scan one LOOKUP per name.
  fctx.cfg.cache_readdir = opts.rdcache > 0 && opts.udba != aufs::Udba::Reval;

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

  fuse_session* se = fuse_session_new(&fa, &aufs::fuse_operations(), sizeof(fuse_lowlevel_ops), &fctx);
  if (!se) return fail("cannot create the FUSE session (bad FUSE option?)");
  fctx.se = se;
  int rc = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return fail("cannot install signal handlers");
  }
  if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return fail("cannot mount on '" + opts.mountpoint + "'");
  }
  if (!opts.foreground) {
    auto sys_logger = spdlog::syslog_logger_mt("aufs-fuse-syslog", "aufs-fuse", LOG_PID, LOG_DAEMON);
    sys_logger->set_level(spdlog::get_level());
    spdlog::set_default_logger(sys_logger);
  }
  fuse_daemonize(opts.foreground ? 1 : 0);
  // After daemonizing: the watcher thread must live in the final process.
  bool watching = u.value()->start_notify([&fctx](aufs::NodeId dir, const std::string& name) {
    aufs::invalidate_entry(fctx, dir, name);
  });
  if (opts.udba == aufs::Udba::Notify && !watching) {
    spdlog::warn("udba=notify: cannot watch the branches; behaving as udba=reval");
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
  u.value()->stop_notify();
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  spdlog::info("unmounted {}", opts.mountpoint);
  return rc == 0 ? 0 : 1;
}
