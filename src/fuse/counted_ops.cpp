// SPDX-License-Identifier: GPL-2.0-or-later
// The adapter's callbacks, each wrapped to count its request (stats.hpp)
// and to mark its nodes busy while it runs (inflight.hpp): counting stays
// out of the callbacks themselves.
#include <tuple>
#include <type_traits>

#include "fuse/adapter.hpp"
#include "fuse/stats.hpp"

namespace aufs {
namespace {

fuse_lowlevel_ops g_inner;  // the adapter's own table, set once, before any request

template <class F>
struct Wrap;
// The nodes a request names (inflight.hpp): its first argument, and the
// second directory of rename and link. Forgets have no reply to wait for.
template <Op K, class... A>
constexpr bool tracked() {
  if constexpr (sizeof...(A) == 0) return false;
  else return K != Op::Forget && K != Op::BatchForget &&
              std::is_same_v<std::tuple_element_t<0, std::tuple<A...>>, fuse_ino_t>;
}
template <Op K, class... A>
uint64_t second_node(const A&... a) {
  if constexpr (K == Op::Rename) return std::get<2>(std::forward_as_tuple(a...));
  else if constexpr (K == Op::Link) return std::get<1>(std::forward_as_tuple(a...));
  else return 0;
}

template <class... A>
struct Wrap<void (*)(fuse_req_t, A...)> {
  template <Op K, auto M>
  static void call(fuse_req_t req, A... a) {
    auto* fc = static_cast<FuseContext*>(fuse_req_userdata(req));
    fc->stats.count(K);
    if constexpr (tracked<K, A...>()) {
      Inflight::Scope busy(fc->inflight, std::get<0>(std::forward_as_tuple(a...)),
                           second_node<K>(a...));
      (g_inner.*M)(req, a...);
    } else {
      (g_inner.*M)(req, a...);
    }
  }
};
template <>
struct Wrap<void (*)(void*, fuse_conn_info*)> {  // init: no request, the userdata
  template <Op K, auto M>
  static void call(void* userdata, fuse_conn_info* conn) {
    static_cast<FuseContext*>(userdata)->stats.count(K);
    (g_inner.*M)(userdata, conn);
  }
};

template <Op K, auto M>
void wrap(fuse_lowlevel_ops& o) {
  if (o.*M) o.*M = &Wrap<std::remove_reference_t<decltype(o.*M)>>::template call<K, M>;
}

}  // namespace

fuse_lowlevel_ops counted_ops(const fuse_lowlevel_ops& inner) {
  g_inner = inner;
  fuse_lowlevel_ops o = inner;
  using L = fuse_lowlevel_ops;
  wrap<Op::Init, &L::init>(o);
  wrap<Op::Lookup, &L::lookup>(o);
  wrap<Op::Forget, &L::forget>(o);
  wrap<Op::BatchForget, &L::forget_multi>(o);
  wrap<Op::Getattr, &L::getattr>(o);
  wrap<Op::Setattr, &L::setattr>(o);
  wrap<Op::Readlink, &L::readlink>(o);
  wrap<Op::Mknod, &L::mknod>(o);
  wrap<Op::Mkdir, &L::mkdir>(o);
  wrap<Op::Symlink, &L::symlink>(o);
  wrap<Op::Link, &L::link>(o);
  wrap<Op::Unlink, &L::unlink>(o);
  wrap<Op::Rmdir, &L::rmdir>(o);
  wrap<Op::Rename, &L::rename>(o);
  wrap<Op::Open, &L::open>(o);
  wrap<Op::Create, &L::create>(o);
  wrap<Op::Read, &L::read>(o);
  wrap<Op::Write, &L::write_buf>(o);
  wrap<Op::Flush, &L::flush>(o);
  wrap<Op::Release, &L::release>(o);
  wrap<Op::Fsync, &L::fsync>(o);
  wrap<Op::Fallocate, &L::fallocate>(o);
  wrap<Op::CopyFileRange, &L::copy_file_range>(o);
  wrap<Op::Lseek, &L::lseek>(o);
  wrap<Op::Opendir, &L::opendir>(o);
  wrap<Op::Readdir, &L::readdir>(o);
  wrap<Op::Readdirplus, &L::readdirplus>(o);
  wrap<Op::Releasedir, &L::releasedir>(o);
  wrap<Op::Fsyncdir, &L::fsyncdir>(o);
  wrap<Op::Statfs, &L::statfs>(o);
  wrap<Op::Getxattr, &L::getxattr>(o);
  wrap<Op::Listxattr, &L::listxattr>(o);
  wrap<Op::Setxattr, &L::setxattr>(o);
  wrap<Op::Removexattr, &L::removexattr>(o);
  wrap<Op::Access, &L::access>(o);
  return o;
}

}  // namespace aufs
